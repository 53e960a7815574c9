"""docker-compose.yml as committed: its structure, its ports against the local stack's
constants, and the settings its environment gives the jobs through the real config loader.
Docker is not run here (there is none on this machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bethos.config import load_settings
from bethos.exceptions import BethosError
from devstack.deploy import compose, flink_conf, image, prometheus_conf, topology
from devstack.deploy.submit import flink_run_args, main, run_commands
from devstack.stack.flink import FLINK_METRICS_PORTS, FLINK_REST_PORT
from devstack.stack.influxdb import INFLUXDB_PORT
from devstack.stack.jobs import DEFAULT_CONFIGS, JOBS
from devstack.stack.kafka import KafkaCluster
from devstack.stack.process import Supervisor
from devstack.stack.prometheus import PROMETHEUS_PORT
from devstack.stack.redis import REDIS_PORT
from tests.unit.devstack.deploy.conftest import JOB_MODELS, ROOT, in_repo

BETHOS_SERVICES = ("jobmanager", "taskmanager-1", "taskmanager-2", "submit")


def test_the_services() -> None:
    services = compose.compose()["services"]
    assert set(services) == {
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "influxdb",
        "redis",
        *BETHOS_SERVICES,
        "prometheus",
    }


def test_every_service_has_an_image_and_bethos_builds_its_own(compose_file: dict[str, Any]) -> None:
    for name, service in compose_file["services"].items():
        assert service.get("image"), name
        if name in BETHOS_SERVICES:
            assert service["image"] == image.image_tag()
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        else:
            assert "build" not in service, name


def test_references_resolve(compose_file: dict[str, Any]) -> None:
    services = compose_file["services"]
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for target in depends:
            assert target in services, f"{name} depends on {target}"
            if isinstance(depends, dict) and depends[target]["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}"
            else:
                assert source in compose_file["volumes"], f"{name} mounts volume {source}"


def _host_ports(service: dict[str, Any]) -> list[int]:
    ports = []
    for mapping in service.get("ports", []):
        host, host_port, _ = mapping.split(":")
        assert host == "127.0.0.1", f"{mapping} is published beyond loopback"
        ports.append(int(host_port))
    return ports


def test_ports_are_the_local_stacks(compose_file: dict[str, Any]) -> None:
    services = compose_file["services"]
    # As in the original system (and the settings' default brokers).
    assert [_host_ports(services[f"kafka-{n}"]) for n in (1, 2, 3)] == [[19091], [19092], [19093]]
    assert _host_ports(services["influxdb"]) == [INFLUXDB_PORT]
    assert _host_ports(services["redis"]) == [REDIS_PORT]
    assert _host_ports(services["jobmanager"]) == [FLINK_REST_PORT]
    assert _host_ports(services["prometheus"]) == [PROMETHEUS_PORT]
    for name in ("taskmanager-1", "taskmanager-2", "submit"):
        assert _host_ports(services[name]) == []


def test_the_kraft_quorum(compose_file: dict[str, Any]) -> None:
    brokers = [compose_file["services"][f"kafka-{n}"]["environment"] for n in (1, 2, 3)]
    assert len({env["CLUSTER_ID"] for env in brokers}) == 1
    assert {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in brokers} == {
        "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    }
    for node, env in enumerate(brokers, start=1):
        assert env["KAFKA_NODE_ID"] == str(node)
        advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert f"EXTERNAL://localhost:{19090 + node}" in advertised
        listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
        assert listeners == {"INTERNAL", "CONTROLLER", "EXTERNAL"}


def test_the_jobs_settings_from_the_submitters_environment(compose_file: dict[str, Any]) -> None:
    """The configs under config/ as they are, with the submitter's environment, through the
    real loader: the brokers are the brokers' in-network listeners, InfluxDB and Redis their
    services, the parallelism fits the TaskManagers' slots."""
    services = compose_file["services"]
    environment = {key: str(value) for key, value in services["submit"]["environment"].items()}
    advertised = {
        item.removeprefix("INTERNAL://")
        for n in (1, 2, 3)
        for item in services[f"kafka-{n}"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if item.startswith("INTERNAL://")
    }
    slots = int(flink_conf.container_flink_conf()["taskmanager.numberOfTaskSlots"])
    for job, model in JOB_MODELS.items():
        settings = load_settings(model, ROOT / DEFAULT_CONFIGS[job], environ=environment)
        assert set(settings.kafka.brokers.split(",")) == advertised, job
        # Left to Flink: the containers' `parallelism.default`.
        assert settings.flink.parallelism is None
        assert int(flink_conf.container_flink_conf()["parallelism.default"]) == topology.PARALLELISM
        assert slots * topology.TASKMANAGERS >= topology.PARALLELISM
        if hasattr(settings, "influxdb"):
            host_port = settings.influxdb.url.split("//")[1]
            assert host_port == f"influxdb:{INFLUXDB_PORT}"
        merger = getattr(settings, "latest_merger", None)
        store = getattr(merger, "state_store", None)
        if store is not None:
            assert store.redis_url.startswith(f"redis://redis:{REDIS_PORT}/")


def test_the_one_shot_service_submits_existing_jobs_with_their_configs(
    compose_file: dict[str, Any],
) -> None:
    submit = compose_file["services"]["submit"]
    assert submit["restart"] == "no"
    assert submit["environment"]["PYTHONPATH"] == image.CODE_DIR
    command = submit["command"]
    assert command[:3] == [image.PYTHON, "-m", "devstack.deploy.submit"]
    jobs = command[5:]
    assert command[3:5] == ["--taskmanagers", str(topology.TASKMANAGERS)]
    assert jobs == list(topology.DEPLOYED_JOBS)
    assert all(job in JOBS for job in jobs)
    for line in run_commands(jobs):
        assert line[:3] == [f"{image.FLINK_HOME}/bin/flink", "run", "-d"]
        args = line[3:]
        assert in_repo(args[args.index("-py") + 1]).is_file()
        assert in_repo(args[args.index("--config") + 1]).is_file()
        assert in_repo(args[args.index("-pyfs") + 1]) == ROOT


def test_flink_run_args() -> None:
    assert flink_run_args("latest_merger", "/code") == [
        "-pyfs",
        "/code",
        "-py",
        "/code/jobs/latest_merger.py",
        "--config",
        "/code/config/latest_merger.yaml",
    ]
    assert flink_run_args("etl", "/code", "/etc/etl.yaml")[-1] == "/etc/etl.yaml"


def test_the_submitter_refuses_an_unknown_job() -> None:
    with pytest.raises(SystemExit):
        main(["nope"])
    with pytest.raises(BethosError, match="unknown job"):
        flink_run_args("nope")


def test_prometheus_scrapes_every_flink_container(compose_file: dict[str, Any]) -> None:
    config = prometheus_conf.prometheus()
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    flink = [name for name in compose_file["services"] if name in ("jobmanager",)]
    flink += [name for name in compose_file["services"] if name.startswith("taskmanager-")]
    assert sorted(targets) == sorted(f"{name}:{FLINK_METRICS_PORTS[0]}" for name in flink)


def test_the_brokers_have_the_local_stacks_settings(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, Supervisor(tmp_path / "run", tmp_path / "logs"), brokers=3)
    cluster.dir.mkdir(parents=True)
    written = cluster._write_config(1, topology.BROKERS)
    local = dict(line.split("=", 1) for line in written.read_text().splitlines() if "=" in line)
    assert {key: local[key] for key in compose.KAFKA_SETTINGS} == compose.KAFKA_SETTINGS


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("log.cleaner.min.compaction.lag.ms", "KAFKA_LOG_CLEANER_MIN_COMPACTION_LAG_MS"),
        ("node.id", "KAFKA_NODE_ID"),
        ("some_key.with-dash", "KAFKA_SOME__KEY_WITH___DASH"),
    ],
)
def test_kafka_image_variables(key: str, variable: str) -> None:
    assert compose.kafka_env_name(key) == variable
