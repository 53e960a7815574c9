"""Keeping the Flink reporters' HTTP servers on loopback.

Flink's PrometheusReporter binds every interface and has no host option (the `host` key is
ignored); `java/LoopbackHttpServerProvider.java` is a provider of the JDK's HTTP server that binds
loopback instead of the wildcard address. This module builds it into a jar, once per version of
its source, for the classpath of the local cluster, whose `flink-conf/config.yaml` selects it in
the JobManager's and TaskManagers' Java options.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from devstack import paths
from devstack.exceptions import StackError

SOURCE = Path(__file__).parent / "java" / "LoopbackHttpServerProvider.java"
PROVIDER = "bethos.devstack.LoopbackHttpServerProvider"
# What a JVM needs to use it, besides the jar on its classpath.
JAVA_OPTS = (
    "--add-exports=jdk.httpserver/sun.net.httpserver=ALL-UNNAMED",
    f"-Dcom.sun.net.httpserver.HttpServerProvider={PROVIDER}",
)


def provider_jar() -> Path:
    """The jar of the provider, compiled with `javac` into the cache when not there yet."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    jar = paths.cache_dir() / "jars" / f"bethos-loopback-http-{digest}.jar"
    if jar.exists():
        return jar
    javac = shutil.which("javac")
    if javac is None:
        raise StackError("flink: javac not found (a JDK 17); run scripts/install.sh")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        result = subprocess.run(
            [javac, "--release", "17", "-d", classes, str(SOURCE)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise StackError(f"flink: javac failed on {SOURCE.name}:\n{result.stderr}")
        partial = jar.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for path in sorted(Path(classes).rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
        partial.replace(jar)
    return jar
