"""Superset's own virtualenv, installed once from ``dashboards/requirements.lock``.

Superset pins Flask, SQLAlchemy 1.4 and pandas versions of its own: it gets a virtualenv apart
from the project's (dbt, pyspark), named after the lock's digest, under ``dashboard.venv_root``:
by default the user's cache (``$XDG_CACHE_HOME/lakehouse/superset``), not the state directory,
so a second clone or a fresh state directory (CI's clean clone) finds it installed: 825 MB and
about a minute of pip that the lock alone decides. A second call finds the finished install (its
stamp file) and does no network work; a changed lock installs a new virtualenv beside the old
one; two installs at once take turns (a lock file). ``--no-deps``: the lock is the whole set.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from lakehouse import processes
from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.errors import LakehouseError

LOCK_FILE = PROJECT_ROOT / "dashboards" / "requirements.lock"
STAMP = ".installed"
INSTALL_TIMEOUT_SECONDS = 1800
OUTPUT_LINES_SHOWN = 5


class DashboardError(LakehouseError):
    """Superset could not be installed, set up, started or reached; one readable line."""


def lock_digest() -> str:
    """sha256 of the lock and the Python version it is installed for."""
    digest = hashlib.sha256(LOCK_FILE.read_bytes())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()


def venv_root(config: Config) -> Path:
    """``dashboard.venv_root`` (relative to the project), else the user's cache."""
    if config.dashboard.venv_root:
        root = Path(config.dashboard.venv_root).expanduser()
        return root if root.is_absolute() else PROJECT_ROOT / root
    return config.user_cache_dir / "superset"


def venv_dir(config: Config) -> Path:
    return venv_root(config) / f"venv-{lock_digest()[:16]}"


def venv_bin(config: Config, name: str) -> Path:
    return venv_dir(config) / "bin" / name


def installed(config: Config) -> bool:
    return (venv_dir(config) / STAMP).is_file()


def _run(command: list[str], what: str) -> None:
    result = processes.run(
        command,
        timeout=INSTALL_TIMEOUT_SECONDS,
        what=what,
        setting="lakehouse.dashboards.install.INSTALL_TIMEOUT_SECONDS",
    )
    if result.returncode != 0:
        last = " | ".join(line for line in result.stdout.splitlines()[-OUTPUT_LINES_SHOWN:] if line.strip())
        raise DashboardError(f"{what} failed (exit {result.returncode}): {last}")


def ensure_installed(config: Config, say: Callable[[str], None]) -> Path:
    """The virtualenv with Superset, installed from the lock on first use; its path."""
    venv = venv_dir(config)
    if installed(config):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".install.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another clone may be installing the same lock
        if installed(config):
            return venv
        say(f"superset: installing {LOCK_FILE.relative_to(PROJECT_ROOT)} into {venv} (about a minute, ~800 MB)...")
        shutil.rmtree(venv, ignore_errors=True)  # what a killed install left
        _run([sys.executable, "-m", "venv", str(venv)], "creating Superset's virtualenv")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
        _run([*pip, "--no-deps", "-r", str(LOCK_FILE)], f"pip install -r {LOCK_FILE.name} (Superset)")
        (venv / STAMP).write_text(lock_digest() + "\n")
    return venv
