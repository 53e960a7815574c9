"""The latest merger job.

    flink run -pyfs bethos-<version>.zip -py jobs/latest_merger.py \
        --config config/latest_merger.yaml

(`bethos package` builds the zip: the code travels with the job.)
"""

from bethos.config import MergerSettings
from bethos_flink.environment import run_job
from bethos_flink.merger_graph import build

if __name__ == "__main__":
    run_job(__doc__, MergerSettings, "config/latest_merger.yaml", build, "latest_merger")
