"""An s3a:// warehouse: its settings, the S3A jars and secret in the Spark conf, the SeaweedFS
command line, and which `lakehouse sql` statements need the writer lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_config
from lakehouse.runtime.jars import S3A_PACKAGES, spark_jars
from lakehouse.services import metastore, objectstore
from lakehouse.serving.sql_client import writes
from lakehouse.spark import spark_properties, write_spark_conf

WAREHOUSE = "s3a://lakehouse-test/warehouse"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LAKEHOUSE_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}


def test_local_disk_stays_the_default_with_no_s3_settings(env: dict[str, str]) -> None:
    config = load_config(env=env)
    assert not config.on_object_store and config.warehouse_bucket is None
    assert config.warehouse_dir.startswith("file:")
    assert not any(key.startswith("spark.hadoop.fs.s3a") for key in spark_properties(config))
    assert not any("hadoop-aws" in str(path) for path in spark_jars(config))
    assert config.object_store.secret_key == ""  # nothing generated for a store not used


def test_s3a_warehouse_adds_the_s3a_client_and_its_cached_jars(env: dict[str, str], tmp_path: Path) -> None:
    config = load_config(env=env | {"LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE})
    assert config.on_object_store and config.warehouse_bucket == "lakehouse-test"
    props = spark_properties(config)
    assert props["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:18333"
    assert props["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert props["spark.hadoop.fs.s3a.access.key"] == "lakehouse"
    assert props["spark.sql.warehouse.dir"] == WAREHOUSE
    jars = spark_jars(config)
    assert len(jars) == len(config.spark.packages) + len(S3A_PACKAGES) == len(config.spark.packages) + 36
    assert all(p.parent == tmp_path / "xdg" / "lakehouse" / "jars" for p in jars[len(config.spark.packages) :])
    assert "hadoop-aws-3.5.0.jar" in props["spark.driver.extraClassPath"]


def test_the_secret_key_is_generated_once_and_kept_out_of_spark_defaults(env: dict[str, str]) -> None:
    config = load_config(env=env | {"LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE})
    secret = config.object_store.secret_key
    assert len(secret) > 20 and secret in config.secret_values
    assert load_config(env=env | {"LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE}).object_store.secret_key == secret
    assert (config.secrets_dir / "object-store.secret-key").stat().st_mode & 0o077 == 0
    conf_dir = write_spark_conf(config)
    assert secret not in (conf_dir / "spark-defaults.conf").read_text()
    assert f"<name>fs.s3a.secret.key</name><value>{secret}</value>" in (conf_dir / "hive-site.xml").read_text()
    assert secret not in repr(config)


def test_an_external_endpoint_needs_its_secret_from_the_environment(env: dict[str, str]) -> None:
    env |= {"LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE, "LAKEHOUSE_OBJECT_STORE_ENDPOINT": "https://s3.example:9000"}
    with pytest.raises(ConfigError, match="LAKEHOUSE_OBJECT_STORE_SECRET_KEY is not set"):
        load_config(env=env)
    config = load_config(env=env | {"LAKEHOUSE_OBJECT_STORE_SECRET_KEY": "from-env"})
    assert not config.object_store.embedded
    props = spark_properties(config)
    assert props["spark.hadoop.fs.s3a.endpoint"] == "https://s3.example:9000"
    assert props["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"


def test_the_default_credential_chain_puts_no_key_anywhere(env: dict[str, str]) -> None:
    env |= {
        "LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE,
        "LAKEHOUSE_OBJECT_STORE_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
        "LAKEHOUSE_OBJECT_STORE_CREDENTIALS": "default",
        "LAKEHOUSE_OBJECT_STORE_PATH_STYLE_ACCESS": "false",
    }
    config = load_config(env=env)  # no LAKEHOUSE_OBJECT_STORE_SECRET_KEY needed
    assert config.object_store.default_chain and config.object_store.secret_key == ""
    props = spark_properties(config)
    provider = props["spark.hadoop.fs.s3a.aws.credentials.provider"]
    assert provider == "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
    assert "spark.hadoop.fs.s3a.access.key" not in props
    assert props["spark.hadoop.fs.s3a.path.style.access"] == "false"
    conf_dir = write_spark_conf(config)
    assert "fs.s3a.secret.key" not in (conf_dir / "hive-site.xml").read_text()
    assert "fs.s3a.access.key" not in (conf_dir / "spark-defaults.conf").read_text()
    # A web identity token (EKS) needs the SDK's sts module: it is among the cached jars.
    assert "sts-2.35.4.jar" in props["spark.driver.extraClassPath"]


def test_the_default_credential_chain_is_refused_for_the_embedded_store(env: dict[str, str]) -> None:
    env |= {"LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE, "LAKEHOUSE_OBJECT_STORE_CREDENTIALS": "default"}
    with pytest.raises(ConfigError, match=r"object_store\.credentials: default needs object_store\.endpoint"):
        load_config(env=env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LAKEHOUSE_OBJECT_STORE_CREDENTIALS", "iam", "object_store.credentials: 'iam' is not one of keys, default"),
        ("LAKEHOUSE_SPARK_WAREHOUSE_DIR", "s3://bucket/w", "use s3a://"),
        ("LAKEHOUSE_SPARK_WAREHOUSE_DIR", "s3a://Bad_Bucket/w", "not an S3 bucket name"),
        ("LAKEHOUSE_OBJECT_STORE_ENDPOINT", "s3.example:9000", "object_store.endpoint"),
        ("LAKEHOUSE_OBJECT_STORE_PORT", "60000", "object_store.port"),
    ],
)
def test_bad_object_store_settings_name_the_key(env: dict[str, str], name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(env=env | {name: value})


def test_the_secret_key_is_not_read_from_the_yaml(env: dict[str, str], tmp_path: Path) -> None:
    conf = tmp_path / "lakehouse.yaml"
    conf.write_text("object_store:\n  secret_key: in-a-file\n")
    with pytest.raises(ConfigError, match="set LAKEHOUSE_OBJECT_STORE_SECRET_KEY"):
        load_config(conf, env=env)


def test_seaweedfs_listens_on_loopback_on_its_four_ports_with_telemetry_off(env: dict[str, str]) -> None:
    config = load_config(env=env | {"LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE, "LAKEHOUSE_OBJECT_STORE_PORT": "20000"})
    command = objectstore.server_command(config)
    assert objectstore.ports(config) == {"s3": 20000, "master": 20001, "volume": 20002, "filer": 20003}
    for flag in ("-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.port=20000", "-master.port=20001", "-filer.port=20003"):
        assert flag in command
    assert "-master.telemetry=false" in command and "-s3.port.iceberg=0" in command
    identities = Path(next(a for a in command if a.startswith("-s3.config=")).split("=", 1)[1])
    assert identities.stat().st_mode & 0o077 == 0
    assert config.object_store.secret_key in identities.read_text()
    assert objectstore.binary_path(config).parent == config.user_cache_dir / "bin"


@pytest.mark.parametrize(
    ("location", "store"),
    [
        ("file:/home/me/.lakehouse/warehouse/bronze.db", "file"),
        ("s3a://lakehouse/warehouse/bronze.db", "s3a://lakehouse"),
        ("s3a://other/warehouse", "s3a://other"),
        ("hdfs://nn:8020/warehouse", "hdfs"),
    ],
)
def test_a_database_location_is_compared_by_its_store(location: str, store: str) -> None:
    assert metastore._store_of(location) == store


@pytest.mark.parametrize(
    ("query", "needs_lock"),
    [
        ("select * from gold.dim_users", False),
        ("  -- a comment\nSELECT 1", False),
        ("show tables in gold", False),
        ("describe history bronze.users", False),
        ("with t as (select 1) select * from t", False),
        ("insert into ops.x values (1)", True),
        ("create table t (a int) using delta", True),
        ("drop database gold_saved_before cascade", True),
        ("optimize bronze.users", True),
        ("with t as (select 1) insert into ops.x select * from t", True),
        ("merge into a using b on a.k = b.k when matched then delete", True),
        ("vacuum bronze.users", True),
    ],
)
def test_lakehouse_sql_takes_the_writer_lock_for_anything_but_a_read(query: str, needs_lock: bool) -> None:
    assert writes(query) is needs_lock
