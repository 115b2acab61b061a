"""The `lakehouse` command.

    lakehouse setup                 resolve Spark jars, build FerretDB and the Thrift server's Java modules
    lakehouse up | down | status    local services
    lakehouse sql "QUERY"           run a query over the Thrift endpoint
    lakehouse generate              write synthetic source files
    lakehouse load-sources          load them into PostgreSQL and MongoDB
    lakehouse simulate --days N     advance the sources in time
    lakehouse extract               sources -> bronze Delta tables
    lakehouse validate              quality gate on what is pending in bronze (a verdict per table)
    lakehouse quarantine T --where  move bronze rows past a failed gate to bronze.quarantine
    lakehouse transform             dbt build: silver and gold
    lakehouse pipeline              all of it, end to end, with a summary (--profile: and its profile)
    lakehouse profile RUN_ID        where a recorded run's time went
    lakehouse bench                 measure it (medium scale by default); --compare A B: two results
    lakehouse gold save|diff NAME   keep gold, then compare it row by row (a change keeps gold equal)
    lakehouse dashboard up|down|status|check|export   Superset with the dashboards of dashboards/
    lakehouse dagster up|down|status   Dagster's webserver and daemon (the optional dagster extra)

Errors are one line on stderr and a non-zero exit code; no stack traces for expected failures.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lakehouse.config import THRIFT_PASSWORD_ENV, Config, load_config, thrift_password_file
from lakehouse.errors import LakehouseError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _print_status(config: Config) -> None:
    from lakehouse import services

    rows = [("service", "state", "address", "pid", "log")]
    for s in services.status(config):
        rows.append((s.name, s.state, s.address, str(s.pid or "-"), str(s.log or "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"state directory: {config.home}")


def _service_names(names: list[str]) -> tuple[str, ...]:
    from lakehouse.services import SERVICES

    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ValueError(f"unknown service {unknown[0]!r}: choose from {', '.join(SERVICES)}")
    return tuple(names) or SERVICES


def cmd_setup(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.runtime.jars import resolve_jars
    from lakehouse.services import mongodb
    from lakehouse.serving import auth

    jars = resolve_jars(config.jar_dir, config.spark.packages, config.spark.maven_repo)
    print(f"spark jars: {len(jars)} in {config.jar_dir}")
    if config.mongodb.embedded:
        print(f"ferretdb: {mongodb.build_ferretdb(config)}")
    if args.object_store or config.on_object_store:
        from lakehouse.runtime.jars import resolve_s3a_jars, s3a_jar_dir
        from lakehouse.services import objectstore

        print(f"s3a jars: {len(resolve_s3a_jars(config))} in {s3a_jar_dir(config)}")
        if args.object_store or config.object_store.embedded:
            print(f"seaweedfs: {objectstore.build_seaweedfs(config)}")
    from lakehouse.serving import lockdown

    print(f"thrift lockdown extension: {lockdown.build_extension(config)}")
    try:
        print(f"thrift auth provider: {auth.build_provider(config)}")
    except auth.ThriftAuthError as exc:
        if config.thrift.auth_enabled:
            raise
        # Only a server that requires a password needs it.
        print(f"{exc} (skipped: needed only when thrift.auth is password)")
    return EXIT_OK


def cmd_up(config: Config, args: argparse.Namespace) -> int:
    from lakehouse import services

    wanted = _service_names(args.services)
    started = services.up(config, wanted)
    print(f"started: {', '.join(started)}" if started else "everything was already running")
    _print_status(config)
    print(f"\nJDBC (BI tools, beeline): {config.thrift.jdbc_url}/gold")
    if config.thrift.auth_enabled:
        source = (
            "LAKEHOUSE_THRIFT_PASSWORD" if os.environ.get(THRIFT_PASSWORD_ENV) else thrift_password_file(config.home)
        )
        print(f"user {config.thrift.user}, password from {source}")
    return EXIT_OK


def cmd_down(config: Config, args: argparse.Namespace) -> int:
    from lakehouse import services
    from lakehouse.dashboards import superset
    from lakehouse.services import dagster

    # Dagster runs the pipeline against the services and Superset queries them: with them all,
    # both stop first (named services stop alone).
    stopped = []
    if not args.services:
        stopped += [name for name, stop in (("dagster", dagster.stop), (superset.NAME, superset.stop)) if stop(config)]
    stopped += services.down(config, _service_names(args.services))
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    print(f"data kept in {config.home}")
    return EXIT_OK


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    _print_status(config)
    return EXIT_OK


def cmd_sql(config: Config, args: argparse.Namespace) -> int:
    """A read runs at once; a statement that may write holds the writer lock, like every writer
    (on object storage Delta's commits are safe among the writers of one driver only)."""
    from lakehouse.serving.sql_client import format_result, run_query, writes

    def run() -> int:
        print(format_result(run_query(config, args.query, database=args.database), args.format))
        return EXIT_OK

    return _as_writer(config, "sql", run) if writes(args.query) else run()


def cmd_generate(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.sources.generate import generate

    out = Path(args.out) if args.out else config.data_dir / args.scale
    manifest = generate(
        out, scale=args.scale, seed=args.seed, defect_rate=args.defect_rate, progress=lambda m: print(m, flush=True)
    )
    rows = {name: info["rows"] for name, info in manifest["files"].items()}
    print(f"wrote {', '.join(f'{n} ({r:,} rows)' for n, r in rows.items())} to {out}")
    return EXIT_OK


def cmd_load_sources(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.sources.load import load_sources

    data = Path(args.data) if args.data else config.data_dir / args.scale
    if not (data / "manifest.json").exists():
        raise ValueError(f"no generated files in {data}: run `lakehouse generate --scale {args.scale}` first")
    counts = load_sources(config, data, replace=args.replace, progress=lambda m: print(m, flush=True))
    print("loaded: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()))
    return EXIT_OK


def cmd_simulate(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.sources.simulate import simulate

    summary = simulate(config, args.days, seed=args.seed, progress=lambda m: print(m, flush=True))
    print("simulated: " + ", ".join(f"{k} {v:,}" for k, v in summary.items() if isinstance(v, int)))
    return EXIT_OK


def _as_writer(config: Config, command: str, run: Callable[[], int]) -> int:
    """Run a command that writes the lakehouse under the writer lock (lakehouse/pipeline/lock.py)."""
    from lakehouse.pipeline.lock import LockedError, writer_lock

    try:
        with writer_lock(config, command, wait=False, notify=lambda message: print(message, flush=True)):
            return run()
    except LockedError as exc:
        print(f"lakehouse {command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_extract(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.bronze.extract import SOURCES, select_contracts
    from lakehouse.pipeline.decisions import SourcesDown, tables_to_extract
    from lakehouse.pipeline.jobs import submit_job

    sources = SOURCES if args.source == "all" else (args.source,)
    tables = [c.source_name for c in select_contracts(sources, args.table)]

    def run() -> int:
        wanted = tables
        if not (args.no_skip or args.full_refresh):
            try:
                pending = tables_to_extract(config, tables, _say)
            except SourcesDown as exc:
                for line in exc.lines:  # as the extract job says it
                    print(f"extract: error: {line}", file=sys.stderr)
                return EXIT_FAILURE
            if pending == []:
                print(f"extract: skipped: nothing new in the {len(tables)} source tables")
                return EXIT_OK
            wanted = tables if pending is None else pending
        job_args = ["--source", args.source]
        for table in wanted:
            job_args += ["--table", table]
        if args.full_refresh:
            job_args.append("--full-refresh")
        if args.run_id:
            job_args += ["--run-id", args.run_id]
        return submit_job(config, "extract.py", job_args, app_name=f"lakehouse-extract-{args.source}")

    return _as_writer(config, "extract", run)


def cmd_validate(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.pipeline.decisions import gate_decision, still_failed_message
    from lakehouse.pipeline.jobs import submit_job

    def run() -> int:
        if not (args.no_skip or args.batch_id):
            decision = gate_decision(config)
            if decision.failed_run is not None:
                print(f"validate: error: {still_failed_message(decision.failed_run)}", file=sys.stderr)
                return EXIT_FAILURE
            for warning in decision.warnings:
                print(f"warning: {warning}")
            if decision.reason is None:
                print("validate: skipped: no unvalidated batch in the bronze tables")
                return EXIT_OK
            print(f"validate: the gate runs: {decision.reason}")
        job_args = []
        if args.batch_id:
            job_args += ["--batch-id", args.batch_id]
        if args.run_id:
            job_args += ["--run-id", args.run_id]
        return submit_job(config, "validate_bronze.py", job_args, app_name="lakehouse-validate")

    return _as_writer(config, "validate", run)


def cmd_transform(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.modeling.runner import run_transform, run_unit_tests

    if args.unit_tests:
        return run_unit_tests(config)
    return _as_writer(
        config,
        "transform",
        lambda: run_transform(config, select=args.select, full_refresh=args.full_refresh, run_id=args.run_id),
    )


def cmd_quarantine(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.quality.quarantine import QuarantineError, accept_quarantined, move_to_quarantine

    def say(message: str) -> None:
        print(message, flush=True)

    def run() -> int:
        try:
            if args.accept_quarantined:
                accept_quarantined(config, args.table, args.reason, progress=say)
            else:
                move_to_quarantine(config, args.table, args.where or "", args.reason, progress=say)
        except QuarantineError as exc:
            print(f"lakehouse quarantine: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        print("next: lakehouse pipeline (the gate validates what is still pending, then dbt builds)")
        return 0

    return _as_writer(config, "quarantine", run)


def cmd_pipeline(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.pipeline.context import Options
    from lakehouse.pipeline.run import run_pipeline

    options = Options(
        from_step=args.from_step,
        only=args.only,
        full_refresh=args.full_refresh,
        scale=args.scale,
        quiet=args.quiet,
        log_format=args.log_format,
        wait=args.wait,
        generate_sources=args.generate_sources,
        profile=args.profile,
        no_skip=args.no_skip,
    )
    return run_pipeline(config, options)


def cmd_profile(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.profiling import format_profile, read_profile

    rows = read_profile(config, args.run_id)
    if not rows:
        raise ValueError(f"no run {args.run_id!r} in ops.pipeline_runs: the summary of each run starts with its id")
    print(format_profile(args.run_id, rows))
    return EXIT_OK


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LakehouseError(f"cannot read {path}: {exc}") from exc


def cmd_bench(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.bench import BenchError, compare_reports, format_report, run_bench, write_report

    if args.compare:
        print(compare_reports(*(_read_json(Path(path)) for path in args.compare)))
        return EXIT_OK
    if args.cluster:
        from lakehouse.bench_cluster import format_cluster_report, run_cluster_bench, write_cluster_report

        try:
            cluster_report = run_cluster_bench(config, args.scale or "small", progress=lambda m: print(m, flush=True))
        except BenchError as exc:
            print(f"lakehouse bench --cluster: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        print(format_cluster_report(cluster_report))
        print(f"\nresults: {write_cluster_report(config, cluster_report)}")
        return EXIT_OK
    try:
        report = run_bench(config, args.scale or "medium", progress=lambda m: print(m, flush=True))
    except BenchError as exc:
        print(f"lakehouse bench: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    path = write_report(config, report)
    print(format_report(report))
    print(f"\nresults: {path}")
    return EXIT_OK


def cmd_gold(config: Config, args: argparse.Namespace) -> int:
    from lakehouse import gold_diff

    query = gold_diff.thrift_query(config)
    if args.action == "save":

        def save() -> int:
            saved = gold_diff.save(query, args.name)
            print(f"gold: saved {len(saved)} relations as {gold_diff.saved_schema(args.name)}")
            return EXIT_OK

        return _as_writer(config, "gold save", save)
    equal, text = gold_diff.report(gold_diff.compare(query, args.name))
    print(text)
    return EXIT_OK if equal else EXIT_FAILURE


def cmd_dagster(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.services import dagster

    if args.action == "down":
        print("dagster: stopped" if dagster.stop(config) else "dagster: was not running")
        return EXIT_OK
    if args.action == "up":
        _say(f"dagster: starting its webserver and daemon on {config.orchestrator.url} ({dagster.home_dir(config)})")
        if not dagster.start(config):
            print("dagster: was already running")
    s = dagster.status(config)
    print(f"dagster: {s.state}, pid {s.pid or '-'}, log {s.log}")
    if s.state != "stopped":
        print(f"Dagster UI: {config.orchestrator.url} (jobs lakehouse_pipeline and lakehouse_maintain)")
        print("stop it: lakehouse dagster down (or lakehouse down, with the services)")
    return EXIT_OK


def cmd_dashboard(config: Config, args: argparse.Namespace) -> int:
    from lakehouse.dashboards import superset

    if args.action == "down":
        print("superset: stopped" if superset.stop(config) else "superset: was not running")
        return EXIT_OK
    if args.action == "export":
        from lakehouse.dashboards import export

        written = export.export_dashboards(config)
        print(f"dashboards/: wrote {len(written)} files from the running Superset; review them: git diff dashboards")
        return EXIT_OK
    if args.action == "check":
        from lakehouse.dashboards import api

        results = api.check_charts(config)
        for result in results:
            outcome = f"error: {result.error}" if result.error else f"{result.rows} rows"
            print(f"{result.chart_id:>4}  {result.name}: {outcome}")
        failed = [r for r in results if r.error]
        print(f"{len(results)} charts, {len(failed)} with an error")
        return EXIT_FAILURE if failed else EXIT_OK
    if args.action == "up":
        started = superset.start(config, _say)
        if not started:
            print("superset: was already running; imported the dashboards of dashboards/ again")
    s = superset.status(config)
    print(f"superset: {s.state}, pid {s.pid or '-'}, log {s.log}")
    if s.state != "stopped":
        print(f"dashboards: {config.dashboard.url}/dashboard/list/")
        print(f"login: {config.dashboard.admin_user}, password in {superset.admin_password_file(config)}")
        from lakehouse.services import thrift

        if not thrift.healthy(config):
            print(
                f"note: the Thrift server at {config.thrift.host}:{config.thrift.port} does not answer: "
                "the charts show errors until `make pipeline` (or `lakehouse up`) runs"
            )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from lakehouse.services import SERVICES
    from lakehouse.serving.sql_client import FORMATS

    parser = argparse.ArgumentParser(prog="lakehouse", description="Video-streaming lakehouse on Spark and Delta.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[Config, argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add("setup", cmd_setup, "resolve the Spark jars, build FerretDB and the Thrift auth provider (idempotent)")
    p.add_argument(
        "--object-store",
        action="store_true",
        help="also fetch the S3A jars and build SeaweedFS (done anyway when spark.warehouse_dir is s3a://)",
    )
    for name, handler, text in (
        ("up", cmd_up, "start the local services and wait until they are healthy"),
        ("down", cmd_down, "stop the services that `up` started; data stays"),
    ):
        p = add(name, handler, text)
        p.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)")
    add("status", cmd_status, "show what runs where, pids and log files")

    p = add("sql", cmd_sql, "run a query over the Thrift endpoint and print the result")
    p.add_argument("query")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--database", default="default")

    p = add("generate", cmd_generate, "write synthetic source files (users, sessions, ratings, content)")
    p.add_argument("--scale", choices=("tiny", "small", "medium", "large"), default="small")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--defect-rate", type=float, default=0.01)
    p.add_argument("--out", help="output directory (default: <state>/data/<scale>)")

    p = add("load-sources", cmd_load_sources, "create the source schemas and load generated files (idempotent)")
    p.add_argument("--scale", choices=("tiny", "small", "medium", "large"), default="small")
    p.add_argument("--data", help="directory with the generated files (default: <state>/data/<scale>)")
    p.add_argument("--replace", action="store_true", help="drop and reload the sources from scratch")

    p = add("simulate", cmd_simulate, "advance the sources in time, in place, as the application would")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)

    p = add("extract", cmd_extract, "extract the sources into bronze Delta tables (one Spark application)")
    p.add_argument("--source", choices=("postgres", "mongodb", "all"), default="all")
    p.add_argument("--table", action="append", help="only this table (repeatable)")
    p.add_argument("--full-refresh", action="store_true", help="ignore watermarks and rebuild the tables")
    p.add_argument("--no-skip", action="store_true", help="extract even when the sources hold nothing new")
    p.add_argument("--run-id", help=argparse.SUPPRESS)

    p = add("validate", cmd_validate, "run the quality gate (Great Expectations) on what is pending in bronze")
    p.add_argument("--batch-id", help="look at this batch only (no verdict is stored)")
    p.add_argument("--no-skip", action="store_true", help="run the gate even when no batch is unvalidated")
    p.add_argument("--run-id", help=argparse.SUPPRESS)

    p = add("transform", cmd_transform, "build silver and gold with dbt through the Thrift server")
    p.add_argument("--select", help="dbt node selection (default: everything)")
    p.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    p.add_argument(
        "--unit-tests",
        action="store_true",
        help="only run dbt's unit tests (the SQL logic on mocked inputs; builds leave them to CI)",
    )
    p.add_argument("--run-id", help=argparse.SUPPRESS)

    p = add("quarantine", cmd_quarantine, "move bronze rows that failed the gate to bronze.quarantine, with a reason")
    p.add_argument("table", help="bronze table: users, viewing_sessions, ratings or content")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--where", help="move the rows matching this SQL predicate, e.g. \"type = 'podcast'\"")
    which.add_argument(
        "--accept-quarantined",
        action="store_true",
        help="accept the rows the extract quarantined since the last passed gate (they stop counting in its share)",
    )
    p.add_argument("--reason", required=True, help="why (kept with the rows and in ops.pipeline_runs)")

    p = add("pipeline", cmd_pipeline, "up -> sources -> extract -> validate -> transform -> maintain -> summary")
    p.add_argument("--from", dest="from_step", metavar="STEP", help="start at this step")
    p.add_argument("--only", metavar="STEP", help="run only this step")
    p.add_argument("--full-refresh", action="store_true", help="rebuild bronze and incremental models")
    p.add_argument(
        "--scale",
        choices=("tiny", "small", "medium", "large"),
        default="small",
        help="data to generate when the sources are empty (default: small)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary and errors")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one event per line")
    p.add_argument("--wait", action="store_true", help="queue behind a running pipeline instead of failing")
    p.add_argument(
        "--generate-sources",
        action="store_true",
        help="fill empty external sources (LAKEHOUSE_POSTGRES_URL, LAKEHOUSE_MONGODB_URI) with synthetic data; "
        "the project's own local servers are filled without it",
    )
    p.add_argument("--profile", action="store_true", help="after the summary, print where the run's time went")
    p.add_argument(
        "--no-skip",
        action="store_true",
        help="run every step even when the lakehouse's state says it has nothing to do",
    )

    p = add("profile", cmd_profile, "where a recorded run's time went: JVM starts, Spark jobs, commits, dbt nodes")
    p.add_argument("run_id", metavar="RUN_ID", help="the run id the pipeline's summary starts with")

    p = add("bench", cmd_bench, "benchmark the pipeline in an isolated stack; JSON under <state>/reports")
    p.add_argument("--scale", choices=("tiny", "small", "medium", "large"), default=None)
    p.add_argument(
        "--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two bench JSON files step by step instead"
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="the pipeline on a standalone cluster with 1, then 2 workers, warehouse on s3a (default scale: small)",
    )

    p = add("gold", cmd_gold, "save gold, or compare it row by row with what was saved (a change keeps gold equal)")
    p.add_argument("action", choices=("save", "diff"))
    p.add_argument("name", metavar="NAME", help="the copy's name: gold_saved_NAME")

    p = add("dagster", cmd_dagster, "Dagster's webserver and daemon for this lakehouse (needs: make dagster-extra)")
    p.add_argument("action", choices=("up", "down", "status"), help="up: start them in the background on 127.0.0.1")

    p = add("dashboard", cmd_dashboard, "Apache Superset over the Thrift endpoint, with the dashboards of dashboards/")
    p.add_argument(
        "action",
        choices=("up", "down", "status", "check", "export"),
        help="up: install (once), import dashboards/ and start; check: every chart's data through Superset's API; "
        "export: Superset's dashboards back into dashboards/",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config()
        return args.handler(config, args)
    except (LakehouseError, ValueError) as exc:  # one line already; a ValueError: a bad argument
        print(f"lakehouse {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"lakehouse {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
