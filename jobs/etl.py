"""The ETL job, InfluxDB -> aggregated topic: `flink run -py jobs/etl.py [--config FILE]`."""

from bethos.config import EtlSettings
from bethos.flink.environment import run_job
from bethos.flink.etl import build

if __name__ == "__main__":
    run_job(__doc__, EtlSettings, "config/etl.yaml", build, "etl")
