"""`docker-compose.yml`: three KRaft brokers, InfluxDB, Redis, the Flink JobManager and
TaskManagers of the bethos image, the one-shot submitter of the jobs and Prometheus; every port
published on loopback as the local stack's (`devstack/stack/*.py`), Kafka's host ports at its
KAFKA_PORT_BASE + N, so the brokers answer on 19091-19093 as in the original system."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from devstack import paths
from devstack.deploy import image
from devstack.deploy.prometheus_conf import PROMETHEUS_FILE
from devstack.deploy.submit import JOBMANAGER
from devstack.deploy.topology import (
    BROKERS,
    DEPLOYED_JOBS,
    KAFKA_INTERNAL_PORT,
    TASKMANAGERS,
    job_environment,
    kafka_service,
    taskmanager_service,
)
from devstack.stack.flink import FLINK_REST_PORT
from devstack.stack.influxdb import INFLUXDB_PORT
from devstack.stack.kafka import KAFKA_PORT_BASE
from devstack.stack.prometheus import PROMETHEUS_PORT
from devstack.stack.redis import REDIS_PORT

COMPOSE_FILE = "docker-compose.yml"

# Inside the containers' network: each broker's controller port.
KAFKA_CONTROLLER_PORT = 9093
THIRD_PARTY_IMAGES = {
    "kafka": f"apache/kafka:{paths.KAFKA_VERSION}",
    "influxdb": "influxdb:1.11",
    "redis": "redis:7.4",
    "prometheus": "prom/prometheus:v2.53.0",
}

# The broker settings that the local stack's brokers have too (devstack/stack/kafka.py; a unit
# test compares them), for three brokers.
KAFKA_SETTINGS = {
    "num.partitions": "3",
    "default.replication.factor": "3",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "1",
    "min.insync.replicas": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "log.cleaner.min.compaction.lag.ms": "0",
}

# One KRaft cluster id for the three brokers, fixed so that a recreated broker rejoins.
KAFKA_CLUSTER_ID = (
    base64.urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_URL, "bethos/compose").bytes)
    .decode()
    .rstrip("=")
)


def _loopback(host_port: int, container_port: int | None = None) -> str:
    return f"127.0.0.1:{host_port}:{container_port or host_port}"


def kafka_env_name(key: str) -> str:
    """The apache/kafka image's variable for a broker property (`.` -> `_`, `_` -> `__`)."""
    return "KAFKA_" + key.replace("_", "__").replace(".", "_").replace("-", "___").upper()


def _kafka(node: int) -> dict[str, Any]:
    host_port = KAFKA_PORT_BASE + node
    voters = ",".join(
        f"{n}@{kafka_service(n)}:{KAFKA_CONTROLLER_PORT}" for n in range(1, BROKERS + 1)
    )
    properties = {
        "node.id": str(node),
        "process.roles": "broker,controller",
        "controller.quorum.voters": voters,
        "listeners": f"INTERNAL://:{KAFKA_INTERNAL_PORT},CONTROLLER://:{KAFKA_CONTROLLER_PORT},"
        f"EXTERNAL://:{host_port}",
        "advertised.listeners": f"INTERNAL://{kafka_service(node)}:{KAFKA_INTERNAL_PORT},"
        f"EXTERNAL://localhost:{host_port}",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "EXTERNAL:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "log.dirs": "/var/lib/kafka/data",
        **KAFKA_SETTINGS,
    }
    return {
        "image": THIRD_PARTY_IMAGES["kafka"],
        "hostname": kafka_service(node),
        "ports": [_loopback(host_port)],
        "environment": {
            "CLUSTER_ID": KAFKA_CLUSTER_ID,
            **{kafka_env_name(key): value for key, value in properties.items()},
        },
        "volumes": [f"{kafka_service(node)}:/var/lib/kafka/data"],
        "healthcheck": {
            "test": [
                "CMD-SHELL",
                "/opt/kafka/bin/kafka-broker-api-versions.sh "
                f"--bootstrap-server localhost:{KAFKA_INTERNAL_PORT} > /dev/null",
            ],
            "interval": "5s",
            "timeout": "10s",
            "retries": 30,
        },
    }


def _bethos_service(command: list[str]) -> dict[str, Any]:
    return {
        "build": {"context": ".", "dockerfile": "Dockerfile"},
        "image": image.image_tag(),
        "command": command,
        "environment": {"JOB_MANAGER_RPC_ADDRESS": JOBMANAGER},
        "volumes": [f"flink-state:{image.STATE_DIR}"],
    }


def compose() -> dict[str, Any]:
    services: dict[str, Any] = {kafka_service(n): _kafka(n) for n in range(1, BROKERS + 1)}
    services["influxdb"] = {
        "image": THIRD_PARTY_IMAGES["influxdb"],
        "ports": [_loopback(INFLUXDB_PORT)],
        "environment": {
            "INFLUXDB_REPORTING_DISABLED": "true",
            "INFLUXDB_HTTP_MAX_ROW_LIMIT": "0",
        },
        "volumes": ["influxdb:/var/lib/influxdb"],
        "healthcheck": {
            "test": ["CMD", "influx", "-execute", "SHOW DATABASES"],
            "interval": "5s",
            "retries": 30,
        },
    }
    services["redis"] = {
        "image": THIRD_PARTY_IMAGES["redis"],
        # The `state_store` strategy keeps the latest records here: as the local stack's Redis,
        # append-only, so that a restart loses nothing.
        "command": ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec"],
        "ports": [_loopback(REDIS_PORT)],
        "volumes": ["redis:/data"],
        "healthcheck": {"test": ["CMD", "redis-cli", "ping"], "interval": "5s", "retries": 30},
    }
    jobmanager = _bethos_service(["jobmanager"])
    jobmanager["ports"] = [_loopback(FLINK_REST_PORT)]
    jobmanager["healthcheck"] = {
        "test": [
            "CMD",
            image.PYTHON,
            "-c",
            "import urllib.request; "
            f"urllib.request.urlopen('http://localhost:{FLINK_REST_PORT}/overview', timeout=2)",
        ],
        "interval": "5s",
        "retries": 30,
    }
    services[JOBMANAGER] = jobmanager
    for index in range(1, TASKMANAGERS + 1):
        taskmanager = _bethos_service(["taskmanager"])
        taskmanager["depends_on"] = {JOBMANAGER: {"condition": "service_healthy"}}
        services[taskmanager_service(index)] = taskmanager
    submit = _bethos_service(
        [
            image.PYTHON,
            "-m",
            "devstack.deploy.submit",
            "--taskmanagers",
            str(TASKMANAGERS),
            *DEPLOYED_JOBS,
        ]
    )
    submit["environment"] = {
        **submit["environment"],
        "PYTHONPATH": image.CODE_DIR,
        **job_environment(),
    }
    del submit["volumes"]
    submit["restart"] = "no"
    submit["depends_on"] = {
        **{kafka_service(n): {"condition": "service_healthy"} for n in range(1, BROKERS + 1)},
        "influxdb": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        JOBMANAGER: {"condition": "service_healthy"},
        **{
            taskmanager_service(i): {"condition": "service_started"}
            for i in range(1, TASKMANAGERS + 1)
        },
    }
    services["submit"] = submit
    services["prometheus"] = {
        "image": THIRD_PARTY_IMAGES["prometheus"],
        "command": [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--web.listen-address=0.0.0.0:{PROMETHEUS_PORT}",
        ],
        "ports": [_loopback(PROMETHEUS_PORT)],
        "volumes": [
            f"./{PROMETHEUS_FILE}:/etc/prometheus/prometheus.yml:ro",
            "./monitoring/rules:/etc/prometheus/rules:ro",
            "prometheus:/prometheus",
        ],
        "depends_on": [JOBMANAGER],
    }
    volumes = [*(kafka_service(n) for n in range(1, BROKERS + 1))]
    volumes += ["influxdb", "redis", "flink-state", "prometheus"]
    return {"name": "bethos", "services": services, "volumes": {name: {} for name in volumes}}
