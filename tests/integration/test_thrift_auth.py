"""A Thrift server that requires a user name and password, on real servers.

A second Thrift server runs next to the session's one, with ``thrift.auth: password`` and its
own state directory and port, on the session's PostgreSQL metastore and warehouse. It is
started by ``lakehouse up thrift`` as a user would, with the password generated into its
state directory. Then: the right password works (PyHive, beeline, ``lakehouse sql``, dbt, and
Superset's way: the settings file and database URI the dashboards' set-up writes), a wrong one
and none are refused, and neither the password nor its hash shows up in the server's log, the
world-readable conf files, any process's command line, any output or a file the set-up writes.

A third server adds TLS, with a keystore made by keytool: the clients connect over TLS and
``lakehouse sql`` verifies the certificate; a plain-text client and one without the CA fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
import yaml
from lakehouse_testing import free_port, skip_unless_ci
from pyhive import hive
from thrift.transport.TTransport import TTransportException

from lakehouse.config import PROJECT_ROOT, THRIFT_PASSWORD_ENV, Config, load_config
from lakehouse.dashboards import superset
from lakehouse.modeling import runner
from lakehouse.runtime.distribution import beeline_path
from lakehouse.services import thrift as thrift_service
from lakehouse.serving import auth
from lakehouse.spark import spark_env

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "Wrong-pw-7e1d"


@dataclass
class AuthStack:
    env: dict[str, str]
    config: Config
    # Everything the tests saw on stdout/stderr, checked for secrets at the end.
    outputs: list[str] = field(default_factory=list)

    @property
    def password(self) -> str:
        return self.config.thrift.password

    @property
    def password_hash(self) -> str:
        return auth.users_file(self.config).read_text().strip().split(":")[-1]

    def run(self, command: list[str], *, env: dict[str, str] | None = None, timeout: float = 300):
        result = subprocess.run(
            command,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def cli(self, *args: str, env: dict[str, str] | None = None):
        return self.run([sys.executable, "-m", "lakehouse.cli", *args], env=env)


def _thrift_stack(services: Config, home: Path, extra: dict[str, str] | None = None) -> Iterator[AuthStack]:
    """`lakehouse up thrift` in its own state directory and port, with thrift.auth: password."""
    pg = services.postgres
    hidden = ("LAKEHOUSE_THRIFT_PASSWORD", "LAKEHOUSE_THRIFT_USER", "LAKEHOUSE_THRIFT_SSL", "LAKEHOUSE_THRIFT_SSL_CA")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env.update(
        {
            "LAKEHOUSE_HOME": str(home),
            "LAKEHOUSE_CACHE_DIR": str(services.cache_dir),
            # The session's PostgreSQL (metastore) and warehouse, as an external server.
            "LAKEHOUSE_POSTGRES_URL": f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
            "LAKEHOUSE_POSTGRES_PASSWORD": pg.password,
            "LAKEHOUSE_SPARK_WAREHOUSE_DIR": services.warehouse_dir,
            "LAKEHOUSE_THRIFT_PORT": str(free_port()),
            "LAKEHOUSE_THRIFT_AUTH": "password",
            **(extra or {}),
        }
    )
    stack = AuthStack(env, load_config(env=env))
    try:
        up = stack.cli("up", "thrift")
        assert up.returncode == 0, up.stderr[-3000:]
        assert "user lakehouse, password from" in up.stdout
        yield stack
    finally:
        down = stack.cli("down", "thrift")
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def stack(services: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    yield from _thrift_stack(services, tmp_path_factory.mktemp("auth") / "home")


def _pyhive(stack: AuthStack, **kwargs):
    thrift = stack.config.thrift
    return hive.connect(host=thrift.host, port=thrift.port, database="default", **kwargs)


def _query_one(connection) -> list:
    try:
        cursor = connection.cursor()
        cursor.execute("select 1 as one")
        return cursor.fetchall()
    finally:
        connection.close()


def test_the_generated_password_is_kept_owner_only(stack: AuthStack) -> None:
    secret = stack.config.home / "secrets" / "thrift.password"
    assert secret.read_text() == stack.password
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    users = auth.users_file(stack.config)
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert auth.entry_matches(users.read_text(), "lakehouse", stack.password)


def test_right_password_works_with_pyhive(stack: AuthStack) -> None:
    connection = _pyhive(stack, username="lakehouse", password=stack.password, auth="CUSTOM")
    assert _query_one(connection) == [(1,)]


@pytest.mark.parametrize(
    ("user", "password"),
    [("lakehouse", WRONG_PASSWORD), ("lakehouse", ""), ("somebody", "<right>"), ("lakehouse", "<right>x")],
)
def test_wrong_credentials_are_refused(stack: AuthStack, user: str, password: str) -> None:
    password = password.replace("<right>", stack.password)
    with pytest.raises(TTransportException, match="Error validating the login"):
        _pyhive(stack, username=user, password=password, auth="CUSTOM")


def test_no_password_is_refused(stack: AuthStack) -> None:
    # PyHive's default (auth NONE) is what an unauthenticated client sends: SASL PLAIN, no password.
    with pytest.raises(TTransportException, match="Error validating the login"):
        _pyhive(stack, username="lakehouse")


def test_sqlalchemy_url_with_credentials_as_superset_uses_it(stack: AuthStack) -> None:
    from sqlalchemy import create_engine, text

    thrift = stack.config.thrift
    address = f"{thrift.host}:{thrift.port}/default"
    engine = create_engine(f"hive://lakehouse:{quote(stack.password, safe='')}@{address}?auth=CUSTOM")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()
    anonymous = create_engine(f"hive://lakehouse@{address}")
    try:
        with pytest.raises(Exception, match="Error validating the login"), anonymous.connect():
            pass
    finally:
        anonymous.dispose()


@pytest.fixture(scope="module")
def superset_settings(stack: AuthStack) -> ModuleType:
    """The dashboards' set-up files for this server (settings, import, secrets) as `lakehouse
    dashboard up` writes them, and the settings module loaded as Superset loads it (superset/config.py:
    module ``superset_config`` from SUPERSET_CONFIG_PATH). In the project's virtualenv: the file needs
    SQLAlchemy, PyHive and the project's dialect, not Superset, so this neither waits for nor races
    the e2e layer's install of Superset's virtualenv."""
    superset.write_setup_files(stack.config)
    spec = importlib.util.spec_from_file_location("superset_config", superset.settings_file(stack.config))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_superset_connects(settings: ModuleType, uri: str) -> str:
    """What Superset 6.1 does with a database's URI when SQLALCHEMY_CUSTOM_PASSWORD_STORE is set
    (superset/models/core.py, Database.sqlalchemy_uri_decrypted: the URL with the store's answer as
    its password), then one query over it: the database the connection is in."""
    from sqlalchemy import create_engine, make_url, text

    url = make_url(uri)
    decrypted = url.set(password=settings.SQLALCHEMY_CUSTOM_PASSWORD_STORE(url)).render_as_string(hide_password=False)
    engine = create_engine(decrypted)
    try:
        with engine.connect() as connection:
            return connection.execute(text("select current_database()")).scalar()
    finally:
        engine.dispose()


def test_superset_connects_with_the_password_from_its_settings_store(
    stack: AuthStack, superset_settings: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import make_url

    uri = superset.sqlalchemy_uri(stack.config)
    assert make_url(uri).username == "lakehouse" and make_url(uri).password is None
    imported = json.loads((superset.superset_dir(stack.config) / "import.json").read_text())
    [database] = [yaml.safe_load(text) for name, text in imported["databases"].items() if name.startswith("databases/")]
    assert database["sqlalchemy_uri"] == uri  # what the import registers
    # The URI's schema (gold) on this server's metastore, which a pipeline may not have built yet.
    _query_one_statement(stack, "create database if not exists gold")
    # The password file in the secrets directory, as on a local stack.
    monkeypatch.delenv(THRIFT_PASSWORD_ENV, raising=False)
    assert superset_settings.SQLALCHEMY_CUSTOM_PASSWORD_STORE(make_url(uri)) == stack.password
    assert _as_superset_connects(superset_settings, uri) == "gold"
    # LAKEHOUSE_THRIFT_PASSWORD, as in compose, wins over the file: a wrong one is refused.
    monkeypatch.setenv(THRIFT_PASSWORD_ENV, WRONG_PASSWORD)
    with pytest.raises(Exception, match="Error validating the login"):
        _as_superset_connects(superset_settings, uri)
    monkeypatch.setenv(THRIFT_PASSWORD_ENV, stack.password)
    assert _as_superset_connects(superset_settings, uri) == "gold"


def test_no_file_the_dashboard_setup_writes_outside_the_secrets_holds_the_password(
    stack: AuthStack, superset_settings: ModuleType
) -> None:
    secrets_dir = stack.config.secrets_dir
    written = [path for path in superset.superset_dir(stack.config).rglob("*") if path.is_file()]
    assert {path.name for path in written} >= {"superset_config.py", "import.json"}
    assert [path for path in written if stack.password.encode() in path.read_bytes()] == []
    # Nor anything else in the state directory but the secrets.
    others = [p for p in stack.config.home.rglob("*") if p.is_file() and secrets_dir not in p.parents]
    assert [path for path in others if stack.password.encode() in path.read_bytes()] == []
    assert stack.password in (secrets_dir / "thrift.password").read_text()


def _query_one_statement(stack: AuthStack, statement: str) -> None:
    connection = _pyhive(stack, username="lakehouse", password=stack.password, auth="CUSTOM")
    try:
        connection.cursor().execute(statement)
    finally:
        connection.close()


def _beeline(stack: AuthStack, *credentials: str, url_options: str = ""):
    url = f"{stack.config.thrift.jdbc_url}/default{url_options}"
    command = [str(beeline_path()), "-u", url, *credentials, "--outputformat=csv2", "-e", "select 41 + 1 as answer"]
    return stack.run(command, env=spark_env(stack.config), timeout=180)


def test_beeline_with_a_password_file(stack: AuthStack, tmp_path: Path) -> None:
    right = tmp_path / "right.pw"
    wrong = tmp_path / "wrong.pw"
    for path, text in ((right, stack.password), (wrong, WRONG_PASSWORD)):
        path.write_text(text)
        path.chmod(0o600)
    ok = _beeline(stack, "-n", "lakehouse", "-w", str(right))
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "42" in ok.stdout.splitlines()
    refused = _beeline(stack, "-n", "lakehouse", "-w", str(wrong))
    assert refused.returncode != 0
    assert "42" not in refused.stdout.splitlines()
    anonymous = _beeline(stack, "-n", "lakehouse")
    assert anonymous.returncode != 0
    assert "42" not in anonymous.stdout.splitlines()


def test_lakehouse_sql_uses_the_credentials_from_the_environment(stack: AuthStack) -> None:
    # The generated password file, as on a local stack.
    local = stack.cli("sql", "select 'ok' as status", "--format", "csv")
    assert local.returncode == 0, local.stderr
    assert local.stdout.splitlines() == ["status", "ok"]
    # LAKEHOUSE_THRIFT_PASSWORD, as in compose (and it wins over the file).
    from_env = stack.cli(
        "sql", "select 'ok' as status", "--format", "csv", env=stack.env | {"LAKEHOUSE_THRIFT_PASSWORD": stack.password}
    )
    assert from_env.returncode == 0, from_env.stderr
    wrong = stack.cli("sql", "select 1", env=stack.env | {"LAKEHOUSE_THRIFT_PASSWORD": WRONG_PASSWORD})
    assert wrong.returncode == 1
    assert wrong.stderr.strip().count("\n") == 0
    assert "refused the login of user 'lakehouse'" in wrong.stderr
    anonymous = stack.cli("sql", "select 1", env=stack.env | {"LAKEHOUSE_THRIFT_AUTH": "none"})
    assert anonymous.returncode == 1
    assert "requires a user name and password" in anonymous.stderr
    assert anonymous.stderr.strip().count("\n") == 0


def _dbt_debug(stack: AuthStack, env: dict[str, str]) -> subprocess.CompletedProcess:
    project = str(runner.DBT_PROJECT_DIR)
    command = [runner.dbt_executable(), "--no-use-colors", "debug", "--connection"]
    return stack.run([*command, "--project-dir", project, "--profiles-dir", project], env=env)


def test_dbt_connects_with_the_credentials_from_the_environment(stack: AuthStack) -> None:
    env = runner.dbt_environment(stack.config, base=stack.env)
    result = _dbt_debug(stack, env)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Connection test: [OK" in result.stdout
    # The same profile without the password is refused.
    env.pop(runner.DBT_PASSWORD_ENV)
    env["DBT_SPARK_AUTH"] = "NONE"
    env["DBT_CONNECT_RETRIES"] = "0"
    refused = _dbt_debug(stack, env)
    assert refused.returncode != 0


def _command_lines() -> str:
    """Every process's full command line."""
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            ps += "\n" + cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
    return ps


def _readable_conf_files(config: Config) -> list[Path]:
    """The conf files anyone may read (hive-site.xml and thrift-users are owner-only)."""
    conf_dir = config.spark_conf_dir
    readable = [p for p in conf_dir.iterdir() if p.is_file() and p.stat().st_mode & 0o077]
    assert {p.name for p in readable} >= {"spark-defaults.conf", "log4j2.properties"}
    assert not {p.name for p in readable} & {"hive-site.xml", auth.USERS_FILE_NAME}
    return readable


def test_the_password_and_its_hash_appear_nowhere(stack: AuthStack) -> None:
    secrets = {"password": stack.password, "hash": stack.password_hash, "wrong password": WRONG_PASSWORD}
    # The server's log, after every login above.
    log = thrift_service.log_file(stack.config).read_text(errors="replace")
    assert "AuthenticationException: Error validating the login: wrong user name or password" in log
    # dbt's log files.
    dbt_logs = [p.read_text(errors="replace") for p in runner.dbt_log_dir(stack.config).glob("*.log")]
    conf_dir = stack.config.spark_conf_dir
    readable = _readable_conf_files(stack.config)
    # Every process's command line, while the server runs.
    ps = _command_lines()
    assert "HiveThriftServer2" in ps
    assert auth.PROVIDER_CLASS not in ps  # only the jar path is on a command line
    places = {"thrift log": log, "ps": ps, **{f"dbt log {i}": text for i, text in enumerate(dbt_logs)}}
    places |= {f"conf {p.name}": p.read_text(errors="replace") for p in readable}
    places |= {f"output {i}": text for i, text in enumerate(stack.outputs)}
    for place, text in places.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in {place}"
    # The hash is only in the owner-only users file, the password nowhere under spark-conf.
    for path in conf_dir.iterdir():
        if path.is_file():
            text = path.read_text(errors="replace")
            assert stack.password not in text, path.name
            if path.name != auth.USERS_FILE_NAME:
                assert stack.password_hash not in text, path.name


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def tls(services: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A password-protected server with TLS, its keystore and CA made by keytool for 127.0.0.1."""
    keytool = shutil.which("keytool") or str(Path(os.environ.get("JAVA_HOME", "/usr")) / "bin" / "keytool")
    if not Path(keytool).exists():
        skip_unless_ci("keytool (a JDK) is not available for the TLS tests")
    work = tmp_path_factory.mktemp("tls")
    keystore, ca, truststore = work / "server.p12", work / "ca.pem", work / "trust.p12"
    # keytool reads the store passwords from the environment, not from its command line.
    passwords = {"KS_PASSWORD": secrets.token_urlsafe(18), "TS_PASSWORD": secrets.token_urlsafe(18)}
    key_env = os.environ | passwords
    for command in (
        f"-genkeypair -alias thrift -keyalg RSA -keysize 2048 -validity 2 -dname CN=127.0.0.1 "
        f"-ext SAN=IP:127.0.0.1,DNS:localhost -storetype PKCS12 -keystore {keystore} -storepass:env KS_PASSWORD",
        f"-exportcert -rfc -alias thrift -keystore {keystore} -storepass:env KS_PASSWORD -file {ca}",
        f"-importcert -noprompt -alias thrift -file {ca} -storetype PKCS12 -keystore {truststore} "
        "-storepass:env TS_PASSWORD",
    ):
        done = subprocess.run(
            [str(keytool), *command.split()], env=key_env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    extra = {
        "LAKEHOUSE_THRIFT_SSL": "true",
        "LAKEHOUSE_THRIFT_SSL_KEYSTORE": str(keystore),
        "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": passwords["KS_PASSWORD"],
        "LAKEHOUSE_THRIFT_SSL_CA": str(ca),
    }
    for stack in _thrift_stack(services, work / "home", extra):
        yield {"stack": stack, "truststore": truststore, "truststore_password": passwords["TS_PASSWORD"]}


def test_tls_lakehouse_sql_verifies_the_certificate(tls: dict) -> None:
    stack: AuthStack = tls["stack"]
    ok = stack.cli("sql", "select 'tls' as via", "--format", "csv")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["via", "tls"]
    # Without the CA (the system's CA certificates only) the self-signed certificate is refused.
    untrusted = stack.cli("sql", "select 1", env={k: v for k, v in stack.env.items() if k != "LAKEHOUSE_THRIFT_SSL_CA"})
    assert untrusted.returncode == 1
    assert "TLS with the Thrift server" in untrusted.stderr and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert untrusted.stderr.strip().count("\n") == 0
    # A plain-text client gets nowhere, with the right password.
    plain = stack.cli("sql", "select 1", env=stack.env | {"LAKEHOUSE_THRIFT_SSL": "false"})
    assert plain.returncode == 1
    assert plain.stderr.strip().count("\n") == 0


def test_tls_beeline_and_dbt_connect(tls: dict, tmp_path: Path) -> None:
    stack: AuthStack = tls["stack"]
    password_file = tmp_path / "pw"
    password_file.write_text(stack.password)
    password_file.chmod(0o600)
    options = f";ssl=true;sslTrustStore={tls['truststore']};trustStorePassword={tls['truststore_password']}"
    ok = _beeline(stack, "-n", "lakehouse", "-w", str(password_file), url_options=options)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "42" in ok.stdout.splitlines()
    debug = _dbt_debug(stack, runner.dbt_environment(stack.config, base=stack.env))
    assert debug.returncode == 0, debug.stdout[-3000:]
    assert "Connection test: [OK" in debug.stdout


def test_tls_keystore_password_appears_nowhere(tls: dict) -> None:
    stack: AuthStack = tls["stack"]
    secrets_ = {"keystore password": stack.config.thrift.keystore_password, "password": stack.password}
    site = stack.config.spark_conf_dir / "hive-site.xml"
    assert "<name>hive.server2.use.SSL</name><value>true</value>" in site.read_text()
    places = {"thrift log": thrift_service.log_file(stack.config).read_text(errors="replace"), "ps": _command_lines()}
    places |= {f"conf {p.name}": p.read_text(errors="replace") for p in _readable_conf_files(stack.config)}
    places |= {f"output {i}": text for i, text in enumerate(stack.outputs)}
    for place, text in places.items():
        for what, secret in secrets_.items():
            assert secret not in text, f"the {what} appears in {place}"
