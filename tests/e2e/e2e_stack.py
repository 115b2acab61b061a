"""The e2e stack: a state directory and free ports of its own, and the CLI run in it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lakehouse_testing import free_port

from lakehouse.config import PROJECT_ROOT, load_config
from lakehouse.serving.sql_client import delta_versions, run_query


class Stack:
    """The e2e stack: its environment, its config, and the CLI run in it."""

    def __init__(self, home: Path, cache_dir: Path) -> None:
        self.env = dict(os.environ)
        self.env.update(
            {
                "LAKEHOUSE_HOME": str(home),
                "LAKEHOUSE_CACHE_DIR": str(cache_dir),
                "LAKEHOUSE_POSTGRES_PORT": str(free_port()),
                "LAKEHOUSE_MONGODB_PORT": str(free_port()),
                "LAKEHOUSE_THRIFT_PORT": str(free_port()),
            }
        )
        self.config = load_config(env=self.env)

    def run(self, *args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PROJECT_ROOT,
            check=False,
        )

    def pipeline(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return self.run("pipeline", "--scale", "tiny", *args, timeout=timeout)

    def query(self, sql: str) -> list[tuple]:
        return run_query(self.config, sql).rows

    def versions(self, schemas: tuple[str, ...] = ("bronze", "silver_build", "gold_build")) -> dict[str, int]:
        """The newest Delta version of every table of the schemas (the build schemas hold the
        tables silver and gold publish)."""
        return delta_versions(self.config, schemas)

    def published(self) -> dict[str, str]:
        """What BI tools read: every object of silver and gold, with its definition.

        Each is a view that pins a Delta version of its build table (lakehouse/modeling/publish.py), so an
        unchanged definition means unchanged data. Spark's DDL time stamp is left out.
        """
        definitions = {}
        for schema in ("silver", "gold"):
            for _schema, name, _temporary in self.query(f"show tables in {schema}"):
                [(ddl,)] = self.query(f"show create table {schema}.{name}")
                definitions[f"{schema}.{name}"] = re.sub(r"\s*'transient_lastDdlTime' = '\d+'", "", ddl)
        return definitions
