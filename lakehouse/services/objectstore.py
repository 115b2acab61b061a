"""The S3-compatible object store of an ``s3a://`` warehouse.

Only used when ``spark.warehouse_dir`` is an ``s3a://`` URL. Locally (no
``object_store.endpoint``) that is SeaweedFS (Apache-2.0), one ``weed server`` process running
its master, volume, filer and S3 gateway on 127.0.0.1, with its data in ``<home>/objectstore``
and one identity: ``object_store.access_key`` with the secret key generated into
``<home>/secrets/object-store.secret-key``. ``up`` creates the warehouse's bucket. SeaweedFS is
built from source with Go (``tools/seaweedfs``, pinned by go.sum) into the user's cache
(``~/.cache/lakehouse/bin``), so every clone and state directory of the machine shares one
build (about 4 minutes on two cores, 230 MB). With an ``endpoint`` that store is used, and its
bucket must exist.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from lakehouse.config import GRPC_PORT_SHIFT, PROJECT_ROOT, Config
from lakehouse.services.process import (
    ServiceError,
    ServiceStatus,
    check_port_free,
    port_open,
    read_pid,
    start_service,
    stop_service,
)

NAME = "objectstore"
# The SeaweedFS commit tools/seaweedfs/go.mod pins (`weed version` says 30GB 4.53).
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
SEAWEEDFS_SOURCE = PROJECT_ROOT / "tools" / "seaweedfs"
SEAWEEDFS_PACKAGE = "github.com/seaweedfs/seaweedfs/weed"
BUILD_TIMEOUT_SECONDS = 1800
START_TIMEOUT_SECONDS = 60
SHELL_TIMEOUT_SECONDS = 60
# Volumes of 1 GB, up to 100 of them (SeaweedFS's default, 30 GB volumes, seven per bucket,
# fills a laptop's disk: it answers "no writable volumes" long before).
VOLUME_SIZE_LIMIT_MB = 1024
MAX_VOLUMES = 100


def binary_path(config: Config) -> Path:
    return config.user_cache_dir / "bin" / f"weed-{SEAWEEDFS_VERSION}"


def pid_file(config: Config) -> Path:
    return config.run_dir / "objectstore.pid"


def log_file(config: Config) -> Path:
    return config.log_dir / "objectstore.log"


def data_dir(config: Config) -> Path:
    return config.home / "objectstore"


def ports(config: Config) -> dict[str, int]:
    """The embedded server's HTTP ports: S3 at object_store.port, master, volume and filer after it
    (each also serves gRPC on its port + GRPC_PORT_SHIFT)."""
    base = config.object_store.port
    return {"s3": base, "master": base + 1, "volume": base + 2, "filer": base + 3}


def build_seaweedfs(config: Config, say=print) -> Path:
    """Build SeaweedFS with Go into the user's cache (once). The Go caches make rebuilds fast."""
    from lakehouse.runtime.go_build import GoBuildError, go_build

    target = binary_path(config)
    if not target.exists():
        say(f"objectstore: building SeaweedFS {SEAWEEDFS_VERSION} into {target.parent} (once; about 4 minutes)...")
    try:
        return go_build(
            SEAWEEDFS_SOURCE,
            target,
            what=f"objectstore: SeaweedFS {SEAWEEDFS_VERSION}",
            package=SEAWEEDFS_PACKAGE,
            timeout=BUILD_TIMEOUT_SECONDS,
            missing="or set object_store.endpoint to an S3-compatible server",
        )
    except GoBuildError as exc:
        raise ServiceError(str(exc)) from None


def write_identities(config: Config) -> Path:
    """SeaweedFS's S3 identities file (owner-only): the one access key, with every action."""
    store = config.object_store
    identities = {
        "identities": [
            {
                "name": "lakehouse",
                "credentials": [{"accessKey": store.access_key, "secretKey": store.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    path = config.run_dir / "objectstore-s3.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identities, handle)
    os.replace(partial, path)
    return path


def server_command(config: Config) -> list[str]:
    p, run = ports(config), config.run_dir
    host = config.object_store.host
    return [
        str(binary_path(config)),
        "server",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-dir={data_dir(config)}",
        f"-master.port={p['master']}",
        f"-volume.port={p['volume']}",
        f"-filer.port={p['filer']}",
        "-s3",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3'] + GRPC_PORT_SHIFT}",
        f"-s3.config={write_identities(config)}",
        # Off: the Iceberg and Lance endpoints (their own ports), usage reports to the internet.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        f"-volume.max={MAX_VOLUMES}",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={run / 'objectstore-filer.sock'}",
        f"-s3.localSocket={run / 's3.sock'}",
    ]


def _shell(config: Config, command: str) -> str:
    """Run one `weed shell` command against the embedded master; its output."""
    master = f"{config.object_store.host}:{ports(config)['master']}"
    try:
        result = subprocess.run(
            [str(binary_path(config)), "shell", f"-master={master}"],
            input=f"{command}\n",
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"objectstore: `weed shell` {command!r} took over {SHELL_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        raise ServiceError(f"objectstore: `weed shell` {command!r} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


def ensure_bucket(config: Config) -> bool:
    """Create the warehouse's bucket in the embedded server; True when it was created."""
    bucket = config.warehouse_bucket
    listed = _shell(config, "s3.bucket.list")
    if any(line.strip().split(" ")[0] == bucket for line in listed.splitlines()):
        return False
    _shell(config, f"s3.bucket.create -name {bucket}")
    return True


def _ready(config: Config) -> bool:
    p = ports(config)
    host = config.object_store.host
    return port_open(host, p["s3"]) and port_open(host, p["filer"])


def start(config: Config) -> bool:
    """Start the embedded SeaweedFS (when the warehouse is on s3a and no endpoint is set)."""
    if not config.on_object_store:
        return False
    store = config.object_store
    if not store.embedded:
        from urllib.parse import urlsplit

        parts = urlsplit(store.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not port_open(parts.hostname or "", port):
            raise ServiceError(f"objectstore: cannot reach {store.url} (object_store.endpoint)")
        return False
    if read_pid(pid_file(config)) is not None:
        return False
    for role, port in ports(config).items():
        setting = "LAKEHOUSE_OBJECT_STORE_PORT"
        check_port_free(store.host, port, f"{setting} (SeaweedFS {role} port)")
        check_port_free(store.host, port + GRPC_PORT_SHIFT, f"{setting} (SeaweedFS {role} gRPC port)")
    binary = binary_path(config)
    if not binary.exists():
        raise ServiceError(f"objectstore: SeaweedFS is not built at {binary}: run `make object-store`")
    data_dir(config).mkdir(parents=True, exist_ok=True)
    start_service(
        server_command(config),
        log_file=log_file(config),
        pid_file=pid_file(config),
        env=dict(os.environ),
        ready=lambda: _ready(config),
        timeout=START_TIMEOUT_SECONDS,
        what="objectstore (SeaweedFS)",
    )
    ensure_bucket(config)
    return True


def stop(config: Config) -> bool:
    return stop_service(pid_file(config))


def status(config: Config) -> ServiceStatus:
    store = config.object_store
    if not config.on_object_store:
        return ServiceStatus(NAME, "not used", "warehouse on a file system")
    address = f"{store.url}/{config.warehouse_bucket}"
    if not store.embedded:
        return ServiceStatus(NAME, "external", address)
    pid = read_pid(pid_file(config))
    return ServiceStatus(NAME, "running" if pid else "stopped", address, pid=pid, log=log_file(config))
