"""What the deployment runs, and how its services are named and reached: the brokers, the
TaskManagers, the jobs and their parallelism; the jobs' environment inside the containers'
network, the same in docker-compose.yml and Kubernetes."""

from __future__ import annotations

from devstack.stack.flink import FLINK_METRICS_PORTS
from devstack.stack.influxdb import INFLUXDB_PORT
from devstack.stack.redis import REDIS_PORT

BROKERS = 3
TASKMANAGERS = 2
# Each job runs at this parallelism, spread over the TaskManagers.
PARALLELISM = 2
# The jobs the one-shot service submits and the manifests run: the ETL and the merger with its
# default strategy (`state_store_publisher` belongs to the `state_store` strategy's config).
DEPLOYED_JOBS = ("etl", "latest_merger")

# Inside the containers' network: each broker's listener for clients.
KAFKA_INTERNAL_PORT = 9092
# One Prometheus reporter per container: the first port of the local stack's range.
METRICS_PORT = FLINK_METRICS_PORTS[0]


def kafka_service(node: int) -> str:
    return f"kafka-{node}"


def taskmanager_service(index: int) -> str:
    return f"taskmanager-{index}"


def internal_brokers() -> str:
    return ",".join(
        f"{kafka_service(node)}:{KAFKA_INTERNAL_PORT}" for node in range(1, BROKERS + 1)
    )


def job_environment() -> dict[str, str]:
    """What a job's client needs to reach the services inside the containers' network, by the
    variables the configs name."""
    return {
        "KAFKA_BROKERS": internal_brokers(),
        "INFLUXDB_URL": f"http://influxdb:{INFLUXDB_PORT}",
        "REDIS_URL": f"redis://redis:{REDIS_PORT}/0",
    }
