"""The `state_store` publisher job.

    flink run -pyfs bethos-<version>.zip -py jobs/state_store_publisher.py \
        --config config/state_store.yaml

(`bethos package` builds the zip: the code travels with the job.)

Reads the store the merger writes (strategy `state_store`) every `publish_interval` and emits
what changed to the `latest` topic.
"""

from bethos.config import MergerSettings
from bethos_flink.environment import run_job
from bethos_flink.strategies.state_store import build_publisher

if __name__ == "__main__":
    run_job(
        __doc__,
        MergerSettings,
        "config/state_store.yaml",
        build_publisher,
        "state_store_publisher",
    )
