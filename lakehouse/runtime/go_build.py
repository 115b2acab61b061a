"""Build the project's Go servers (``tools/ferretdb``, ``tools/seaweedfs``) into a cache, once.

Each tool directory is a Go module of its own whose go.sum pins every dependency; the build is
static (``CGO_ENABLED=0``), reproducible (``-trimpath``) and may not change go.mod
(``-mod=readonly``). The binary is written to a temporary name and renamed, so an interrupted
build never leaves a broken one; the Go module and build caches make a rebuild fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lakehouse.errors import LakehouseError

GO_FALLBACK = Path("/usr/local/go/bin/go")


class GoBuildError(LakehouseError):
    """Go is missing, or a build failed; one readable line naming what was built."""


def go_build(source: Path, target: Path, *, what: str, package: str = ".", timeout: float, missing: str) -> Path:
    """``go build`` ``package`` in ``source`` into ``target`` unless it exists; ``missing`` says
    what to do without Go."""
    if target.exists():
        return target
    go = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.exists() else None)
    if go is None:
        raise GoBuildError(f"{what}: Go is needed to build it ({missing})")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly")
    try:
        result = subprocess.run(
            [go, "build", "-trimpath", "-o", str(partial), package],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise GoBuildError(f"{what}: the build took over {timeout:.0f} s") from None
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise GoBuildError(f"{what}: the build failed: {last}")
    os.replace(partial, target)
    return target
