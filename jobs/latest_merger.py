"""The latest merger job: `flink run -py jobs/latest_merger.py [--config FILE]`."""

from bethos.config import MergerSettings
from bethos.flink.environment import run_job
from bethos.flink.merger import build

if __name__ == "__main__":
    run_job(__doc__, MergerSettings, "config/latest_merger.yaml", build, "latest_merger")
