"""Resolve the Spark jars the project needs from Maven Central, once, into a cache.

The coordinates are listed in ``spark.packages`` (conf/lakehouse.yaml) with their transitive
runtime dependencies spelled out: Spark already ships Scala and the rest, so the list is short
and an exact list beats a resolver that may pull a second copy of something Spark has.
Every download is checked against the SHA-1 that Maven Central publishes beside it, written
to a temporary name and renamed, so an interrupted download never leaves a broken jar.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from lakehouse.errors import LakehouseError

log = logging.getLogger(__name__)
DOWNLOAD_TIMEOUT_SECONDS = 60
CHUNK_BYTES = 1 << 20


class JarResolutionError(LakehouseError):
    """A jar could not be downloaded or verified; the message names the coordinate."""


def jar_file_name(coordinate: str) -> str:
    _group, artifact, version = coordinate.split(":")
    return f"{artifact}-{version}.jar"


def jar_url(repo: str, coordinate: str) -> str:
    group, artifact, version = coordinate.split(":")
    return f"{repo.rstrip('/')}/{group.replace('.', '/')}/{artifact}/{version}/{jar_file_name(coordinate)}"


def jar_paths(jar_dir: Path, coordinates: tuple[str, ...]) -> list[Path]:
    """Where the resolved jars are (or will be), in the configured order."""
    return [jar_dir / jar_file_name(c) for c in coordinates]


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        chunks = []
        while chunk := response.read(CHUNK_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)


def resolve_jars(jar_dir: Path, coordinates: tuple[str, ...], repo: str) -> list[Path]:
    """Download missing jars; return the paths of all of them. No network when all are present."""
    jar_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for coordinate in coordinates:
        target = jar_dir / jar_file_name(coordinate)
        paths.append(target)
        if target.exists():
            continue
        url = jar_url(repo, coordinate)
        log.info("downloading %s", coordinate)
        try:
            payload = _fetch(url)
            expected = _fetch(url + ".sha1").decode().split()[0].strip()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JarResolutionError(f"cannot download {coordinate} from {url}: {reason}") from None
        actual = hashlib.sha1(payload).hexdigest()
        if actual != expected:
            raise JarResolutionError(f"checksum mismatch for {coordinate}: expected {expected}, got {actual}")
        partial = target.with_suffix(".jar.partial")
        partial.write_bytes(payload)
        os.replace(partial, target)
    return paths
