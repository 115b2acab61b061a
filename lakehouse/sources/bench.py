"""Benchmark of the source side: generating the files and loading them (``lakehouse bench``).

:func:`bench_sources` generates a scale into ``<home>/data/bench-<scale>`` and times it, then
loads the files into PostgreSQL and MongoDB and times every table, then times a no-op reload
and one simulated day. It returns a JSON-ready dict; writing it is the caller's job.

The load goes to separate databases, ``<postgres.database>_bench`` and
``<mongodb.database>_bench`` on the configured servers, so a benchmark never replaces the
sources the pipeline reads. They are dropped at the end unless ``keep=True``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from lakehouse.config import Config
from lakehouse.services import mongodb, postgres
from lakehouse.services.process import ServiceError
from lakehouse.sources.generate import DEFAULT_DEFECT_RATE, DEFAULT_SEED, SCALES, generate
from lakehouse.sources.load import load_sources_timed
from lakehouse.sources.simulate import simulate

BENCH_DATABASE_SUFFIX = "_bench"
SIMULATED_DAYS = 1
MEGABYTE = 1 << 20


def bench_sources(
    config: Config,
    scale: str = "medium",
    out_dir: Path | None = None,
    *,
    seed: int = DEFAULT_SEED,
    keep: bool = False,
    progress: Callable[[str], None] = print,
) -> dict:
    """Time generation and loading at ``scale``; return the measurements as a JSON-ready dict.

    ``out_dir`` defaults to ``<home>/data/bench-<scale>``. Rates are rows per second of wall
    time; for the load, per target table/collection and in total (sha256 check, COPY, indexes
    and ANALYZE included).
    """
    if scale not in SCALES:
        raise ValueError(f"scale: unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    target = Path(out_dir) if out_dir is not None else config.data_dir / f"bench-{scale}"
    bench_config = _bench_config(config)

    progress(f"bench: generating scale {scale} into {target}")
    started = time.perf_counter()
    manifest = generate(target, scale=scale, seed=seed, defect_rate=DEFAULT_DEFECT_RATE, progress=progress)
    generate_seconds = time.perf_counter() - started
    files = {name: {"rows": info["rows"], "bytes": info["bytes"]} for name, info in manifest["files"].items()}
    generated_rows = sum(info["rows"] for info in files.values())
    progress(f"bench: generated {generated_rows:,} rows in {generate_seconds:.1f} s")

    try:
        postgres.ensure_databases(bench_config)
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        where = bench_config.postgres.display()
        raise ServiceError(f"postgres: cannot create {where} for the benchmark: {reason}") from None
    try:
        progress(f"bench: loading into {bench_config.postgres.display()} and {bench_config.mongodb.display()}")
        started = time.perf_counter()
        counts, results = load_sources_timed(bench_config, target, replace=True, progress=progress)
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        load_sources_timed(bench_config, target, progress=lambda _message: None)
        noop_seconds = time.perf_counter() - started
        started = time.perf_counter()
        simulated = simulate(bench_config, SIMULATED_DAYS, progress=lambda _message: None)
        simulate_seconds = time.perf_counter() - started
        servers = _server_versions(bench_config)
    finally:
        if not keep:
            _drop_bench_databases(bench_config)

    load = {}
    for result in results:
        size = files[result.file]["bytes"]
        load[result.target] = {
            "file": result.file,
            "rows": result.rows,
            "seconds": round(result.seconds, 3),
            "rows_per_second": _per_second(result.rows, result.seconds),
            "mb_per_second": round(size / MEGABYTE / result.seconds, 1) if result.seconds > 0 else None,
        }
    loaded_rows = sum(result.rows for result in results)
    return {
        "benchmark": "sources",
        "scale": scale,
        "seed": seed,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_dir": str(target),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "servers": servers,
        "generate": {
            "seconds": round(generate_seconds, 3),
            "rows": generated_rows,
            "rows_per_second": _per_second(generated_rows, generate_seconds),
            "files": files,
        },
        "load": {
            "tables": load,
            "seconds": round(load_seconds, 3),
            "rows": loaded_rows,
            "rows_per_second": _per_second(loaded_rows, load_seconds),
            "counts": counts,
        },
        "noop_reload_seconds": round(noop_seconds, 3),
        "simulate": {"days": SIMULATED_DAYS, "seconds": round(simulate_seconds, 3), "counts": simulated},
    }


def _bench_config(config: Config) -> Config:
    """The config with the source databases renamed to their ``_bench`` twins."""
    return dataclasses.replace(
        config,
        postgres=dataclasses.replace(config.postgres, database=config.postgres.database + BENCH_DATABASE_SUFFIX),
        mongodb=dataclasses.replace(config.mongodb, database=config.mongodb.database + BENCH_DATABASE_SUFFIX),
    )


def _drop_bench_databases(config: Config) -> None:
    """Drop the ``_bench`` databases (they hold a copy of generated data only)."""
    conn = postgres.connect(config, "postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(config.postgres.database)))
    finally:
        conn.close()
    with mongodb.client(config) as client:
        client.drop_database(config.mongodb.database)


def _server_versions(config: Config) -> dict[str, str]:
    """PostgreSQL and MongoDB(-compatible) server versions, for the record."""
    conn = postgres.connect(config, config.postgres.database)
    try:
        with conn.cursor() as cur:
            cur.execute("show server_version")
            pg_version = str(cur.fetchone()[0])
    finally:
        conn.close()
    with mongodb.client(config) as client:
        info: dict[str, Any] = client.server_info()
    wire = f"MongoDB {info.get('version', 'unknown')}"
    mongo = f"FerretDB {info['ferretdbVersion']} ({wire} wire)" if "ferretdbVersion" in info else wire
    return {"postgres": pg_version, "mongodb": mongo}


def _per_second(rows: int, seconds: float) -> float | None:
    """Rows per second, rounded; None for a zero duration."""
    return round(rows / seconds) if seconds > 0 else None


__all__ = ["bench_sources"]
