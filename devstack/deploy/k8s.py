"""The Kubernetes manifests of `deploy/k8s/`: one FlinkDeployment of the Flink Kubernetes
Operator per deployed job, upgraded with savepoints, and what they share (the volume of
checkpoints and savepoints, the services' addresses for the jobs)."""

from __future__ import annotations

from typing import Any

from devstack.deploy import image
from devstack.deploy.flink_conf import container_flink_conf, flatten, flink_string, local_flink_conf
from devstack.deploy.submit import flink_run_args
from devstack.deploy.topology import PARALLELISM, job_environment

K8S_DIR = "deploy/k8s"

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


def operator_flink_conf(job: str) -> dict[str, str]:
    """A FlinkDeployment's `flinkConfiguration`: the containers' configuration without the keys
    the operator sets, with the job's state on the shared volume and Kubernetes HA."""
    conf = {
        key: flink_string(value)
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
