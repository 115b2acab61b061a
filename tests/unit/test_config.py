"""Config: YAML defaults, environment overrides, validation that names the key, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_config


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LAKEHOUSE_HOME": str(tmp_path / "home")}


def test_yaml_defaults_are_loaded(env: dict[str, str]) -> None:
    config = load_config(env=env)
    assert config.thrift.port == 10000
    assert config.thrift.host == "127.0.0.1"
    assert config.spark.master == "local[*]"
    assert config.postgres.embedded and config.mongodb.embedded
    assert config.cache_dir == config.home / "cache"


def test_environment_override_wins_over_yaml(env: dict[str, str]) -> None:
    env |= {"LAKEHOUSE_THRIFT_PORT": "10123", "LAKEHOUSE_SPARK_UI_ENABLED": "true", "SPARK_MASTER": "spark://h:7077"}
    config = load_config(env=env)
    assert config.thrift.port == 10123
    assert config.spark.ui_enabled is True
    assert config.spark.master == "spark://h:7077"
    assert not config.spark.is_local


def test_pipeline_policy_from_yaml_and_environment(env: dict[str, str]) -> None:
    defaults = load_config(env=env).pipeline
    assert defaults.vacuum_retain_hours == 168
    assert defaults.maintain_schemas == ("bronze", "silver_build", "gold_build")
    assert (defaults.vacuum_interval_hours, defaults.optimize_min_small_files) == (24, 16)
    env |= {"LAKEHOUSE_PIPELINE_MAINTAIN_SCHEMAS": "bronze,silver", "LAKEHOUSE_PIPELINE_VACUUM_RETAIN_HOURS": "24"}
    changed = load_config(env=env).pipeline
    assert changed.maintain_schemas == ("bronze", "silver")
    assert changed.vacuum_retain_hours == 24


def test_lakehouse_variable_beats_spark_master(env: dict[str, str]) -> None:
    env |= {"SPARK_MASTER": "yarn", "LAKEHOUSE_SPARK_MASTER": "local[2]"}
    assert load_config(env=env).spark.master == "local[2]"


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("LAKEHOUSE_THRIFT_PORT", "ten", "thrift.port"),
        ("LAKEHOUSE_POSTGRES_PORT", "70000", "postgres.port"),
        ("LAKEHOUSE_SPARK_MASTER", "banana", "spark.master"),
        ("LAKEHOUSE_SPARK_DRIVER_MEMORY", "lots", "spark.driver_memory"),
        ("LAKEHOUSE_SPARK_UI_ENABLED", "maybe", "spark.ui_enabled"),
        ("LAKEHOUSE_MONGODB_URI", "http://x", "mongodb.uri"),
        ("LAKEHOUSE_BRONZE_PARALLEL_TABLES", "0", "bronze.parallel_tables"),
        ("LAKEHOUSE_PIPELINE_VACUUM_RETAIN_HOURS", "0", "pipeline.vacuum_retain_hours"),
        ("LAKEHOUSE_PIPELINE_MAINTAIN_SCHEMAS", "bronze,drop table x", "pipeline.maintain_schemas"),
        ("LAKEHOUSE_PIPELINE_VACUUM_INTERVAL_HOURS", "-1", "pipeline.vacuum_interval_hours"),
        ("LAKEHOUSE_PIPELINE_OPTIMIZE_MIN_SMALL_FILES", "0", "pipeline.optimize_min_small_files"),
        ("LAKEHOUSE_PIPELINE_STEP_RETRIES", "-1", "pipeline.step_retries"),
    ],
)
def test_bad_value_names_the_key(env: dict[str, str], name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(env=env | {name: value})
    message = str(err.value)
    assert message.startswith(key)
    assert "\n" not in message


def test_unknown_environment_key_is_rejected(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_THRIFT_PROT"):
        load_config(env=env | {"LAKEHOUSE_THRIFT_PROT": "1"})


def test_unknown_yaml_key_is_rejected(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("thrift:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"^thrift\.prot \(bad\.yaml\): unknown key"):
        load_config(path, env=env)


def test_postgres_url_sets_connection_and_keeps_the_password_secret(env: dict[str, str]) -> None:
    env |= {"LAKEHOUSE_POSTGRES_URL": "postgresql://alice:s3cr%40t@db.example:6543/src"}
    config = load_config(env=env)
    pg = config.postgres
    assert (pg.host, pg.port, pg.user, pg.database) == ("db.example", 6543, "alice", "src")
    assert pg.password == "s3cr@t"
    assert not pg.embedded
    assert "s3cr" not in repr(config)
    assert "s3cr" not in pg.display()


def test_password_from_environment_wins(env: dict[str, str]) -> None:
    config = load_config(env=env | {"LAKEHOUSE_POSTGRES_PASSWORD": "from-env"})
    assert config.postgres.password == "from-env"
    assert "from-env" not in repr(config)


def test_embedded_password_is_generated_once_and_private(env: dict[str, str]) -> None:
    first = load_config(env=env)
    second = load_config(env=env)
    secret_file = first.home / "secrets" / "postgres.password"
    assert first.postgres.password == second.postgres.password
    assert len(first.postgres.password) >= 24
    assert secret_file.stat().st_mode & 0o077 == 0


def test_external_postgres_without_password_fails_naming_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_POSTGRES_PASSWORD"):
        load_config(env=env | {"LAKEHOUSE_POSTGRES_URL": "postgresql://bob@db:5432/src"})


def test_mongodb_display_hides_credentials(env: dict[str, str]) -> None:
    config = load_config(env=env | {"LAKEHOUSE_MONGODB_URI": "mongodb://u:hunter2@m.example:27017/?tls=true"})
    assert "hunter2" not in config.mongodb.display()
    assert config.mongodb.display() == "mongodb://m.example:27017/streaming"
