"""Thrift authentication and TLS without a server: config, rendered files, command line, dbt env."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_config
from lakehouse.modeling import runner
from lakehouse.services import thrift as thrift_service
from lakehouse.services.process import ServiceError
from lakehouse.serving import auth
from lakehouse.serving.sql_client import _connect_error
from lakehouse.spark import hive_site_properties, write_spark_conf

SECRET = "Zq-thrift-secret-9f3"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "none"),
        ("127.0.0.5", "none"),
        ("localhost", "none"),
        ("::1", "none"),
        ("0.0.0.0", "password"),
        ("::", "password"),
        ("10.1.2.3", "password"),
        ("thrift", "password"),
    ],
)
def test_auto_requires_a_password_unless_the_host_is_loopback(env: dict[str, str], host: str, expected: str) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": host})
    assert config.thrift.auth == "auto"
    assert config.thrift.auth_mode == expected


def test_default_local_config_has_no_authentication_and_writes_no_thrift_secret(env: dict[str, str]) -> None:
    config = load_config(env=env)
    assert not config.thrift.auth_enabled
    assert config.thrift.password == ""
    assert not (config.home / "secrets" / "thrift.password").exists()
    props = hive_site_properties(config)
    assert props["hive.server2.authentication"] == "NONE"
    assert "hive.server2.custom.authentication.class" not in props
    conf_dir = write_spark_conf(config, thrift_server=True)
    assert not (conf_dir / "thrift-users").exists()
    # The lockdown extension is on the classpath (tests/unit/test_serving_config.py), the provider not.
    assert str(auth.provider_jar(config)) not in " ".join(thrift_service.command(config))


@pytest.mark.parametrize(("host", "auth", "expected"), [("0.0.0.0", "none", False), ("127.0.0.1", "password", True)])
def test_explicit_mode_wins_over_the_host(env: dict[str, str], host: str, auth: str, expected: bool) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": host, "LAKEHOUSE_THRIFT_AUTH": auth})
    assert config.thrift.auth_enabled is expected


def test_generated_password_is_created_once_owner_only_and_never_printed(env: dict[str, str]) -> None:
    first = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": "0.0.0.0"})
    second = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": "0.0.0.0"})
    path = first.home / "secrets" / "thrift.password"
    assert first.thrift.password == second.thrift.password == path.read_text()
    assert len(first.thrift.password) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.thrift.password not in repr(first)


def test_password_and_user_from_the_environment(env: dict[str, str]) -> None:
    config = load_config(
        env=env
        | {"LAKEHOUSE_THRIFT_AUTH": "password", "LAKEHOUSE_THRIFT_PASSWORD": SECRET, "LAKEHOUSE_THRIFT_USER": "bi"}
    )
    assert (config.thrift.user, config.thrift.password) == ("bi", SECRET)
    assert SECRET not in repr(config)
    assert not (config.home / "secrets" / "thrift.password").exists()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"LAKEHOUSE_THRIFT_AUTH": "basic"}, "thrift.auth"),
        ({"LAKEHOUSE_THRIFT_AUTH": ""}, "thrift.auth"),
        ({"LAKEHOUSE_THRIFT_USER": "a b"}, "thrift.user"),
        ({"LAKEHOUSE_THRIFT_USER": "a:b"}, "thrift.user"),
        ({"LAKEHOUSE_THRIFT_SSL": "sometimes"}, "thrift.ssl"),
        ({"LAKEHOUSE_THRIFT_SSL_KEYSTORE": "/k.p12"}, "thrift.ssl_keystore"),
        ({"LAKEHOUSE_THRIFT_SSL": "true", "LAKEHOUSE_THRIFT_SSL_KEYSTORE": "/k.p12"}, "thrift.ssl_keystore"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(env: dict[str, str], extra: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(env=env | {"LAKEHOUSE_THRIFT_PASSWORD": SECRET} | extra)
    message = str(err.value)
    assert message.startswith(key), message
    assert "\n" not in message
    assert SECRET not in message


def test_missing_keystore_password_is_named(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"^thrift\.ssl_keystore: LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD is not set"):
        load_config(env=env | {"LAKEHOUSE_THRIFT_SSL": "true", "LAKEHOUSE_THRIFT_SSL_KEYSTORE": "/k.p12"})


def test_a_password_in_the_yaml_file_is_refused_without_echoing_it(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"thrift:\n  password: {SECRET}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    assert str(err.value).startswith("thrift.password (bad.yaml): secrets are not read from this file")
    assert "LAKEHOUSE_THRIFT_PASSWORD" in str(err.value)
    assert SECRET not in str(err.value)


def test_hash_entries_round_trip() -> None:
    line = auth.hash_entry("lakehouse", SECRET)
    user, scheme, iterations, _salt, _digest = line.split(":")
    assert (user, scheme, int(iterations)) == ("lakehouse", "pbkdf2-sha256", auth.ITERATIONS)
    assert SECRET not in line
    assert auth.entry_matches(line, "lakehouse", SECRET)
    assert not auth.entry_matches(line, "lakehouse", SECRET + "x")
    assert not auth.entry_matches(line, "other", SECRET)
    assert not auth.entry_matches("garbage", "lakehouse", SECRET)


def test_rendered_conf_names_the_provider_and_keeps_only_a_hash_owner_only(env: dict[str, str]) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": "0.0.0.0", "LAKEHOUSE_THRIFT_PASSWORD": SECRET})
    conf_dir = write_spark_conf(config, thrift_server=True)
    site = (conf_dir / "hive-site.xml").read_text()
    assert "<name>hive.server2.authentication</name><value>CUSTOM</value>" in site
    assert f"<value>{auth.PROVIDER_CLASS}</value>" in site
    users = conf_dir / "thrift-users"
    assert f"<name>{auth.USERS_FILE_PROPERTY}</name><value>{users}</value>" in site
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    line = users.read_text().strip()
    assert auth.entry_matches(line, "lakehouse", SECRET)
    for path in conf_dir.iterdir():
        assert SECRET not in path.read_text(), path.name
    digest = line.split(":")[-1]
    for path in conf_dir.iterdir():
        if path.name not in ("thrift-users",):
            assert digest not in path.read_text(), path.name
    # Starting the server again keeps the file (same salt); with a new password it replaces it.
    write_spark_conf(config, thrift_server=True)
    assert users.read_text().strip() == line
    changed = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": "0.0.0.0", "LAKEHOUSE_THRIFT_PASSWORD": "other-pw"})
    # A job rendering the conf with another password does not change what the server accepts.
    write_spark_conf(changed)
    assert users.read_text().strip() == line
    write_spark_conf(changed, thrift_server=True)
    assert auth.entry_matches(users.read_text(), "lakehouse", "other-pw")


def test_tls_settings_are_rendered_into_the_owner_only_hive_site(env: dict[str, str], tmp_path: Path) -> None:
    keystore = tmp_path / "server.p12"
    config = load_config(
        env=env
        | {
            "LAKEHOUSE_THRIFT_SSL": "true",
            "LAKEHOUSE_THRIFT_SSL_KEYSTORE": str(keystore),
            "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": "ks-" + SECRET,
        }
    )
    props = hive_site_properties(config)
    assert props["hive.server2.use.SSL"] == "true"
    assert props["hive.server2.keystore.path"] == str(keystore)
    assert props["hive.server2.keystore.password"] == "ks-" + SECRET
    assert "ks-" + SECRET not in repr(config)
    conf_dir = write_spark_conf(config)
    assert "ks-" + SECRET not in (conf_dir / "spark-defaults.conf").read_text()
    assert stat.S_IMODE((conf_dir / "hive-site.xml").stat().st_mode) == 0o600
    # A relative keystore path is resolved against the project root.
    relative = load_config(
        env=env
        | {
            "LAKEHOUSE_THRIFT_SSL": "true",
            "LAKEHOUSE_THRIFT_SSL_KEYSTORE": "conf/server.p12",
            "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": "x",
        }
    )
    assert Path(relative.thrift.ssl_keystore).is_absolute()
    # A client needs only ssl (and maybe ssl_ca): no keystore, nothing rendered for the server.
    client = load_config(env=env | {"LAKEHOUSE_THRIFT_SSL": "true"})
    assert "hive.server2.use.SSL" not in hive_site_properties(client)


def test_thrift_command_puts_the_provider_on_the_driver_classpath_and_no_secret(env: dict[str, str]) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_AUTH": "password", "LAKEHOUSE_THRIFT_PASSWORD": SECRET})
    command = thrift_service.command(config)
    classpath = command[command.index("--driver-class-path") + 1].split(":")
    assert str(auth.provider_jar(config)) in classpath
    assert any("delta-spark" in entry for entry in classpath)
    assert SECRET not in " ".join(command)
    assert command.index("--driver-class-path") < command.index("spark-internal")


def test_start_without_the_provider_or_keystore_fails_with_one_line(env: dict[str, str], tmp_path: Path) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_AUTH": "password"})
    with pytest.raises(ServiceError, match=r"run `make setup`"):
        thrift_service.check_prerequisites(config)
    tls = load_config(
        env=env
        | {
            "LAKEHOUSE_THRIFT_SSL": "true",
            "LAKEHOUSE_THRIFT_SSL_KEYSTORE": str(tmp_path / "missing.p12"),
            "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": "x",
        }
    )
    with pytest.raises(ServiceError, match=r"missing\.p12 does not exist"):
        thrift_service.check_prerequisites(tls)
    with pytest.raises(ServiceError, match=r"thrift\.ssl_keystore is not set"):
        thrift_service.check_prerequisites(load_config(env=env | {"LAKEHOUSE_THRIFT_SSL": "true"}))


def test_dbt_gets_the_credentials_only_when_auth_is_on(env: dict[str, str]) -> None:
    on = load_config(
        env=env
        | {"LAKEHOUSE_THRIFT_AUTH": "password", "LAKEHOUSE_THRIFT_PASSWORD": SECRET, "LAKEHOUSE_THRIFT_USER": "bi"}
    )
    dbt_env = runner.dbt_environment(on, base={})
    assert dbt_env["DBT_SPARK_AUTH"] == "CUSTOM"
    assert dbt_env["DBT_SPARK_USER"] == "bi"
    assert dbt_env[runner.DBT_PASSWORD_ENV] == SECRET
    assert runner.DBT_PASSWORD_ENV.startswith("DBT_ENV_SECRET_")  # dbt masks these in its logs
    assert dbt_env["DBT_SPARK_USE_SSL"] == "False"
    off = load_config(env=env | {"LAKEHOUSE_DBT_USER": "analyst"})
    dbt_env = runner.dbt_environment(off, base={runner.DBT_PASSWORD_ENV: "inherited"})
    assert dbt_env["DBT_SPARK_AUTH"] == "NONE"
    assert dbt_env["DBT_SPARK_USER"] == "analyst"
    assert runner.DBT_PASSWORD_ENV not in dbt_env


def test_a_refused_login_is_one_line_without_the_password(env: dict[str, str]) -> None:
    from thrift.transport.TTransport import TTransportException

    config = load_config(env=env | {"LAKEHOUSE_THRIFT_AUTH": "password", "LAKEHOUSE_THRIFT_PASSWORD": SECRET})
    refused = TTransportException(message="Bad status: 3 (b'Error validating the login')")
    message = str(_connect_error(config, refused))
    assert "refused the login of user 'lakehouse'" in message
    assert "LAKEHOUSE_THRIFT_PASSWORD" in message
    assert SECRET not in message and "\n" not in message
    anonymous = str(_connect_error(load_config(env=env), refused))
    assert "requires a user name and password" in anonymous
    down = str(_connect_error(config, TTransportException(message="Could not connect to any of [('127.0.0.1', 1)]")))
    assert "is `lakehouse up` running?" in down
