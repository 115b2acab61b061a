"""Compile the project's small Java modules (``tools/<module>/src``) into jars in the cache.

The Thrift server loads two of them: the password provider (``tools/thrift-auth``) and the
SQL lockdown (``tools/thrift-lockdown``). Each is compiled with ``javac --release 17`` against
pip's pyspark jars into ``<cache_dir>/<module>/lakehouse-<module>-<sha256 of the sources>.jar``
by ``lakehouse setup``: a changed source gives a new name, an unchanged one does no work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.errors import LakehouseError

TOOLS_DIR = PROJECT_ROOT / "tools"
JAVA_RELEASE = "17"
BUILD_TIMEOUT_SECONDS = 300


class JavaBuildError(LakehouseError):
    """A Java module could not be built; one readable line."""


def source_dir(module: str) -> Path:
    return TOOLS_DIR / module / "src"


def source_files(module: str) -> list[Path]:
    return sorted(source_dir(module).rglob("*.java"))


def source_digest(module: str) -> str:
    """sha256 over the module's sources (path and content): names the jar built from them."""
    digest = hashlib.sha256()
    root = source_dir(module)
    for path in source_files(module):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def module_jar(config: Config, module: str) -> Path:
    return config.cache_dir / module / f"lakehouse-{module}-{source_digest(module)[:16]}.jar"


def javac() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").exists():
        return str(Path(java_home) / "bin" / "javac")
    return shutil.which("javac")


def compile_classpath(patterns: tuple[str, ...], what: str) -> list[Path]:
    """The pyspark jars matching each pattern (the first match of each)."""
    from lakehouse.runtime.distribution import spark_home

    jars_dir = spark_home() / "jars"
    found = []
    for pattern in patterns:
        matches = sorted(jars_dir.glob(pattern))
        if not matches:
            raise JavaBuildError(f"{what}: no {pattern} in {jars_dir} (is pyspark installed?)")
        found.append(matches[0])
    return found


def build_module(config: Config, module: str, compile_jars: tuple[str, ...], what: str) -> Path:
    """Compile a module into the cache once per source version; return the jar's path."""
    target = module_jar(config, module)
    if target.exists():
        return target
    compiler = javac()
    if compiler is None:
        raise JavaBuildError(f"{what}: javac (a JDK 17) is needed to build it")
    target.parent.mkdir(parents=True, exist_ok=True)
    classpath = os.pathsep.join(str(p) for p in compile_classpath(compile_jars, what))
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        classes = Path(tmp) / "classes"
        command = [compiler, "--release", JAVA_RELEASE, "-nowarn", "-cp", classpath, "-d", str(classes)]
        result = subprocess.run(
            [*command, *map(str, source_files(module))],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["unknown error"])[0]
            raise JavaBuildError(f"{what}: javac failed: {first}")
        partial = Path(tmp) / target.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: lakehouse setup\r\n\r\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        os.replace(partial, target)
    return target
