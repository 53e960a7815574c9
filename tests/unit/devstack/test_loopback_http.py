"""Flink's Prometheus reporter, started in a JVM of its own: on every interface as Flink ships
it, on loopback with the provider and the Java options of the local cluster's config."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from devstack import paths
from devstack.stack import loopback_http
from devstack.stack.sockets import Listener, listeners

# The reporter as Flink's metric system creates it from `metrics.reporter.prom.*`.
PROBE = """
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.prometheus.PrometheusReporterFactory;

public class Probe {
    public static void main(String[] args) throws Exception {
        MetricConfig properties = new MetricConfig();
        properties.setProperty("port", "0");
        properties.setProperty("host", "127.0.0.1");
        new PrometheusReporterFactory().createMetricReporter(properties);
        System.out.println("started");
        System.out.flush();
        Thread.sleep(60_000);
    }
}
"""


def reporter_listeners(
    tmp_path: Path, java_opts: list[str], classpath: list[Path]
) -> list[Listener]:
    probe = tmp_path / "Probe.java"
    probe.write_text(PROBE)
    home = paths.flink_home()
    jars = [*home.glob("lib/flink-dist-*.jar"), *home.glob("plugins/metrics-prometheus/*.jar")]
    argv = ["java", *java_opts, "-cp", ":".join(map(str, [*jars, *classpath])), str(probe)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline() != "started\n":
            proc.wait(timeout=30)
            pytest.fail(f"the reporter did not start: {proc.communicate()[1]}")
        deadline = time.monotonic() + 10
        found = listeners([proc.pid])
        while not found and time.monotonic() < deadline:
            time.sleep(0.1)
            found = listeners([proc.pid])
        return found
    finally:
        proc.kill()
        proc.wait()


def cluster_java_opts(role: str) -> list[str]:
    config = yaml.safe_load((paths.PROJECT_ROOT / "flink-conf" / "config.yaml").read_text())
    return shlex.split(config["env"]["java"]["opts"][role])


def test_flinks_reporter_binds_every_interface_whatever_its_host_key(tmp_path: Path) -> None:
    [listener] = reporter_listeners(tmp_path, [], [])
    assert listener.address.is_unspecified, listener


def test_with_the_clusters_java_options_the_reporter_listens_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BETHOS_CACHE", str(tmp_path / "cache"))
    jar = loopback_http.provider_jar()  # compiled here, into an empty cache
    assert jar.parent == tmp_path / "cache" / "jars"
    assert loopback_http.provider_jar() == jar  # and then reused
    opts = cluster_java_opts("jobmanager")
    assert set(loopback_http.JAVA_OPTS) <= set(opts)
    assert cluster_java_opts("taskmanager") == opts
    [listener] = reporter_listeners(tmp_path, opts, [jar])
    assert listener.on_loopback, listener
    assert str(listener.address) in ("127.0.0.1", "::1"), listener
