"""The transform step: dbt builds silver and gold through the Spark Thrift Server.

    run_transform(config)   `dbt build`: staging, snapshots, intermediate, dimensions, facts,
                            marts and every test, in dependency order (a failing test stops
                            what depends on it), in the build schemas; then, only when all of
                            it passed, publish to silver and gold (lakehouse/modeling/publish.py)
    docs_generate(config)   `dbt docs generate`: the documentation site, returns its directory

dbt runs as a subprocess of this interpreter's environment with the project in ``dbt/`` and
``DBT_PROFILES_DIR=dbt/``. ``dbt/profiles.yml`` reads the connection from the environment, which
is set here from the config: ``DBT_SPARK_HOST`` and ``DBT_SPARK_PORT`` (``thrift.host``,
``thrift.port``), ``DBT_SPARK_USER``, ``DBT_THREADS``, ``DBT_CONNECT_RETRIES`` (``dbt.*``).
When the Thrift server requires a password (``thrift.auth``), ``DBT_SPARK_AUTH=CUSTOM``,
``DBT_SPARK_USER`` is ``thrift.user`` and the password goes in
``DBT_ENV_SECRET_SPARK_PASSWORD``: dbt masks ``DBT_ENV_SECRET_*`` values in its output and
logs, and this module never prints it. ``DBT_SPARK_USE_SSL`` follows ``thrift.ssl`` (dbt-spark
encrypts but does not verify the server's certificate).
dbt's target and log directories live under the state directory (``<home>/dbt/``), never in
the repository. dbt's progress lines are streamed as they come; when something fails, the
failing models, snapshots and tests are listed by name from ``run_results.json`` and the exit
code is non-zero. A dbt run that takes longer than ``dbt.timeout_seconds`` is stopped and
reported in one line naming the Thrift server and its log.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lakehouse import processes, profiling
from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.errors import LakehouseError
from lakehouse.modeling import publish
from lakehouse.serving.sql_client import QueryError

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
DEFAULT_SCHEMA = "silver"
# dbt scrubs the values of DBT_ENV_SECRET_* variables from its logs and output.
DBT_PASSWORD_ENV = "DBT_ENV_SECRET_SPARK_PASSWORD"
RUN_RESULTS_FILE = "run_results.json"
EXIT_OK = 0
EXIT_FAILURE = 1
# Statuses in run_results.json that mean "this node did not do its job".
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
UNIT_TESTS = "resource_type:unit_test"
WARNING_STATUS = "warn"
MAX_MESSAGE_CHARS = 300
# _stream's return code when dbt ran past dbt.timeout_seconds and was stopped.
TIMED_OUT = -1
# A node that failed only because its Thrift connection dropped (not because of its SQL or its
# data) is worth one retry: `dbt retry` re-runs exactly the failed and skipped nodes.
TRANSIENT_ERRORS = (
    "TSocket read 0 bytes",
    "TTransportException",
    "Broken pipe",
    "Connection reset",
    "Could not connect to any of",
)


EXIT_REFUSED = 3  # bronze holds rows no passed quality gate covers: dbt did not run
BRONZE_VERSIONS_VAR = "bronze_versions"
# Read by dbt/macros/partition_tests.sql (absent: false).
PUBLISHED_WITH_THIS_PROJECT_VAR = "published_with_this_project"


class TransformError(LakehouseError):
    """dbt could not be started at all (not installed, project missing)."""


class GateNotPassed(TransformError):
    """Bronze holds rows that no passed quality gate covers: silver may not read them."""


# The tests made by dbt/tests/generic/column_checks.sql are named <model><suffix> (one per model
# and severity, and one for the checks scoped to new partitions, dbt/macros/partition_tests.sql;
# tests/unit/test_transform_project.py holds the yml to it).
COLUMN_CHECKS_SUFFIXES = ("_column_checks", "_column_warnings", "_partition_checks")


@dataclass(frozen=True)
class NodeResult:
    """One failed or warning node of a dbt invocation, as run_results.json reports it."""

    unique_id: str
    status: str
    message: str
    compiled_code: str | None = None

    @property
    def resource_type(self) -> str:
        return self.unique_id.split(".", 1)[0]

    @property
    def name(self) -> str:
        # model.lakehouse.fct_x -> fct_x; test.lakehouse.not_null_fct_x_id.1a2b3c -> not_null_fct_x_id;
        # unit_test.lakehouse.fct_x.checks_y -> fct_x.checks_y
        parts = self.unique_id.split(".")
        if len(parts) < 3:
            return self.unique_id
        return ".".join(parts[2:4]) if self.resource_type == "unit_test" else parts[2]

    def describe(self) -> str:
        return f"{self.resource_type} {self.name}: {self.message}"

    @property
    def checked_model(self) -> str | None:
        """The model a failed column_checks test checked; None for any other node."""
        if self.resource_type != "test" or self.status not in ("fail", WARNING_STATUS):
            return None
        return next((self.name.removesuffix(s) for s in COLUMN_CHECKS_SUFFIXES if self.name.endswith(s)), None)

    @property
    def is_transient(self) -> bool:
        """Failed because the connection to the server dropped, not because of SQL or data."""
        return self.status != "fail" and any(marker in self.message for marker in TRANSIENT_ERRORS)


def dbt_target_dir(config: Config) -> Path:
    return config.home / "dbt" / "target"


def dbt_log_dir(config: Config) -> Path:
    return config.home / "dbt" / "logs"


def dbt_executable() -> str:
    """The dbt command installed next to this interpreter (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if found is None:
        raise TransformError("dbt is not installed in this environment: run `make setup`")
    return found


def dbt_environment(config: Config, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment dbt needs: the profile's connection variables and the state paths."""
    from lakehouse.serving import pools

    etl = pools.etl_session_settings()
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
            "DBT_TARGET_PATH": str(dbt_target_dir(config)),
            "DBT_LOG_PATH": str(dbt_log_dir(config)),
            "DBT_SPARK_HOST": config.thrift.host,
            "DBT_SPARK_PORT": str(config.thrift.port),
            "DBT_SPARK_USER": config.thrift.user if config.thrift.auth_enabled else config.dbt.user,
            "DBT_SPARK_AUTH": "CUSTOM" if config.thrift.auth_enabled else "NONE",
            "DBT_SPARK_USE_SSL": str(config.thrift.ssl),  # True or False: dbt's as_bool
            "DBT_SPARK_SCHEMA": DEFAULT_SCHEMA,
            "DBT_THREADS": str(config.dbt.threads),
            "DBT_CONNECT_RETRIES": str(config.dbt.connect_retries),
            "DBT_POLL_INTERVAL": str(config.dbt.poll_interval_seconds),
            "DBT_SPARK_SCHEDULER_POOL": etl[pools.POOL_KEY],
            "DBT_SPARK_QUERY_TIMEOUT": etl[pools.QUERY_TIMEOUT_KEY],
            # Nothing leaves the machine: no usage statistics, no version check.
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_VERSION_CHECK": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    if config.thrift.auth_enabled:
        env[DBT_PASSWORD_ENV] = config.thrift.password
    else:
        env.pop(DBT_PASSWORD_ENV, None)
    return env


def build_command(
    *,
    select: str | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    colors: bool = False,
    bronze_versions: dict[str, int] | None = None,
    published_with_this_project: bool = False,
) -> list[str]:
    """The `dbt build` command line (snapshots are part of the build, in dependency order).

    ``bronze_versions`` (table -> Delta version) becomes the var the staging models read bronze
    at (``dbt/macros/validated_version.sql``). ``published_with_this_project``: every published
    object was built and tested by this dbt project, so the tests scoped to new partitions may
    skip the partitions of the published versions (``dbt/macros/partition_tests.sql``).
    """
    command = [dbt_executable(), "--no-use-colors" if not colors else "--use-colors", "build"]
    command += ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if select:
        command += ["--select", *select.split()]
    # The unit tests check the SQL's logic on fixed inputs: they change only with the code, so
    # CI runs them (`lakehouse transform --unit-tests`), not every build.
    command += ["--exclude", UNIT_TESTS]
    if full_refresh:
        command.append("--full-refresh")
    variables: dict[str, Any] = {}
    if run_id:
        variables["run_id"] = run_id
    if bronze_versions:
        variables[BRONZE_VERSIONS_VAR] = bronze_versions
    if published_with_this_project:
        variables[PUBLISHED_WITH_THIS_PROJECT_VAR] = True
    if variables:
        command += ["--vars", json.dumps(variables, sort_keys=True)]
    return command


GATE_WAY_FORWARD = (
    "run the gate (`lakehouse validate`, or `lakehouse pipeline`); when it fails, fix the source and "
    "re-run, or move the offending rows to quarantine (`lakehouse quarantine`; README: When the gate fails)"
)


def refusal_message(pending: dict[str, int], last_verdicts: dict[str, tuple[str, str] | None]) -> str:
    """One line: which bronze table holds rows no passed gate covers, its last verdict, what to do."""
    table = next(iter(pending))
    verdict = last_verdicts.get(table)
    seen = "no gate has validated it yet" if verdict is None else f"last gate verdict: {verdict[0]}, run {verdict[1]}"
    others = len(pending) - 1
    more = f" (and {others} more table{'s' * (others > 1)}: {', '.join(list(pending)[1:])})" if others else ""
    return (
        f"bronze.{table} holds {pending[table]:,} row(s) that no passed quality gate covers ({seen}){more}; "
        f"silver and gold keep the last good data: {GATE_WAY_FORWARD}"
    )


def validated_bronze_versions(config: Config, *, quarantined_too: bool = False) -> dict[str, int]:
    """Each bronze table's newest Delta version, when a passed gate covers every row of it.

    Asked over the Thrift server (lakehouse/quality/verdicts.py has the SQL). Raises
    :class:`GateNotPassed` naming the first table that holds rows no passed verdict covers;
    with ``quarantined_too``, also when rows were quarantined since the table's last passed
    verdict (the gate checks their share, so such a batch is pending for it).
    """
    from lakehouse.bronze.contracts import CONTRACTS, QUARANTINE_TABLE
    from lakehouse.quality import verdicts
    from lakehouse.serving.sql_client import QueryError, newest_version, newest_version_sql, run_queries

    try:
        bronze = {row[1] for row in run_queries(config, ["show tables in bronze"], etl=True)[0].rows}
    except QueryError as exc:
        if "SCHEMA_NOT_FOUND" not in str(exc):
            raise
        raise GateNotPassed("there is no bronze yet: run `lakehouse pipeline` (or extract, then validate)") from None
    missing = [c.table for c in CONTRACTS.values() if c.source_name not in bronze]
    if missing:
        raise GateNotPassed(f"{missing[0]} does not exist: run `lakehouse pipeline` (or extract, then validate)")
    try:
        ops = {row[1] for row in run_queries(config, ["show tables in ops"], etl=True)[0].rows}
    except QueryError:
        ops = set()  # no ops schema: nothing was ever validated
    has_verdicts = verdicts.VERDICTS_TABLE.split(".")[1] in ops
    histories = run_queries(config, [newest_version_sql(c.table) for c in CONTRACTS.values()], etl=True)
    versions = {name: newest_version(history) for name, history in zip(CONTRACTS, histories, strict=True)}
    if has_verdicts and _passed_at(config, versions, quarantine=QUARANTINE_TABLE.split(".")[1] in bronze):
        return versions  # no commit since a gate that passed: no row can be pending
    counts = run_queries(
        config,
        [
            verdicts.pending_rows_sql(name, c.table, versions[name], verdicts_exist=has_verdicts)
            for name, c in CONTRACTS.items()
        ],
        etl=True,
    )
    pending = {name: int(result.rows[0][0]) for name, result in zip(CONTRACTS, counts, strict=True)}
    pending = {name: rows for name, rows in pending.items() if rows}
    if pending:
        last: dict[str, tuple[str, str] | None] = dict.fromkeys(pending)
        if has_verdicts:
            found = run_queries(config, [verdicts.last_verdict_sql(name) for name in pending], etl=True)
            last = {name: (tuple(r.rows[0]) if r.rows else None) for name, r in zip(pending, found, strict=True)}
        raise GateNotPassed(refusal_message(pending, last))
    if quarantined_too and QUARANTINE_TABLE.split(".")[1] in bronze:
        queries = [
            verdicts.pending_quarantined_sql(name, QUARANTINE_TABLE, c.source_system, c.source_name)
            for name, c in CONTRACTS.items()
        ]
        for name, result in zip(CONTRACTS, run_queries(config, queries, etl=True), strict=True):
            if rows := result.rows[0][0]:
                raise GateNotPassed(
                    f"{QUARANTINE_TABLE} holds {rows:,} row(s) of {name} that no passed quality gate covers"
                )
    return versions


def _passed_at(config: Config, versions: dict[str, int], *, quarantine: bool) -> bool:
    """Did the newest gate run pass, with no commit since that changed a row of bronze or of the
    quarantine (OPTIMIZE and VACUUM change none)?

    That gate validated every row pending when it ran, so none is pending now: the answer
    without scanning bronze. False whenever it cannot tell (then bronze is scanned).
    """
    from lakehouse.bronze.contracts import QUARANTINE_TABLE
    from lakehouse.quality import verdicts
    from lakehouse.serving.sql_client import newest_version, newest_version_sql, run_queries

    queries = [verdicts.newest_gate_run_sql()] + ([newest_version_sql(QUARANTINE_TABLE)] if quarantine else [])
    try:
        results = run_queries(config, queries, etl=True)
    except QueryError:  # a verdicts table from before the inputs were stored
        return False
    newest = results[0].rows
    if not newest or any(verdict != verdicts.PASSED or inputs is None for verdict, _run, inputs in newest):
        return False
    stored = json.loads(newest[0][2])
    quarantine_name = QUARANTINE_TABLE.split(".")[1]
    since = {**stored.get("bronze_versions", {})}
    now = dict(versions)
    if stored.get("quarantine_version") is not None:
        since[quarantine_name] = stored["quarantine_version"]
    if quarantine:
        now[quarantine_name] = newest_version(results[1])
    if set(since) != set(now) or any(now[table] < since[table] for table in now):
        return False
    return not publish.bronze_changes(config, since, now).changed


def read_run_results(path: Path) -> tuple[list[NodeResult], list[NodeResult]]:
    """Failed and warning nodes of one dbt invocation, from its run_results.json."""
    data: dict[str, Any] = json.loads(path.read_text())
    failed: list[NodeResult] = []
    warned: list[NodeResult] = []
    for result in data.get("results", []):
        status = str(result.get("status", "")).lower()
        message = " ".join(str(result.get("message") or status).split())[:MAX_MESSAGE_CHARS]
        node = NodeResult(str(result.get("unique_id", "?")), status, message, result.get("compiled_code"))
        if status in FAILED_STATUSES:
            failed.append(node)
        elif status == WARNING_STATUS:
            warned.append(node)
    return failed, warned


def _stream(command: Sequence[str], env: dict[str, str], output: TextIO, timeout: float | None = None) -> int:
    """Run a command, copying its output line by line as it comes; return its exit code.

    After ``timeout`` seconds the command is stopped and TIMED_OUT returned: a hung Thrift
    server (a session close that never returns) must not hold the pipeline forever. dbt
    cancels its running queries on the SIGTERM that stops it.
    """

    def copy(line: str) -> None:
        output.write(line + "\n")
        output.flush()

    finished = processes.stream(command, on_line=copy, timeout=timeout, env=env, cwd=DBT_PROJECT_DIR)
    return TIMED_OUT if finished.timed_out else finished.code


def unit_test_command() -> list[str]:
    """`dbt test` of the project's unit tests only (their input models must exist: build first)."""
    return [
        dbt_executable(),
        "--no-use-colors",
        "test",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--select",
        UNIT_TESTS,
    ]


def run_unit_tests(config: Config, *, output: TextIO | None = None, errors: TextIO | None = None) -> int:
    """Run the dbt unit tests against the Thrift server (they read no data: each mocks its
    inputs); 0 when every one passed. Nothing is built or published."""
    code, results = _run_dbt(config, unit_test_command(), output or sys.stdout)
    return _report(config, code, results, errors or sys.stderr)


def retry_command() -> list[str]:
    """`dbt retry`: re-run the failed and skipped nodes of the previous invocation, same flags."""
    return [
        dbt_executable(),
        "--no-use-colors",
        "retry",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]


def _run_dbt(config: Config, command: list[str], output: TextIO, *, keep_results: bool = False) -> tuple[int, Path]:
    """Run one dbt command; return the exit code and the path of its run_results.json.

    The previous run_results.json is removed first (a stale file must not be reported as this
    run's), unless ``keep_results``: `dbt retry` reads it.
    """
    if not (DBT_PROJECT_DIR / "dbt_project.yml").exists():
        raise TransformError(f"no dbt project in {DBT_PROJECT_DIR}")
    target = dbt_target_dir(config)
    target.mkdir(parents=True, exist_ok=True)
    dbt_log_dir(config).mkdir(parents=True, exist_ok=True)
    results = target / RUN_RESULTS_FILE
    if not keep_results:
        results.unlink(missing_ok=True)
    return _stream(command, dbt_environment(config), output, config.dbt.timeout_seconds), results


def timeout_message(config: Config) -> str:
    """One line for a dbt run stopped by dbt.timeout_seconds: which server, which log, what to do."""
    from lakehouse.services import thrift as thrift_service

    thrift = config.thrift
    return (
        f"transform: dbt did not finish within {config.dbt.timeout_seconds} s (dbt.timeout_seconds) and was stopped: "
        f"the Thrift server at {thrift.host}:{thrift.port} may hang (log: {thrift_service.log_file(config)}); "
        "check `lakehouse status`, then `lakehouse down thrift && lakehouse up thrift` and run again"
    )


def column_check_failures(config: Config, node: NodeResult) -> list[str]:
    """One line per failed check of a column_checks test: ``model.column: check, N rows``.

    dbt only says how many of the model's checks failed; the test's own query (its compiled
    code, from run_results.json) says which, and it is run again only when it failed.
    """
    model = node.checked_model
    if model is None or not node.compiled_code:
        return []
    from lakehouse.serving.sql_client import run_query

    try:
        rows = run_query(config, node.compiled_code, etl=True).rows
    except QueryError as exc:
        return [f"{model}: cannot list the failed checks ({exc}); the query is in dbt's target/compiled"]
    return [
        f"{model}.{column}: {check}, {count} row{'s' if count != 1 else ''}"
        for column, check, count in sorted((str(c), str(k), int(n)) for c, k, n in rows)
    ]


def _describe_all(config: Config, nodes: list[NodeResult], prefix: str, errors: TextIO) -> None:
    for node in nodes:
        print(f"{prefix}{node.describe()}", file=errors)
        for line in column_check_failures(config, node):
            print(f"{prefix}    {line}", file=errors)


def _report(config: Config, code: int, results: Path, errors: TextIO) -> int:
    """Name what failed (or why nothing ran); return the step's exit code."""
    failed, warned = read_run_results(results) if results.exists() else ([], [])
    _describe_all(config, warned, "transform: warning: ", errors)
    if code == 0 and not failed:
        return EXIT_OK
    if failed:
        print(f"transform: {len(failed)} node(s) failed:", file=errors)
        _describe_all(config, failed, "  ", errors)
    else:
        print(
            f"transform: dbt exited with code {code} before building anything: see its output above "
            f"(an error in the dbt project, or the Thrift server at {config.thrift.host}:{config.thrift.port} "
            f"is not reachable: `lakehouse up`); log: {dbt_log_dir(config) / 'dbt.log'}",
            file=errors,
        )
    return EXIT_FAILURE


SKIP = "skip"
SKIPPED_KEY = "skipped"  # in the profile of a skipped transform: why
SKIPPED = "skipped: no bronze table changed since the last published build (same versions, same dbt project)"


def _plan(
    config: Config, last: publish.PublishedBuild | None, versions: dict[str, int], project: str, select: str | None
) -> str | None:
    """SKIP when the last published full build read the same bronze rows with this project; a
    reason for a full refresh when bronze lost rows since then; else None (incremental)."""
    if last is None:
        return None
    changes = publish.bronze_changes(config, last.bronze_versions, versions)
    if select is None and not changes.changed and last.project == project:
        return SKIP
    if changes.removed:
        tables = ", ".join(f"bronze.{table}" for table in changes.removed)
        return f"rows were removed from {tables} since the last published build (run {last.run_id})"
    return None


def _record(
    config: Config, run_id: str | None, versions: dict[str, int], project: str, select: str | None, err: TextIO
) -> None:
    """Store what the published build read: the next run skips or goes incremental from it."""
    try:
        publish.record_build(config, run_id or "manual", versions, project, select)
    except QueryError as exc:
        print(f"transform: warning: published, but not recorded in {publish.BUILDS_TABLE}: {exc}", file=err)


def _publish(
    config: Config,
    target_dir: Path,
    built: set[str],
    out: TextIO,
    err: TextIO,
    on_publish: Callable[[publish.Publication], None] | None = None,
) -> int:
    """Publish a build that passed (lakehouse/modeling/publish.py); the step's exit code."""
    try:
        publication = publish.publish(config, target_dir, built)
    except publish.PublishError as exc:
        print(f"transform: error: {exc}", file=err)
        return EXIT_FAILURE
    print(f"transform: {publication.describe()}", file=out, flush=True)
    if on_publish is not None:
        on_publish(publication)
    return EXIT_OK


@dataclass
class TransformPlan:
    """What a transform will do, decided before dbt runs (:func:`plan_transform`).

    ``skip``: the last published build read the same bronze with this project (nothing to do).
    ``command``: the `dbt build` command line otherwise. ``versions``: the bronze versions the
    gate covers (None when the gate is not checked), recorded with the published build.
    """

    versions: dict[str, int] | None
    project: str
    full_refresh: bool
    skip: bool = False
    command: list[str] | None = None


def plan_transform(
    config: Config,
    *,
    select: str | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    out: TextIO,
    err: TextIO,
    check_gate: bool = True,
    allow_skip: bool = True,
    colors: bool = False,
    phases: profiling.Phases | None = None,
) -> TransformPlan | int:
    """The gate check and the plan of :func:`run_transform`: a plan, or an exit code (refused,
    or the lakehouse's state could not be read), with one line on ``err`` saying why."""
    phases = phases or profiling.Phases()
    try:
        with phases.timed("gate check"):
            versions = validated_bronze_versions(config) if check_gate else None
    except GateNotPassed as exc:
        print(f"transform: refused: {exc}", file=err)
        return EXIT_REFUSED
    except QueryError as exc:
        print(f"transform: error: cannot check the quality gate's verdicts: {exc}", file=err)
        return EXIT_FAILURE
    project = publish.project_fingerprint()
    last: publish.PublishedBuild | None = None
    if versions is not None and not full_refresh:
        try:
            with phases.timed("plan"):
                last = publish.last_full_build(config)
                plan = _plan(config, last, versions, project, select)
        except QueryError as exc:
            print(f"transform: error: cannot read what the last published build read: {exc}", file=err)
            return EXIT_FAILURE
        if plan == SKIP and allow_skip:
            return TransformPlan(versions, project, full_refresh, skip=True)
        if plan and plan != SKIP:
            print(f"transform: {plan}: rebuilding the incremental models from scratch (--full-refresh)", file=out)
            full_refresh = True
    # dbt/macros/partition_tests.sql: the published tables passed this project's tests.
    tested_before = not full_refresh and last is not None and last.published_everything_with(project)
    try:
        command = build_command(
            select=select,
            full_refresh=full_refresh,
            run_id=run_id,
            colors=colors,
            bronze_versions=versions,
            published_with_this_project=tested_before,
        )
    except TransformError as exc:
        print(f"transform: error: {exc}", file=err)
        return EXIT_FAILURE
    return TransformPlan(versions, project, full_refresh, command=command)


def conclude_transform(
    config: Config,
    plan: TransformPlan,
    code: int,
    results: Path,
    target_dir: Path,
    *,
    built: set[str],
    run_id: str | None,
    select: str | None,
    out: TextIO,
    err: TextIO,
    phases: profiling.Phases | None = None,
    on_publish: Callable[[publish.Publication], None] | None = None,
) -> int:
    """After `dbt build`: name what failed, or publish what was built and record what it read.

    ``results`` is the build's run_results.json and ``target_dir`` the directory holding its
    manifest; ``built`` the nodes that succeeded (possibly over a retry); ``on_publish`` is
    given what was published (Dagster's metadata). Returns the exit code.
    """
    phases = phases or profiling.Phases()
    status = _report(config, code, results, err)
    if status != EXIT_OK:
        if built:
            print(
                "transform: nothing published: silver and gold keep the last build that passed "
                f"(this build's tables stay in the build schemas, *{publish.BUILD_SCHEMA_SUFFIX})",
                file=err,
            )
        return status
    with phases.timed("publish"):
        status = _publish(config, target_dir, built, out, err, on_publish)
        if status == EXIT_OK and plan.versions is not None:
            _record(config, run_id, plan.versions, plan.project, select, err)
    return status


def run_transform(
    config: Config,
    *,
    select: str | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    output: TextIO | None = None,
    errors: TextIO | None = None,
    check_gate: bool = True,
    profile: dict[str, Any] | None = None,
    allow_skip: bool = True,
) -> int:
    """`dbt build` against the running Thrift server; 0 when every model, snapshot and test passed.

    ``select`` is a dbt node selection (``"fct_viewing_sessions+"``, ``"tag:x"``); by default
    everything is built. ``full_refresh`` rebuilds incremental models from scratch (snapshots
    keep their history). ``run_id`` is passed to dbt as the var ``run_id`` and shows in the
    query comments on the Thrift server.

    First, bronze must be covered by passed gate verdicts (:func:`validated_bronze_versions`):
    otherwise nothing runs and the result is :data:`EXIT_REFUSED`, with one line saying why.
    dbt then reads each bronze table at the version checked. ``check_gate=False`` skips that
    (tests of dbt itself on bronze no gate has seen; the CLI has no such switch).

    ``allow_skip=False`` builds even when no bronze table changed since the last published
    build (`lakehouse pipeline --no-skip`).

    ``profile``, when given, is filled with where the time went (lakehouse/profiling.py): the
    seconds of each phase, and each dbt node's time grouped by resource type.

    The same three parts run under Dagster (lakehouse/orchestration): :func:`plan_transform`,
    dbt's build, :func:`conclude_transform`.
    """
    out = output or sys.stdout
    err = errors or sys.stderr
    started = time.monotonic()
    phases = profiling.Phases()
    if profile is not None:
        profile["phases"] = phases.seconds
    plan = plan_transform(
        config,
        select=select,
        full_refresh=full_refresh,
        run_id=run_id,
        out=out,
        err=err,
        check_gate=check_gate,
        allow_skip=allow_skip,
        colors=out.isatty(),
        phases=phases,
    )
    if isinstance(plan, int):
        return plan
    if plan.skip:
        print(f"transform: {SKIPPED} in {time.monotonic() - started:.0f} s", file=out, flush=True)
        if profile is not None:
            profile[SKIPPED_KEY] = SKIPPED.removeprefix("skipped: ")
        return EXIT_OK
    assert plan.command is not None
    try:
        with phases.timed("dbt"):
            code, results = _run_dbt(config, plan.command, out)
    except TransformError as exc:
        print(f"transform: error: {exc}", file=err)
        return EXIT_FAILURE
    if code == TIMED_OUT:
        print(timeout_message(config), file=err)
        print(f"transform: FAILED in {time.monotonic() - started:.0f} s", file=out, flush=True)
        return EXIT_FAILURE
    failed, _warned = read_run_results(results) if results.exists() else ([], [])
    built = publish.succeeded(json.loads(results.read_text())) if results.exists() else set()
    if code != 0 and failed and all(node.is_transient for node in failed):
        names = ", ".join(node.name for node in failed)
        print(f"transform: lost the connection to the Thrift server in {names}; retrying once", file=out, flush=True)
        with phases.timed("dbt retry"):
            code, results = _run_dbt(config, retry_command(), out, keep_results=True)
        built |= publish.succeeded(json.loads(results.read_text())) if results.exists() else set()
    if profile is not None and results.exists():
        profile.update(profiling.dbt_profile(json.loads(results.read_text())))
    status = conclude_transform(
        config,
        plan,
        code,
        results,
        dbt_target_dir(config),
        built=built,
        run_id=run_id,
        select=select,
        out=out,
        err=err,
        phases=phases,
    )
    verdict = "done" if status == EXIT_OK else "FAILED"
    print(f"transform: {verdict} in {time.monotonic() - started:.0f} s", file=out, flush=True)
    return status


def docs_generate(config: Config, *, output: TextIO | None = None) -> Path:
    """Generate the dbt documentation site; return the directory holding index.html.

    The directory also holds static_index.html, one self-contained file to open without a
    web server. Raises TransformError when dbt fails.
    """
    out = output or sys.stdout
    command = [
        dbt_executable(),
        "--no-use-colors",
        "docs",
        "generate",
        "--static",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    code, _results = _run_dbt(config, command, out)
    target = dbt_target_dir(config)
    if code != 0 or not (target / "index.html").exists():
        raise TransformError(f"dbt docs generate failed (exit code {code}); log: {dbt_log_dir(config) / 'dbt.log'}")
    return target
