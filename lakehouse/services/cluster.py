"""A Spark standalone cluster (one master, one or more workers) from pip's pyspark.

The same command lines serve three uses:

- ``start`` / ``stop`` / ``status``: a master and workers on 127.0.0.1 in the background, pid
  files under ``<home>/run``, logs under ``<home>/logs``. The cluster-mode test uses it, and
  so can a person trying the cluster path on one machine::

      python -m lakehouse.services.cluster start        # prints the master URL
      SPARK_LOCAL_IP=127.0.0.1 LAKEHOUSE_SPARK_MASTER=spark://127.0.0.1:7077 lakehouse extract
      python -m lakehouse.services.cluster stop

- ``master`` / ``worker``: the same daemon in the foreground (the process becomes the JVM),
  configured from ``SPARK_*`` environment variables: the Docker image's master and worker roles.
- ``health master|worker``: the containers' healthcheck (the master is ALIVE; the worker has
  registered with a master).

Two settings matter on any standalone cluster and are set here for every master:
``spark.deploy.defaultCores`` (an application that does not set ``spark.cores.max`` would
otherwise take every core, so a long-running Thrift server would starve the batch jobs) and
``spark.master.rest.enabled=false`` (Spark 4 enables an unauthenticated submission endpoint on
port 6066 by default).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lakehouse.config import MEMORY_PATTERN, Config
from lakehouse.runtime.distribution import spark_home
from lakehouse.services.process import (
    ServiceError,
    ServiceStatus,
    check_port_free,
    port_open,
    read_pid,
    start_background,
    stop_pid,
    wait_until,
)
from lakehouse.spark import LOG4J_TEMPLATE, LOOPBACK

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
START_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 3
ALIVE = "ALIVE"
# The daemons' own conf directory (executors inherit it from their worker): warnings, plus the
# master's and workers' INFO lines (registrations, executors launched and lost).
DAEMON_LOG4J_EXTRA = """
logger.deploy.name = org.apache.spark.deploy
logger.deploy.level = info
"""


@dataclass(frozen=True)
class ClusterSettings:
    """Where the daemons listen and what the workers offer."""

    host: str = LOOPBACK
    master_port: int = 7077
    master_webui_port: int = 8080
    # Worker i (from 1) serves its web UI on worker_webui_port + i - 1.
    worker_webui_port: int = 8081
    worker_cores: int = 2
    worker_memory: str = "2g"
    # Cores an application gets unless it sets spark.cores.max.
    default_cores: int = 2

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    def validate(self) -> None:
        for name in ("master_port", "master_webui_port", "worker_webui_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ServiceError(f"spark cluster: {name} {getattr(self, name)} is not a TCP port")
        if self.worker_cores < 1 or self.default_cores < 1:
            raise ServiceError("spark cluster: worker cores and default cores must be at least 1")
        if not MEMORY_PATTERN.match(self.worker_memory):
            raise ServiceError(f"spark cluster: worker memory {self.worker_memory!r} is not a size such as 2g")


# ------------------------------------------------------------------ command lines


def spark_class() -> str:
    return str(spark_home() / "bin" / "spark-class")


def _java_opts(existing: str | None, props: dict[str, str]) -> str:
    """SPARK_MASTER_OPTS: what the environment had, then our -D settings."""
    ours = " ".join(f"-D{key}={value}" for key, value in props.items())
    return f"{existing} {ours}".strip() if existing else ours


def master_process(settings: ClusterSettings, base_env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The master's command line and environment."""
    command = [
        spark_class(),
        MASTER_CLASS,
        "--host",
        settings.host,
        "--port",
        str(settings.master_port),
        "--webui-port",
        str(settings.master_webui_port),
    ]
    env = dict(base_env, SPARK_HOME=str(spark_home()))
    env["SPARK_MASTER_OPTS"] = _java_opts(
        base_env.get("SPARK_MASTER_OPTS"),
        {"spark.deploy.defaultCores": str(settings.default_cores), "spark.master.rest.enabled": "false"},
    )
    return command, env


def worker_process(
    settings: ClusterSettings,
    master_url: str,
    base_env: dict[str, str],
    *,
    work_dir: Path,
    host: str | None,
    index: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """A worker's command line and environment. With host None Spark picks this machine's address."""
    command = [spark_class(), WORKER_CLASS]
    if host:
        command += ["--host", host]
    command += [
        "--cores",
        str(settings.worker_cores),
        "--memory",
        settings.worker_memory,
        "--webui-port",
        str(settings.worker_webui_port + index - 1 if settings.worker_webui_port else 0),
        "--work-dir",
        str(work_dir),
        master_url,
    ]
    env = dict(base_env, SPARK_HOME=str(spark_home()))
    # Executors' shuffle and spill files: under the worker's directory, removed with each app.
    env.setdefault("SPARK_LOCAL_DIRS", str(work_dir / "local"))
    return command, env


# ------------------------------------------------------------------ the daemons' web UI (JSON)


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def master_state(host: str, webui_port: int) -> dict[str, Any] | None:
    """The master's status page as JSON (workers, applications), or None when it does not answer."""
    return _get_json(f"http://{host}:{webui_port}/json/")


def worker_state(host: str, webui_port: int) -> dict[str, Any] | None:
    return _get_json(f"http://{host}:{webui_port}/json/")


def _worker_registered(settings: ClusterSettings, webui_port: int) -> bool:
    state = master_state(settings.host, settings.master_webui_port)
    if state is None:
        return False
    return any(
        w.get("state") == ALIVE and str(w.get("webuiaddress", "")).endswith(f":{webui_port}")
        for w in state.get("workers", [])
    )


# ------------------------------------------------------------------ background start / stop (one machine)


def dependencies_only_python(config: Config) -> Path:
    """A Python for this machine's executors with the project's dependencies but not the project.

    A virtualenv (no pip) whose site-packages names this interpreter's site-packages in a
    ``.pth`` line: the dependencies import, but that directory's own ``.pth`` files are not run,
    and the project's editable install is one of them, so ``import lakehouse`` fails unless the
    job shipped the code (``--py-files``). That is what a worker host with the dependencies
    installed looks like; set it as ``spark.executor_python``.
    """
    import site
    import subprocess
    import sysconfig

    venv = config.home / "executor-python"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    )
    ours = [Path(p) for p in site.getsitepackages()] or [Path(sysconfig.get_paths()["purelib"])]
    (purelib / "lakehouse-dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


def conf_dir(config: Config) -> Path:
    """The daemons' own conf directory (logging only)."""
    return config.home / "spark-cluster-conf"


def work_dir(config: Config, index: int) -> Path:
    return config.home / "spark-work" / f"worker-{index}"


def master_pid_file(config: Config) -> Path:
    return config.run_dir / "spark-master.pid"


def worker_pid_file(config: Config, index: int) -> Path:
    return config.run_dir / f"spark-worker-{index}.pid"


def master_log(config: Config) -> Path:
    return config.log_dir / "spark-master.log"


def worker_log(config: Config, index: int) -> Path:
    return config.log_dir / f"spark-worker-{index}.log"


def _daemon_env(config: Config, settings: ClusterSettings) -> dict[str, str]:
    directory = conf_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    log4j = LOG4J_TEMPLATE.read_text().replace("@LEVEL@", "warn") + DAEMON_LOG4J_EXTRA
    (directory / "log4j2.properties").write_text(log4j)
    env = dict(os.environ, SPARK_CONF_DIR=str(directory))
    if settings.host == LOOPBACK:
        # Web UIs, block managers and executors bind the loopback interface too.
        env["SPARK_LOCAL_IP"] = LOOPBACK
    return env


def start_master(config: Config, settings: ClusterSettings) -> str:
    """Start the master in the background and wait until it is ALIVE; return its URL."""
    settings.validate()
    if read_pid(master_pid_file(config)) is not None:
        raise ServiceError(f"spark master: already running (pid file {master_pid_file(config)})")
    check_port_free(settings.host, settings.master_port, "the master port")
    check_port_free(settings.host, settings.master_webui_port, "the master web UI port")
    command, env = master_process(settings, _daemon_env(config, settings))
    start_background(command, log_file=master_log(config), pid_file=master_pid_file(config), env=env)

    def alive() -> bool:
        state = master_state(settings.host, settings.master_webui_port)
        return state is not None and state.get("status") == ALIVE

    wait_until(
        alive,
        timeout=START_TIMEOUT_SECONDS,
        what="spark master",
        alive=lambda: read_pid(master_pid_file(config)) is not None,
        log_file=master_log(config),
    )
    return settings.master_url


def start_worker(config: Config, settings: ClusterSettings, index: int = 1) -> None:
    """Start worker `index` in the background and wait until the master lists it as ALIVE."""
    settings.validate()
    pid_file = worker_pid_file(config, index)
    if read_pid(pid_file) is not None:
        raise ServiceError(f"spark worker {index}: already running (pid file {pid_file})")
    webui_port = settings.worker_webui_port + index - 1
    check_port_free(settings.host, webui_port, "the worker web UI port")
    directory = work_dir(config, index)
    directory.mkdir(parents=True, exist_ok=True)
    command, env = worker_process(
        settings,
        settings.master_url,
        _daemon_env(config, settings),
        work_dir=directory,
        host=settings.host,
        index=index,
    )
    start_background(command, log_file=worker_log(config, index), pid_file=pid_file, env=env)
    wait_until(
        lambda: _worker_registered(settings, webui_port),
        timeout=START_TIMEOUT_SECONDS,
        what=f"spark worker {index} (registering with {settings.master_url})",
        alive=lambda: read_pid(pid_file) is not None,
        log_file=worker_log(config, index),
    )


def start(config: Config, settings: ClusterSettings, workers: int = 1) -> str:
    """A master and `workers` workers; on a failure, whatever was started is stopped again."""
    try:
        url = start_master(config, settings)
        for index in range(1, workers + 1):
            start_worker(config, settings, index)
    except BaseException:
        stop(config)
        raise
    return url


def _worker_pid_files(config: Config) -> list[Path]:
    return sorted(config.run_dir.glob("spark-worker-*.pid"))


def stop(config: Config) -> list[str]:
    """Stop the workers, then the master (executors go with their worker); return what was stopped."""
    stopped = []
    for pid_file in [*_worker_pid_files(config), master_pid_file(config)]:
        pid = read_pid(pid_file)
        if pid is not None:
            stop_pid(pid)
            stopped.append(pid_file.stem)
        pid_file.unlink(missing_ok=True)
    return stopped


def status(config: Config) -> list[ServiceStatus]:
    rows = []
    for pid_file, log in [
        (master_pid_file(config), master_log(config)),
        *[(p, config.log_dir / f"{p.stem}.log") for p in _worker_pid_files(config)],
    ]:
        pid = read_pid(pid_file)
        rows.append(ServiceStatus(pid_file.stem, "running" if pid else "stopped", "-", pid=pid, log=log))
    return rows


# ------------------------------------------------------------------ foreground roles (containers)


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ServiceError(f"{name}: {raw!r} is not a number") from None


def settings_from_env(env: dict[str, str]) -> ClusterSettings:
    """Daemon settings from the SPARK_* variables Spark's own scripts use (plus SPARK_DEFAULT_CORES)."""
    defaults = ClusterSettings()
    settings = replace(
        defaults,
        host=env.get("SPARK_MASTER_HOST") or socket.gethostname(),
        master_port=_env_int(env, "SPARK_MASTER_PORT", defaults.master_port),
        master_webui_port=_env_int(env, "SPARK_MASTER_WEBUI_PORT", defaults.master_webui_port),
        worker_webui_port=_env_int(env, "SPARK_WORKER_WEBUI_PORT", defaults.worker_webui_port),
        worker_cores=_env_int(env, "SPARK_WORKER_CORES", defaults.worker_cores),
        worker_memory=env.get("SPARK_WORKER_MEMORY") or defaults.worker_memory,
        default_cores=_env_int(env, "SPARK_DEFAULT_CORES", defaults.default_cores),
    )
    settings.validate()
    return settings


def foreground_process(role: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment of the master or worker role, from the environment."""
    settings = settings_from_env(env)
    if role == "master":
        return master_process(settings, env)
    master_url = env.get("SPARK_MASTER_URL", "").strip()
    if not master_url.startswith("spark://"):
        raise ServiceError("SPARK_MASTER_URL: set it to the master, e.g. spark://spark-master:7077")
    return worker_process(
        settings, master_url, env, work_dir=foreground_work_dir(env), host=env.get("SPARK_WORKER_HOST") or None
    )


def foreground_work_dir(env: dict[str, str]) -> Path:
    """The worker role's directory for application files (SPARK_WORKER_DIR)."""
    return Path(env.get("SPARK_WORKER_DIR") or "/tmp/spark-work")


def healthy(role: str, env: dict[str, str]) -> bool:
    """Master: its status is ALIVE. Worker: it has registered with a master."""
    settings = settings_from_env(env)
    probe_host = env.get("SPARK_LOCAL_IP") or LOOPBACK
    if role == "master":
        state = master_state(probe_host, settings.master_webui_port)
        return state is not None and state.get("status") == ALIVE and port_open(settings.host, settings.master_port)
    state = worker_state(probe_host, settings.worker_webui_port)
    return state is not None and bool(state.get("masterwebuiurl"))


# ------------------------------------------------------------------ command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse.services.cluster", description="A Spark standalone master and workers."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("start", help="start a master and workers on 127.0.0.1 in the background")
    p.add_argument("--port", type=int, default=7077, help="master port (default 7077)")
    p.add_argument("--webui-port", type=int, default=8080, help="master web UI port (default 8080)")
    p.add_argument("--worker-webui-port", type=int, default=8081, help="first worker's web UI port (default 8081)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--worker-cores", type=int, default=2)
    p.add_argument("--worker-memory", default="2g")
    p.add_argument("--default-cores", type=int, default=2, help="cores per application without spark.cores.max")
    sub.add_parser("stop", help="stop what `start` started")
    sub.add_parser("status", help="pids and logs")
    for role in ("master", "worker"):
        p = sub.add_parser(role, help=f"run the {role} in the foreground, configured by SPARK_* variables")
        p.add_argument("--print", action="store_true", help="print the command line instead of running it")
    p = sub.add_parser("health", help="exit 0 when the master is ALIVE or the worker is registered")
    p.add_argument("role", choices=("master", "worker"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action in ("master", "worker"):
            command, env = foreground_process(args.action, dict(os.environ))
            if args.print:
                print(shlex.join(command))
                return 0
            if args.action == "worker":
                foreground_work_dir(env).mkdir(parents=True, exist_ok=True)
            sys.stdout.flush()
            os.execve(command[0], command, env)
        if args.action == "health":
            return 0 if healthy(args.role, dict(os.environ)) else 1

        from lakehouse.config import load_config

        config = load_config()
        if args.action == "start":
            settings = ClusterSettings(
                master_port=args.port,
                master_webui_port=args.webui_port,
                worker_webui_port=args.worker_webui_port,
                worker_cores=args.worker_cores,
                worker_memory=args.worker_memory,
                default_cores=args.default_cores,
            )
            url = start(config, settings, workers=args.workers)
            print(f"spark master: {url} (web UI http://{settings.host}:{settings.master_webui_port})")
            print(f"run a job on it: SPARK_LOCAL_IP={LOOPBACK} LAKEHOUSE_SPARK_MASTER={url} lakehouse extract")
        elif args.action == "stop":
            stopped = stop(config)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            for row in status(config):
                print(f"{row.name}  {row.state}  pid {row.pid or '-'}  log {row.log}")
    except ServiceError as exc:
        print(f"cluster {args.action}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
