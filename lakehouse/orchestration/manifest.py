"""The dbt manifest the code location is built from: ``dbt parse``, no connection, cached.

``dbt parse`` reads the project and writes ``manifest.json`` without reaching the Thrift server,
so the code location loads with the services down. The manifest is kept under the state
directory, one per project fingerprint (``publish.project_fingerprint``: the dbt sources, not
their timestamps), and parsed again only when the project changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.modeling import publish, runner

MANIFEST_FILE = "manifest.json"
PARSE_TIMEOUT_SECONDS = 300


class ManifestError(LakehouseError):
    """`dbt parse` failed: the code location cannot describe the dbt assets."""


def manifest_dir(config: Config, fingerprint: str | None = None) -> Path:
    return config.home / "dbt" / "dagster" / "manifests" / (fingerprint or publish.project_fingerprint())


def parse_command() -> list[str]:
    project = str(runner.DBT_PROJECT_DIR)
    return [runner.dbt_executable(), "--no-use-colors", "parse", "--project-dir", project, "--profiles-dir", project]


def manifest_path(config: Config) -> Path:
    """The manifest of the dbt project as it is now, parsed once per project fingerprint.

    Parsed into a directory of its own and renamed into place: two processes loading the code
    location at once (webserver and daemon) never read a half-written manifest.
    """
    target = manifest_dir(config)
    manifest = target / MANIFEST_FILE
    if manifest.exists():
        return manifest
    scratch = target.with_name(f"{target.name}.parsing-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = runner.dbt_environment(config)
    env.update({"DBT_TARGET_PATH": str(scratch), "DBT_LOG_PATH": str(scratch)})
    done = subprocess.run(
        parse_command(), env=env, capture_output=True, text=True, timeout=PARSE_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0 or not (scratch / MANIFEST_FILE).exists():
        lines = [line for line in (done.stdout + done.stderr).splitlines() if "error" in line.lower()]
        detail = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise ManifestError(f"dbt parse of {runner.DBT_PROJECT_DIR} failed: {detail} (log: {scratch / 'dbt.log'})")
    try:
        scratch.rename(target)
    except OSError:  # another process put its manifest there first: the same project, the same file
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def published_nodes(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The models and snapshots the publish step turns into silver and gold views."""
    return sorted(
        (
            node
            for node in manifest["nodes"].values()
            if node["resource_type"] in ("model", "snapshot")
            and node["schema"].endswith(publish.BUILD_SCHEMA_SUFFIX)
            and node["config"].get("enabled", True)
        ),
        key=lambda node: node["unique_id"],
    )


def environment_without_paths(config: Config) -> dict[str, str]:
    """dbt's environment for a run under Dagster: dagster-dbt sets the target and log paths."""
    env = runner.dbt_environment(config, base={})
    for key in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):
        env.pop(key, None)
    return env
