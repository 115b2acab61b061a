"""For SQL lint only (dbt/.sqlfluff): `exceptions` as a model calls it at compile time."""


def raise_compiler_error(message):
    return ""
