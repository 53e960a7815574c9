"""The deployment files, generated from the project's own sources so that none of them is a
copy that drifts: `python -m devstack.deploy` writes them, `--check` (and a unit test) fails
when a committed one differs from what the sources give now.

Where each value comes from:
- ports: the local stack's constants (`devstack/stack/*.py`); Kafka's host ports are its
  KAFKA_PORT_BASE + N, so the brokers answer on 19091-19093 as in the original system;
- the Flink configuration: `flink-conf/config.yaml`, the local cluster's, with the image's
  paths in its placeholders and only the keys of `CONTAINER_FLINK` / `OPERATOR_SETS` changed;
- Prometheus: `monitoring/prometheus.yml` with the containers as targets and the production
  intervals; the rules are `monitoring/rules/` itself, mounted;
- the jobs, their entry points and configs: `devstack/stack/jobs.py`, submitted in the one
  form of `devstack/deploy/submit.py`; the jobs read `config/*.yaml` unchanged, and the
  services' addresses reach them through the environment variables the configs name
  (KAFKA_BROKERS, INFLUXDB_URL, REDIS_URL, ...);
- versions: apache-flink's pin in `pyproject.toml`, Kafka's in `devstack/paths.py`.
"""

from __future__ import annotations

import argparse
import base64
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from devstack import paths
from devstack.deploy import image
from devstack.deploy.submit import JOBMANAGER, flink_run_args
from devstack.stack.flink import FLINK_METRICS_PORTS, FLINK_REST_PORT
from devstack.stack.influxdb import INFLUXDB_PORT
from devstack.stack.kafka import KAFKA_PORT_BASE
from devstack.stack.prometheus import PROMETHEUS_PORT
from devstack.stack.redis import REDIS_PORT

COMPOSE_FILE = "docker-compose.yml"
FLINK_CONF_FILE = "deploy/flink-conf/config.yaml"
PROMETHEUS_FILE = "deploy/prometheus.yml"
K8S_DIR = "deploy/k8s"

BROKERS = 3
TASKMANAGERS = 2
# Each job runs at this parallelism, spread over the TaskManagers.
PARALLELISM = 2
# The jobs the one-shot service submits and the manifests run: the ETL and the merger with its
# default strategy (`state_store_publisher` belongs to the `state_store` strategy's config).
DEPLOYED_JOBS = ("etl", "latest_merger")

# Inside the containers' network: each broker's listener for clients and its controller port.
KAFKA_INTERNAL_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
# One Prometheus reporter per container: the first port of the local stack's range.
METRICS_PORT = FLINK_METRICS_PORTS[0]
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

# The containers' Flink configuration: the local one with these keys changed (the local cluster
# listens on loopback; containers reach each other by service name) and these removed (the
# image logs to the console and keeps no pid files; each TaskManager names its own host).
CONTAINER_FLINK: dict[str, object] = {
    "jobmanager.bind-host": "0.0.0.0",
    "jobmanager.rpc.address": JOBMANAGER,
    "taskmanager.bind-host": "0.0.0.0",
    "rest.address": JOBMANAGER,
    "rest.bind-address": "0.0.0.0",
    # Other origins' pages may not read the REST API (the dashboard itself is same-origin).
    "web.access-control-allow-origin": f"http://{JOBMANAGER}:{FLINK_REST_PORT}",
    # The jobs' parallelism when `flink run` gives none (the configs leave it to Flink).
    "parallelism.default": PARALLELISM,
}
# The Java options only select the local stack's provider that keeps the reporters on loopback
# (devstack/stack/loopback_http.py), and its temporary directory; in a container the reporters
# must answer Prometheus's scrapes (without the provider they bind every interface: Flink 2.2's
# reporter has no host key), and temporary files go to the container's own /tmp.
CONTAINER_FLINK_REMOVED = (
    "env.log.dir",
    "env.pid.dir",
    "io.tmp.dirs",
    "taskmanager.host",
    "env.java.opts.jobmanager",
    "env.java.opts.taskmanager",
    "env.java.opts.client",
)
# Keys that the Flink Kubernetes Operator sets itself (addresses, the memory it takes from
# `resources`, the parallelism from `job.parallelism`), so the manifests leave them out.
OPERATOR_SETS = (
    "jobmanager.bind-host",
    "jobmanager.rpc.address",
    "taskmanager.bind-host",
    "rest.address",
    "rest.bind-address",
    "jobmanager.memory.process.size",
    "taskmanager.memory.process.size",
    "parallelism.default",
)
K8S_DATA_DIR = "/flink-data"
K8S_DATA_CLAIM = "bethos-flink-data"
K8S_ENV_CONFIGMAP = "bethos-env"
K8S_SECRETS = "bethos-secrets"
K8S_FLINK_UID = 9999  # the `flink` user of the official image

HEADER = (
    "# Generated by `python -m devstack.deploy` (devstack/deploy/render.py names the sources).\n"
    "# Do not edit: change the sources and regenerate; a unit test fails when they differ.\n"
)


# -- the environment of the services ------------------------------------------------------------


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


# -- Flink ---------------------------------------------------------------------------------------


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML keys as Flink's dotted ones."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def local_flink_conf(state: str, python: str, metrics_ports: str) -> Any:
    """`flink-conf/config.yaml` with its placeholders filled in, parsed."""
    template = (paths.PROJECT_ROOT / "flink-conf" / "config.yaml").read_text()
    text = (
        template.replace("@STATE@", state)
        .replace("@PYTHON@", python)
        .replace("@METRICS_PORTS@", metrics_ports)
    )
    return yaml.safe_load(text)


def container_flink_conf() -> dict[str, Any]:
    """The Flink configuration of the image (JobManager, TaskManagers and the submitter)."""
    local = local_flink_conf(image.STATE_DIR, image.PYTHON, str(METRICS_PORT))
    conf = flatten(local)
    for key in CONTAINER_FLINK_REMOVED:
        conf.pop(key, None)
    conf.update(CONTAINER_FLINK)
    return conf


def _flink_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def operator_flink_conf(job: str) -> dict[str, str]:
    """A FlinkDeployment's `flinkConfiguration`: the containers' configuration without the keys
    the operator sets, with the job's state on the shared volume and Kubernetes HA."""
    conf = {
        key: _flink_string(value)
        for key, value in container_flink_conf().items()
        if key not in OPERATOR_SETS
    }
    base = f"file://{K8S_DATA_DIR}/{job}"
    conf["state.checkpoints.dir"] = f"{base}/checkpoints"
    conf["state.savepoints.dir"] = f"{base}/savepoints"
    conf["high-availability.type"] = "kubernetes"
    conf["high-availability.storageDir"] = f"{base}/ha"
    return conf


def flink_version_enum() -> str:
    """The operator's `flinkVersion` for the pinned Flink, e.g. `v2_2`."""
    major, minor, *_ = image.flink_version().split(".")
    return f"v{major}_{minor}"


# -- docker-compose.yml --------------------------------------------------------------------------


def _loopback(host_port: int, container_port: int | None = None) -> str:
    return f"127.0.0.1:{host_port}:{container_port or host_port}"


def _kafka_env_name(key: str) -> str:
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
            **{_kafka_env_name(key): value for key, value in properties.items()},
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


# -- Prometheus ----------------------------------------------------------------------------------

# Production intervals (monitoring/prometheus.yml's own are the local stack's 2 s).
PROMETHEUS_INTERVALS = {"scrape_interval": "15s", "evaluation_interval": "15s"}


def metrics_targets() -> list[str]:
    hosts = [JOBMANAGER, *(taskmanager_service(i) for i in range(1, TASKMANAGERS + 1))]
    return [f"{host}:{METRICS_PORT}" for host in hosts]


def prometheus() -> dict[str, Any]:
    """`monitoring/prometheus.yml` with the containers as targets and the rules mounted."""
    text = (paths.PROJECT_ROOT / "monitoring" / "prometheus.yml").read_text()
    config = yaml.safe_load(text.replace("@RULES_DIR@", "/etc/prometheus/rules"))
    config["global"].update(PROMETHEUS_INTERVALS)
    for scrape in config["scrape_configs"]:
        for static in scrape.get("static_configs", []):
            if static.get("targets") == ["@FLINK_TARGETS@"]:
                static["targets"] = metrics_targets()
    return dict(config)


# -- Kubernetes ----------------------------------------------------------------------------------


def k8s_name(job: str) -> str:
    return "bethos-" + job.replace("_", "-")


def flink_deployment(job: str) -> dict[str, Any]:
    """An application-mode FlinkDeployment running `job` through PythonDriver, upgraded with
    savepoints."""
    local = flatten(local_flink_conf("", "", ""))
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": k8s_name(job), "labels": {"app.kubernetes.io/part-of": "bethos"}},
        "spec": {
            "image": image.image_tag(),
            "imagePullPolicy": "IfNotPresent",
            "flinkVersion": flink_version_enum(),
            "serviceAccount": "flink",
            "flinkConfiguration": operator_flink_conf(job),
            "podTemplate": {
                "spec": {
                    "securityContext": {"fsGroup": K8S_FLINK_UID},
                    "containers": [
                        {
                            "name": "flink-main-container",
                            "envFrom": [
                                {"configMapRef": {"name": K8S_ENV_CONFIGMAP}},
                                {"secretRef": {"name": K8S_SECRETS, "optional": True}},
                            ],
                            "volumeMounts": [{"name": "flink-data", "mountPath": K8S_DATA_DIR}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "flink-data",
                            "persistentVolumeClaim": {"claimName": K8S_DATA_CLAIM},
                        }
                    ],
                }
            },
            # `resource` (Flink's memory sizes): what released operators read; newer ones also
            # take Kubernetes' `resources` and still read this.
            "jobManager": {
                "resource": {"memory": str(local["jobmanager.memory.process.size"]), "cpu": 1}
            },
            "taskManager": {
                "resource": {"memory": str(local["taskmanager.memory.process.size"]), "cpu": 1}
            },
            "job": {
                "jarURI": f"local://{image.python_jar()}",
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": flink_run_args(job),
                "parallelism": PARALLELISM,
                "upgradeMode": "savepoint",
                "state": "running",
                "allowNonRestoredState": False,
            },
        },
    }


def k8s_shared() -> list[dict[str, Any]]:
    """The volume of checkpoints and savepoints, and the services' addresses for the jobs."""
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": K8S_DATA_CLAIM},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": K8S_ENV_CONFIGMAP},
            "data": job_environment(),
        },
    ]


# -- the files -----------------------------------------------------------------------------------


def _dump(*documents: Any) -> str:
    return HEADER + "---\n".join(
        yaml.safe_dump(document, sort_keys=False, width=1000) for document in documents
    )


def files() -> dict[str, str]:
    """Each generated file's path (from the project root) and text."""
    rendered = {
        COMPOSE_FILE: _dump(compose()),
        FLINK_CONF_FILE: _dump(container_flink_conf()),
        PROMETHEUS_FILE: _dump(prometheus()),
        f"{K8S_DIR}/shared.yaml": _dump(*k8s_shared()),
    }
    for job in DEPLOYED_JOBS:
        rendered[f"{K8S_DIR}/{job}.yaml"] = _dump(flink_deployment(job))
    return rendered


def stale(root: Path) -> list[str]:
    """The generated files that are missing under `root` or differ from what the sources give."""
    return [
        path
        for path, text in files().items()
        if not (root / path).exists() or (root / path).read_text() != text
    ]


def write(root: Path) -> list[str]:
    """Write the files that changed; their paths."""
    changed = stale(root)
    for path, text in files().items():
        if path in changed:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.deploy",
        description="write the deployment files (docker-compose.yml, deploy/) from the sources",
    )
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)
    root = paths.PROJECT_ROOT
    if args.check:
        old = stale(root)
        for path in old:
            print(f"stale: {path} (run python -m devstack.deploy)")
        return 1 if old else 0
    for path in write(root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
