"""The dbt project's SQL follows one style (dbt/.sqlfluff), checked by sqlfluff as `make lint` does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse_testing import skip_unless_ci

from lakehouse.config import PROJECT_ROOT

DBT = PROJECT_ROOT / "dbt"
LINTED = ("models", "tests", "snapshots", "analyses")


def _sqlfluff() -> str:
    local = Path(sys.executable).parent / "sqlfluff"
    found = str(local) if local.exists() else shutil.which("sqlfluff")
    if found is None:
        skip_unless_ci("sqlfluff is not installed (a dev dependency: make setup installs it)")
    return found


def _lint(*paths: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_sqlfluff(), "lint", "--nocolor", *paths], cwd=DBT, capture_output=True, text=True, timeout=240, check=False
    )


def test_the_dbt_project_follows_its_sql_style() -> None:
    result = _lint(*LINTED)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_style_check_would_catch_a_model_that_breaks_it(tmp_path: Path) -> None:
    sloppy = tmp_path / "sloppy.sql"
    sloppy.write_text("SELECT User_ID,count(*) AS N FROM {{ ref('dim_users') }} GROUP BY 1\n")
    result = _lint("--config", str(DBT / ".sqlfluff"), str(sloppy))
    assert result.returncode != 0
    assert "CP01" in result.stdout and "LT01" in result.stdout, result.stdout
