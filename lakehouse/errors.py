"""One readable line for any failure, down to its root cause, with secrets scrubbed.

Spark reports an error raised on an executor wrapped several times: ``An error occurred while
calling o123.save``, then ``Job aborted due to stage failure: Task 0 in stage 3.0 failed 1
times...``, and only at the bottom the exception that says what went wrong (a value that does
not fit, a source that refused a connection, a Python error in a worker). :func:`one_line`
walks the chain of causes (PySpark's captured ones, then the JVM's) to the
deepest one and keeps its first line, or the error line of a Python worker's traceback.

Every exception the project raises on purpose derives from :class:`LakehouseError`: its
message is already the one line a person reads (it names the source, table, record or
setting), so the CLI prints it as ``lakehouse <command>: error: <message>`` and nothing more.

No Spark import: this module is a leaf that every step can use.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_CHARS = 500


class LakehouseError(Exception):
    """A failure the project explains in one line (subclasses say which kind)."""


# Lines of a Python worker's traceback that are not the error itself.
_TRACEBACK_NOISE = ("Traceback", "File ", "  ", "^")
# Where pymongo's messages go on with the whole server reply or topology description.
DRIVER_DETAIL = (", full error:", " (configured timeouts", ", Timeout:")


def _java_root(exc: BaseException) -> str | None:
    """The deepest cause of a Py4J error's Java exception: "Class: message"."""
    java = getattr(exc, "java_exception", None)
    if java is None:
        return None
    try:
        while java.getCause() is not None and java.getCause() != java:
            java = java.getCause()
        name = java.getClass().getSimpleName()
        message = java.getMessage()
    except Exception:  # the JVM is gone: fall back on Python's text
        return None
    return f"{name}: {message}" if message else name


def _captured_root(exc: BaseException) -> BaseException:
    """The deepest of PySpark's captured causes (Python's own ``__cause__`` is left alone: the
    project wraps errors on purpose, to say which source or table they concern)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException):
            break
        exc = cause
    return exc


def _python_worker_error(text: str) -> str | None:
    """The error line of a Python traceback carried in a Spark message, if there is one."""
    if "Traceback (most recent call last)" not in text:
        return None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(_TRACEBACK_NOISE)]
    candidates = [line.strip() for line in lines if ": " in line or line.strip().endswith("Error")]
    if not candidates:
        return None
    name, _, message = candidates[-1].partition(": ")
    # A project exception (``lakehouse.bronze.readers.SourceError: ...``) already says what
    # failed; a built-in one (``ValueError: ...``) keeps its name.
    return message if "." in name and message else candidates[-1]


def first_line(error: BaseException | str, cut: tuple[str, ...] = ()) -> str:
    """The first line of an error's message, cut before the detail a driver appends
    (:data:`DRIVER_DETAIL`) and any of ``cut``; an exception without a message gives its class name."""
    text = str(error).strip()
    for marker in ("\n", *DRIVER_DETAIL, *cut):
        text = text.split(marker)[0]
    text = text.strip()
    if not text and isinstance(error, BaseException):
        return type(error).__name__
    return text


def _where(exc: BaseException) -> str:
    """Which expression of the query failed, as Spark's query context names it (a value that
    cannot be cast: ``cast(watch_seconds as int)``), or ""."""
    contexts = getattr(exc, "getQueryContext", None)
    if contexts is None:
        return ""
    try:
        for context in contexts():
            fragment = str(context.fragment() or "").strip()
            if not fragment:
                continue
            call_site = ""
            if getattr(context.contextType(), "name", "") == "DataFrame":
                call_site = f", called from {str(context.callSite()).strip().splitlines()[0]}"
            return f" (in {fragment}{call_site})"
    except Exception:  # no context, or the JVM is gone: the message alone
        return ""
    return ""


def one_line(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """A one-line message for ``exc``: its root cause (with the expression Spark names, when it
    names one), at most MAX_CHARS, secrets replaced by ***."""
    root = _captured_root(exc)
    text = _java_root(root) or str(root)
    text = (_python_worker_error(text) or first_line(text, cut=("\tat ",)) or type(root).__name__) + _where(root)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."
