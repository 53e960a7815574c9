"""The ETL job, InfluxDB -> aggregated topic.

    flink run -pyfs bethos-<version>.zip -py jobs/etl.py \
        --config config/etl.yaml

(`bethos package` builds the zip: the code travels with the job.)
"""

from bethos.config import EtlSettings
from bethos_flink.environment import run_job
from bethos_flink.etl_graph import build

if __name__ == "__main__":
    run_job(__doc__, EtlSettings, "config/etl.yaml", build, "etl")
