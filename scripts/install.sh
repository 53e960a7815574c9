#!/usr/bin/env bash
# Installs everything bethos needs, idempotently; a second run downloads nothing.
#  - Debian packages: a JDK (Kafka and Flink), Maven, InfluxDB 1.x, Redis, Prometheus (with
#    promtool: `make test` checks the rules; `bethos up --monitoring` runs it)
#  - .venv with the Python dependencies of pyproject.toml (PyFlink pinned) and bethos (editable)
#  - .venv-cluster, the Python of the local Flink cluster: the same third-party dependencies
#    and not bethos, like any Flink cluster a user runs; bethos's code travels with each job
#  - the Kafka broker and its tools, and the Flink Kafka connector jar, resolved with mvn
#    into the cache (BETHOS_CACHE, default ~/.cache/bethos)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${BETHOS_CACHE:-$HOME/.cache/bethos}
KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3
CONNECTOR=org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2
CONNECTOR_JAR=flink-sql-connector-kafka-5.0.0-2.2.jar

step() { printf '\n==> %s\n' "$*"; }

missing=()
# javac too: the local cluster compiles a small provider (devstack/stack/loopback_http.py).
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v influxd >/dev/null || missing+=(influxdb)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v promtool >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
  step "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  # Debian's service scripts must not start the daemons: bethos runs its own on loopback.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
  $SUDO rm -f /usr/sbin/policy-rc.d
else
  step "Debian packages: present (java, javac, mvn, influxd, redis-server, prometheus)"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
up_to_date() { [ -f "$1/.bethos-installed" ] && [ "$(cat "$1/.bethos-installed")" = "$want" ]; }

# Both environments install side by side (two cores; unpacking and compiling apache-flink is
# most of it). pip compiles every module up front, which a Python that does not write bytecode
# itself (PYTHONDONTWRITEBYTECODE) then finds: without it, each job's Python process compiled
# apache-beam and pandas again, about 3 s of CPU a submission.
install_venv() {
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install --progress-bar on -e ".[dev]" \
    --config-settings editable_mode=compat
  echo "$want" > .venv/.bethos-installed
}

install_cluster_venv() {
  rm -rf .venv-cluster
  "$PY" -m venv .venv-cluster
  .venv-cluster/bin/pip install -q --upgrade pip
  "$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
    > .venv-cluster/requirements.txt
  .venv-cluster/bin/pip install -q -r .venv-cluster/requirements.txt
  echo "$want" > .venv-cluster/.bethos-installed
}

cluster_pid=""
if up_to_date .venv-cluster; then
  step ".venv-cluster: up to date"
else
  step "creating .venv-cluster in the background: the Flink cluster's Python, without bethos"
  cluster_log=$(mktemp)
  install_cluster_venv > "$cluster_log" 2>&1 &
  cluster_pid=$!
fi
if up_to_date .venv; then
  step ".venv: up to date"
else
  step "creating .venv and installing Python dependencies (apache-flink is large: a few minutes)"
  install_venv
fi
if [ -n "$cluster_pid" ]; then
  if ! wait "$cluster_pid"; then
    cat "$cluster_log" >&2
    echo "install: creating .venv-cluster failed (log above)" >&2
    exit 1
  fi
  rm -f "$cluster_log"
  step ".venv-cluster: installed"
fi

libs="$CACHE/kafka-$KAFKA_VERSION/libs"
# Kafka logs through SLF4J 1.7: its log4j binding is log4j-slf4j-impl. A cache resolved with
# the SLF4J 2 binding (which 1.7 cannot see: the brokers logged nothing) is resolved again.
if [ ! -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ] \
  || [ ! -f "$libs/log4j-slf4j-impl-$LOG4J_VERSION.jar" ]; then
  step "resolving Apache Kafka $KAFKA_VERSION (broker and tools) with mvn"
  mkdir -p "$libs.tmp"
  mvn -B -q -f scripts/maven/pom.xml -Dkafka.version="$KAFKA_VERSION" \
    -Dlog4j.version="$LOG4J_VERSION" dependency:copy-dependencies \
    -DoutputDirectory="$libs.tmp" -DincludeScope=runtime
  rm -rf "$libs" && mv "$libs.tmp" "$libs"
else
  step "Kafka $KAFKA_VERSION: cached in $libs"
fi

if [ ! -f "$CACHE/jars/$CONNECTOR_JAR" ]; then
  step "resolving the Flink Kafka connector $CONNECTOR with mvn"
  mkdir -p "$CACHE/jars"
  mvn -B -q -f scripts/maven/pom.xml dependency:copy -Dartifact="$CONNECTOR" \
    -DoutputDirectory="$CACHE/jars"
else
  step "Flink Kafka connector: cached"
fi
step "install complete ($ROOT)"
