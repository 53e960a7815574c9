"""The container and Kubernetes deployment: the image's layout (`image.py`), the one-shot
submitter of docker-compose.yml and the one form of a job's submission (`submit.py`), and the
generator of the deployment files from the project's own sources (`render.py`, run with
`python -m devstack.deploy`), one module per file: `compose.py`, `flink_conf.py`,
`prometheus_conf.py`, `k8s.py`, on `topology.py`."""
