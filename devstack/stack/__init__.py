"""The local stack: one small class per service, a process supervisor they share, and the
`Stack` that composes them.

- `local.py`: `Stack`, up, down, status, one service at a time, the Flink helpers jobs need;
- `kafka.py`, `influxdb.py`, `redis.py`, `flink.py`, `prometheus.py`: `KafkaCluster`,
  `InfluxDB`, `Redis`, `FlinkCluster`, `Prometheus` (optional), each starting, checking,
  stopping one service and naming its log;
- `service.py`: the `Service` protocol, `ServiceStatus`, `SingleProcess`;
- `process.py`: `Supervisor`, pid files, spawn, signal, wait;
- `health.py`: `port_open`, `wait_until`, `http_json`;
- `jobs.py`: submitting and stopping jobs through Flink's CLI, each with the code's zip;
- `lifecycle.py`: stop, resume and upgrade a job by name, its state kept in savepoints.
"""

from __future__ import annotations

from devstack.exceptions import StackError
from devstack.stack.flink import FLINK_METRICS_PORTS, FLINK_REST_PORT
from devstack.stack.health import http_json, port_open, wait_until
from devstack.stack.influxdb import INFLUXDB_PORT, write_influxdb_config
from devstack.stack.kafka import CONTROLLER_PORT_BASE, KAFKA_PORT_BASE
from devstack.stack.local import Stack
from devstack.stack.prometheus import PROMETHEUS_PORT
from devstack.stack.redis import REDIS_PORT
from devstack.stack.service import ServiceStatus

__all__ = [
    "CONTROLLER_PORT_BASE",
    "FLINK_METRICS_PORTS",
    "FLINK_REST_PORT",
    "INFLUXDB_PORT",
    "KAFKA_PORT_BASE",
    "PROMETHEUS_PORT",
    "REDIS_PORT",
    "ServiceStatus",
    "Stack",
    "StackError",
    "http_json",
    "port_open",
    "wait_until",
    "write_influxdb_config",
]
