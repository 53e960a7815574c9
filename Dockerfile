# syntax=docker/dockerfile:1
# The bethos image: the official Flink image with CPython, the third-party dependencies of
# pyproject.toml, the Flink Kafka connector jar and bethos's code. One image serves the
# JobManager, the TaskManagers and the one-shot submitter of docker-compose.yml, and the pods of
# the Flink Kubernetes Operator (deploy/k8s/). bethos is not installed into the image's Python:
# its code lies in /opt/bethos and travels with each job (`flink run -pyfs`).
# Not built on the machine this project is developed on (it has no Docker); the unit tests in
# tests/unit/devstack/deploy/ check these ARGs against pyproject.toml and devstack/paths.py and the
# paths against devstack/deploy/image.py.
ARG FLINK_VERSION=2.2.1
ARG JAVA_VERSION=17
ARG PYTHON_VERSION=3.11
ARG KAFKA_CONNECTOR=org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2

# The connector jar, resolved with Maven as scripts/install.sh resolves it.
FROM maven:3.9-eclipse-temurin-${JAVA_VERSION} AS jars
ARG KAFKA_CONNECTOR
COPY scripts/maven/pom.xml /build/pom.xml
RUN mvn -B -q -f /build/pom.xml dependency:copy -Dartifact=${KAFKA_CONNECTOR} \
      -DoutputDirectory=/jars

# CPython with a shared libpython (Flink's thread mode embeds it), from the official image.
FROM python:${PYTHON_VERSION}-slim-bookworm AS python

FROM flink:${FLINK_VERSION}-java${JAVA_VERSION}
ARG FLINK_VERSION
USER root

# The libraries CPython's own modules link against, in the Flink image's Ubuntu; then CPython.
RUN set -eux; \
    apt-get update -q; \
    apt-get install -y -q --no-install-recommends ca-certificates libbz2-1.0 libexpat1 \
      libffi8 libgdbm6t64 liblzma5 libncursesw6 libreadline8t64 libsqlite3-0 libssl3t64 \
      libuuid1 zlib1g; \
    rm -rf /var/lib/apt/lists/*
COPY --from=python /usr/local/ /usr/local/
RUN ldconfig && /usr/local/bin/python3 -c "import bz2, ctypes, lzma, sqlite3, ssl, zlib"

# The third-party dependencies, read from pyproject.toml itself (its `dependencies`, the pinned
# apache-flink among them); the PyFlink wheel must be the base image's Flink.
COPY pyproject.toml /tmp/bethos/pyproject.toml
RUN set -eux; \
    /usr/local/bin/python3 -c "import tomllib; project = tomllib.load(open('/tmp/bethos/pyproject.toml', 'rb'))['project']; print('\n'.join(project['dependencies']))" \
      > /tmp/bethos/requirements.txt; \
    /usr/local/bin/python3 -m pip install --no-cache-dir -r /tmp/bethos/requirements.txt; \
    /usr/local/bin/python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('apache-flink') != '${FLINK_VERSION}')"; \
    rm -rf /tmp/bethos

# flink-python on the cluster's own classpath: loaded per job instead, a second Python job on the
# same TaskManager fails (the local stack does the same, devstack/stack/flink.py).
RUN cp /opt/flink/opt/flink-python-${FLINK_VERSION}.jar /opt/flink/lib/

# The connector jar in Flink's lib/, as the local cluster has it: `flink run` plans the jobs'
# SQL with it.
COPY --from=jars /jars/ /opt/flink/lib/

# bethos's code, and the containers' Flink configuration (generated from flink-conf/config.yaml
# by `python -m devstack.deploy`); the entrypoint rewrites the config, so flink owns it.
COPY bethos /opt/bethos/bethos
COPY connectors /opt/bethos/connectors
COPY bethos_flink /opt/bethos/bethos_flink
COPY jobs /opt/bethos/jobs
COPY config /opt/bethos/config
COPY devstack /opt/bethos/devstack
COPY --chown=flink:flink deploy/flink-conf/config.yaml /opt/flink/conf/config.yaml
RUN install -d -o flink -g flink /var/lib/bethos

USER flink
