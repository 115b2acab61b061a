"""Superset's dashboards back into ``dashboards/``: what a person built in the UI becomes code.

``GET /api/v1/dashboard/export/`` gives a ZIP of every dashboard with its charts, datasets and
database in Superset's import format; :func:`lakehouse.dashboards.bundle.normalise_export`
takes the root folder off, puts the URI placeholder in the database file and turns each chart's
query context into a mapping. Files keep Superset's names (``charts/<name>_<id>.yaml``) minus
the id, so a chart exported again lands on its own file. What the export holds replaces the
files of the same name; files of objects deleted in Superset stay (delete them by hand).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath

from lakehouse.config import Config
from lakehouse.dashboards import api, bundle

# Superset names export files <secure_filename(name)>_<id>.yaml.
ID_SUFFIX = re.compile(r"_\d+$")


def stable_name(path: str) -> str:
    """charts/Daily_active_users_12.yaml -> charts/Daily_active_users.yaml (a name ending in _<digits> loses them)."""
    pure = PurePosixPath(path)
    if pure.parts[0] in ("charts", "dashboards", "datasets"):
        return str(pure.with_stem(ID_SUFFIX.sub("", pure.stem)))
    return path


def export_dashboards(config: Config, root: Path = bundle.DASHBOARDS_DIR) -> list[Path]:
    """Write every dashboard of the running Superset into ``root``; the paths written."""
    session = api.client(config)
    ids = ",".join(str(d["id"]) for d in session.dashboards())
    archive = session.download(f"/api/v1/dashboard/export/?q=!({ids})")
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle_zip:
        contents = {name: bundle_zip.read(name).decode() for name in bundle_zip.namelist() if name.endswith(".yaml")}
    written = []
    for name, text in sorted(bundle.normalise_export(contents).items()):
        path = root / stable_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
