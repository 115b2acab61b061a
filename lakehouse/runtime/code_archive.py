"""The project's code as a zip for the executors of a cluster (``SparkContext.addPyFile``).

On a cluster the executors import the project's modules (the MongoDB reader runs in their
tasks): they get them from this archive, which the driver serves (``spark.build_session`` adds
it on a non-local master), not from a checkout or virtualenv on the worker. Only the workers'
Python and the project's dependencies have to be there (``spark.executor_python``). The archive
holds the packages ``lakehouse`` and ``expectations`` (their ``.py`` files), is rebuilt when any
of them changes, and is written to a temporary name and renamed, so a job never ships half an
archive.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from lakehouse.config import PROJECT_ROOT, Config

PACKAGES = ("lakehouse", "expectations")
# Fixed timestamps: the same sources give the same archive bytes.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _sources() -> list[Path]:
    files = []
    for package in PACKAGES:
        files += [p for p in (PROJECT_ROOT / package).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def code_archive(config: Config) -> Path:
    """The zip of the current sources under <home>/spark-conf (built when they changed)."""
    sources = _sources()
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    target = config.spark_conf_dir / f"lakehouse-code-{digest.hexdigest()[:16]}.zip"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sources:
            info = zipfile.ZipInfo(str(path.relative_to(PROJECT_ROOT)), ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(partial, target)
    for old in target.parent.glob("lakehouse-code-*.zip"):
        if old != target:
            old.unlink(missing_ok=True)
    return target
