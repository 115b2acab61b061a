"""Password authentication for the Spark Thrift Server: the provider jar and its users file.

HiveServer2 with ``hive.server2.authentication=CUSTOM`` asks a Java class for every login.
The project's class (``tools/thrift-auth``) checks the user name and password against a file
of PBKDF2-SHA256 hashes, ``user:pbkdf2-sha256:iterations:salt:hash`` (base64), so the server
never holds the plain password. This module

- compiles that class with ``javac --release 17`` against pip's pyspark jars into
  ``<cache_dir>/thrift-auth/lakehouse-thrift-auth-<sha256 of the sources>.jar`` (``lakehouse
  setup``, through :mod:`lakehouse.runtime.java_build`; a changed source gives a new name, an
  unchanged one does no work);
- writes the users file (owner-only) from ``thrift.user`` and the password when the server
  starts, keeping an existing file whose hash still matches (its salt does not change).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lakehouse.config import Config
from lakehouse.runtime import java_build

MODULE = "thrift-auth"
SOURCE_DIR = java_build.source_dir(MODULE)
PROVIDER_CLASS = "lakehouse.thriftauth.FilePasswdAuthenticationProvider"
# The hive-site.xml property that names the users file (read by the provider).
USERS_FILE_PROPERTY = "lakehouse.thrift.auth.users-file"
USERS_FILE_NAME = "thrift-users"
SCHEME = "pbkdf2-sha256"
# OWASP's 2021 figure for PBKDF2-HMAC-SHA256; one login costs about 0.1-0.3 s of CPU on the server.
ITERATIONS = 310_000
SALT_BYTES = 16
HASH_BYTES = 32
# What the provider compiles against, from pyspark's jars directory.
COMPILE_JARS = ("spark-hive-thriftserver_*.jar", "hadoop-client-api-*.jar")


class ThriftAuthError(java_build.JavaBuildError):
    """The provider could not be built; one readable line."""


def source_files() -> list[Path]:
    return java_build.source_files(MODULE)


def source_digest() -> str:
    """sha256 over the provider's sources (path and content): names the jar built from them."""
    return java_build.source_digest(MODULE)


def provider_jar(config: Config) -> Path:
    return java_build.module_jar(config, MODULE)


def build_provider(config: Config) -> Path:
    """Compile the provider into the cache once per source version; return the jar's path."""
    try:
        return java_build.build_module(config, MODULE, COMPILE_JARS, "thrift auth provider")
    except java_build.JavaBuildError as exc:
        raise ThriftAuthError(str(exc)) from None


def hash_entry(user: str, password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """One line of the users file for this user and password."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    b64 = base64.b64encode
    return f"{user}:{SCHEME}:{iterations}:{b64(salt).decode()}:{b64(digest).decode()}"


def entry_matches(line: str, user: str, password: str) -> bool:
    """True when a users-file line is for this user and this password (same check as the provider)."""
    fields = line.strip().split(":")
    if len(fields) != 5 or fields[0] != user or fields[1] != SCHEME:
        return False
    try:
        iterations = int(fields[2])
        salt = base64.b64decode(fields[3], validate=True)
        expected = base64.b64decode(fields[4], validate=True)
    except ValueError:
        return False
    if iterations != ITERATIONS or not expected:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, len(expected))
    return hmac.compare_digest(actual, expected)


def users_file(config: Config) -> Path:
    return config.spark_conf_dir / USERS_FILE_NAME


def write_users_file(config: Config) -> Path:
    """Write the owner-only users file for thrift.user, unless the existing one already matches."""
    path = users_file(config)
    user, password = config.thrift.user, config.thrift.password
    try:
        current = path.read_text().strip()
    except OSError:
        current = ""
    if current and "\n" not in current and entry_matches(current, user, password):
        os.chmod(path, 0o600)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(hash_entry(user, password) + "\n")
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    return path
