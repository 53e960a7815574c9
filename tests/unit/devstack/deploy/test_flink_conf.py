"""The containers' Flink configuration is the local cluster's with the listed changes."""

from __future__ import annotations

from devstack.deploy import flink_conf, image
from devstack.stack.flink import FLINK_METRICS_PORTS


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [str(value)]


def test_the_containers_flink_conf_is_the_local_one_with_the_listed_changes() -> None:
    local = flink_conf.flatten(flink_conf.local_flink_conf("S", "P", "M"))
    conf = flink_conf.container_flink_conf()
    changed = set(flink_conf.CONTAINER_FLINK) | set(flink_conf.CONTAINER_FLINK_REMOVED)
    placeholders = {"S", "P", "M"}
    for key, value in local.items():
        if key in changed:
            continue
        if any(mark in str(value) for mark in placeholders):
            continue  # a placeholder's value: the image's path, checked below
        assert conf[key] == value, key
    assert not set(conf) - set(local) - set(flink_conf.CONTAINER_FLINK)
    for key in flink_conf.CONTAINER_FLINK_REMOVED:
        assert key not in conf
    assert "pipeline.jars" not in conf  # the connector is in lib/ (the Dockerfile's test)
    assert conf["python.executable"] == image.PYTHON
    assert conf["state.savepoints.dir"].startswith(f"file://{image.STATE_DIR}/")
    assert conf["metrics.reporter.prom.port"] == str(FLINK_METRICS_PORTS[0])


def test_no_container_listens_on_loopback_or_keeps_a_placeholder() -> None:
    conf = flink_conf.container_flink_conf()
    for value in _strings(conf):
        assert "@" not in value, value
        assert "127.0.0.1" not in value and "localhost" not in value, value
