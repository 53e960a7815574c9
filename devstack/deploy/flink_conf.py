"""The containers' Flink configuration: the local cluster's (`flink-conf/config.yaml`) with the
image's paths in its placeholders and only the keys of `CONTAINER_FLINK` changed, and
`CONTAINER_FLINK_REMOVED` removed (the Kubernetes operator's own is `k8s.operator_flink_conf`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from devstack import paths
from devstack.deploy import image
from devstack.deploy.submit import JOBMANAGER
from devstack.deploy.topology import METRICS_PORT, PARALLELISM
from devstack.stack.flink import FLINK_REST_PORT

FLINK_CONF_FILE = "deploy/flink-conf/config.yaml"

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


def flink_string(value: object) -> str:
    """A value as Flink's configuration writes it (`true`, not `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
