"""The ETL job, InfluxDB -> aggregated topic: `flink run -py jobs/etl.py [--config FILE]`."""

from __future__ import annotations

import argparse
import logging
import os

from bethos.config import EtlSettings, load_settings
from bethos.flink.etl import build

DEFAULT_CONFIG = "config/etl.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=os.environ.get("BETHOS_CONFIG", DEFAULT_CONFIG))
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings(EtlSettings, args.config)
    env, statements = build(settings)
    statements.attach_as_datastream()
    env.execute("bethos etl")


if __name__ == "__main__":
    main()
