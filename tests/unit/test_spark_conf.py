"""The rendered Spark settings: one source of truth for jobs, the Thrift server and tests."""

from __future__ import annotations

from pathlib import Path

from lakehouse_testing import TEST_JAVA_OPTIONS

from lakehouse.config import load_config
from lakehouse.spark import hive_site_properties, spark_properties, write_spark_conf


def test_local_settings_bind_loopback_and_put_jars_on_the_driver_classpath(tmp_path: Path) -> None:
    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)})
    props = spark_properties(config)
    assert props["spark.driver.bindAddress"] == "127.0.0.1"
    assert "delta-spark_4.2_2.13-4.4.0.jar" in props["spark.driver.extraClassPath"]
    assert "postgresql-42.7" in props["spark.driver.extraClassPath"]
    assert props["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    assert props["spark.databricks.delta.catalog.update.enabled"] == "true"
    assert "spark.jars" not in props
    # VACUUM's file listing: a handful of tasks, not Spark's default 10,000.
    assert props["spark.sql.sources.parallelPartitionDiscovery.parallelism"] == str(config.spark.shuffle_partitions)


def test_cluster_master_ships_jars_and_does_not_pin_the_driver_host(tmp_path: Path) -> None:
    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SPARK_MASTER": "spark://10.0.0.5:7077"})
    props = spark_properties(config)
    assert props["spark.master"] == "spark://10.0.0.5:7077"
    assert "delta-storage-4.4.0.jar" in props["spark.jars"]
    assert "spark.driver.host" not in props


def test_password_only_in_the_owner_readable_hive_site(tmp_path: Path) -> None:
    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_POSTGRES_PASSWORD": "pw-xyz"})
    conf_dir = write_spark_conf(config)
    assert "pw-xyz" not in (conf_dir / "spark-defaults.conf").read_text()
    assert "pw-xyz" in (conf_dir / "hive-site.xml").read_text()
    assert (conf_dir / "hive-site.xml").stat().st_mode & 0o077 == 0
    assert hive_site_properties(config)["datanucleus.schema.autoCreateAll"] == "false"


def test_java_options_reach_drivers_and_executors_only_when_set(tmp_path: Path) -> None:
    default = spark_properties(load_config(env={"LAKEHOUSE_HOME": str(tmp_path)}))
    parallel = "-XX:+UseParallelGC"
    assert default["spark.driver.extraJavaOptions"] == default["spark.executor.extraJavaOptions"] == parallel
    unset = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SPARK_JAVA_OPTIONS": ""})
    assert "spark.driver.extraJavaOptions" not in spark_properties(unset)
    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SPARK_JAVA_OPTIONS": TEST_JAVA_OPTIONS})
    props = spark_properties(config)
    assert props["spark.driver.extraJavaOptions"] == props["spark.executor.extraJavaOptions"] == TEST_JAVA_OPTIONS
    rendered = (write_spark_conf(config) / "spark-defaults.conf").read_text()
    assert f"spark.driver.extraJavaOptions {TEST_JAVA_OPTIONS}" in rendered


def test_the_test_jvms_keep_a_full_size_code_cache() -> None:
    """C1 alone reserves 48 MB of code cache, which a long-lived Thrift server fills."""
    if "-XX:TieredStopAtLevel=1" in TEST_JAVA_OPTIONS:
        assert "-XX:ReservedCodeCacheSize=240m" in TEST_JAVA_OPTIONS


def test_on_a_cluster_the_executors_python_is_set_and_the_ui_serves_the_rest_api(tmp_path: Path) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SPARK_MASTER": "spark://10.0.0.5:7077"}
    config = load_config(env=env | {"LAKEHOUSE_SPARK_EXECUTOR_PYTHON": "/opt/workers/bin/python"})
    props = spark_properties(config)
    assert props["spark.ui.enabled"] == "true"
    assert props["spark.pyspark.python"] == "/opt/workers/bin/python"
    assert props["spark.pyspark.driver.python"] != "/opt/workers/bin/python"
    local = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)})
    assert spark_properties(local)["spark.ui.enabled"] == "false"


def test_the_code_archive_holds_the_packages_and_is_rebuilt_only_on_change(tmp_path: Path) -> None:
    import zipfile

    from lakehouse.runtime.code_archive import code_archive

    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)})
    archive = code_archive(config)
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"lakehouse/__init__.py", "lakehouse/bronze/__init__.py", "expectations/__init__.py"} <= names
    assert not any("__pycache__" in n for n in names)
    stamp = archive.stat().st_mtime_ns
    assert code_archive(config) == archive and archive.stat().st_mtime_ns == stamp


def test_executor_summary_is_only_for_a_cluster() -> None:
    from types import SimpleNamespace

    from lakehouse.profiling import executor_summary

    local = SimpleNamespace(sparkContext=SimpleNamespace(master="local[2]", uiWebUrl="http://127.0.0.1:4040"))
    assert executor_summary(local) is None
    no_ui = SimpleNamespace(sparkContext=SimpleNamespace(master="spark://h:7077", uiWebUrl=None))
    assert executor_summary(no_ui) is None
