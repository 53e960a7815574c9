"""The Flink Kubernetes Operator manifests of deploy/k8s/: valid FlinkDeployments by the
operator's own CRD schema (tests/data/flink-kubernetes-operator/SOURCE.md), upgraded with
savepoints, running the jobs as the one-shot service does. No Kubernetes here: not applied."""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

import jsonschema
import pytest

from bethos.config import load_settings
from devstack.deploy import image, k8s, topology
from devstack.deploy.submit import flink_run_args
from devstack.stack.jobs import DEFAULT_CONFIGS
from tests.unit.devstack.deploy.conftest import JOB_MODELS, ROOT, in_repo

SCHEMA_FILE = ROOT / "tests/data/flink-kubernetes-operator/flinkdeployments-v1beta1.schema.json.gz"


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the known ones: the API server
    would drop (or, validating strictly, refuse) them, so a misspelt key is an error here."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = strict(json.loads(gzip.decompress(SCHEMA_FILE.read_bytes())))
    # Every object's own fields, which a CRD's schema leaves to Kubernetes.
    schema["properties"]["apiVersion"] = {"const": "flink.apache.org/v1beta1"}
    schema["properties"]["kind"] = {"const": "FlinkDeployment"}
    schema["properties"]["metadata"] = {"type": "object", "required": ["name"]}
    return jsonschema.Draft7Validator(schema)


def deployments(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The FlinkDeployment of each deployed job, by job."""
    found = {}
    for name, documents in manifests.items():
        for document in documents:
            if document["kind"] == "FlinkDeployment":
                found[name.removesuffix(".yaml")] = document
    return found


def shared(manifests: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    (document,) = [d for d in manifests["shared.yaml"] if d["kind"] == kind]
    return document


def test_one_deployment_per_deployed_job(manifests: dict[str, list[dict[str, Any]]]) -> None:
    assert sorted(deployments(manifests)) == sorted(topology.DEPLOYED_JOBS)


def test_the_manifests_are_valid_flink_deployments(
    manifests: dict[str, list[dict[str, Any]]], validator: jsonschema.Draft7Validator
) -> None:
    for job, deployment in deployments(manifests).items():
        errors = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(deployment)
        ]
        assert errors == [], job


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        (("spec", "job"), "upgradeMod", "savepoint"),  # misspelt
        (("spec", "job"), "upgradeMode", "snapshot"),  # not one of the modes
        (("spec",), "flinkVersion", "v2_9"),
        (("spec", "jobManager", "resource"), "memmory", "1g"),
    ],
)
def test_the_schema_refuses_a_broken_manifest(
    manifests: dict[str, list[dict[str, Any]]],
    validator: jsonschema.Draft7Validator,
    where: tuple[str, ...],
    key: str,
    value: str,
) -> None:
    broken = copy.deepcopy(deployments(manifests)["etl"])
    node = broken
    for part in where:
        node = node[part]
    node[key] = value
    assert not validator.is_valid(broken)


def test_savepoint_upgrades_of_python_jobs(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for job, deployment in deployments(manifests).items():
        spec = deployment["spec"]
        assert spec["image"] == image.image_tag()
        assert spec["flinkVersion"] == "v" + "_".join(image.flink_version().split(".")[:2])
        assert spec["job"]["upgradeMode"] == "savepoint"
        assert spec["job"]["allowNonRestoredState"] is False
        assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        assert (
            spec["job"]["jarURI"]
            == f"local:///opt/flink/opt/flink-python-{image.flink_version()}.jar"
        )
        args = spec["job"]["args"]
        assert args == flink_run_args(job)
        assert in_repo(args[args.index("-py") + 1]).is_file()
        assert in_repo(args[args.index("--config") + 1]) == ROOT / DEFAULT_CONFIGS[job]
        conf = spec["flinkConfiguration"]
        mount = spec["podTemplate"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
        for key in ("state.savepoints.dir", "state.checkpoints.dir"):
            assert conf[key].startswith(f"file://{mount}/{job}/"), key
        assert conf["python.execution-mode"] == "thread"


def test_volumes_and_environment_resolve(manifests: dict[str, list[dict[str, Any]]]) -> None:
    claim = shared(manifests, "PersistentVolumeClaim")
    config_map = shared(manifests, "ConfigMap")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for job, deployment in deployments(manifests).items():
        pod = deployment["spec"]["podTemplate"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == "flink-main-container"  # the operator's name to merge into
        (volume,) = pod["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert container["volumeMounts"][0]["name"] == volume["name"]
        refs = [ref.get("configMapRef", {}).get("name") for ref in container["envFrom"]]
        assert config_map["metadata"]["name"] in refs
        # The job's config under config/, with the ConfigMap's environment, through the loader.
        settings = load_settings(
            JOB_MODELS[job], ROOT / DEFAULT_CONFIGS[job], environ=config_map["data"]
        )
        # The operator's `job.parallelism` decides: the config leaves it to Flink.
        assert settings.flink.parallelism is None
        assert deployment["spec"]["job"]["parallelism"] >= 1
        assert settings.kafka.brokers == config_map["data"]["KAFKA_BROKERS"]


def test_the_operator_conf_leaves_out_what_the_operator_sets() -> None:
    for job in topology.DEPLOYED_JOBS:
        conf = k8s.operator_flink_conf(job)
        assert not set(conf) & set(k8s.OPERATOR_SETS)
        assert all(isinstance(value, str) for value in conf.values())
        for key in (
            "state.checkpoints.dir",
            "state.savepoints.dir",
            "high-availability.storageDir",
        ):
            assert conf[key].startswith(f"file://{k8s.K8S_DATA_DIR}/{job}/"), key
