"""The e2e layer's stack, shared by its modules: started from nothing once per run.

``first_run`` is what a new user sees: an empty state directory, then ``lakehouse pipeline``
starts the services, generates and loads the tiny scale, extracts, validates, builds silver and
gold with dbt and maintains bronze. The stack is stopped at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from e2e_stack import Stack

from lakehouse.config import Config


@pytest.fixture(scope="session")
def stack(config: Config) -> Iterator[Stack]:
    home = config.home.parent / f"{config.home.name}-e2e"
    subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "down"],
        env={**os.environ, "LAKEHOUSE_HOME": str(home)},
        capture_output=True,
        check=False,
    )
    if home.exists():
        shutil.rmtree(home)
    e2e = Stack(home, config.cache_dir)
    try:
        yield e2e
    finally:
        e2e.run("down", timeout=300)


@pytest.fixture(scope="session")
def first_run(stack: Stack) -> str:
    result = stack.pipeline("--profile")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout
