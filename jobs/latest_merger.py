"""The latest merger job: `flink run -py jobs/latest_merger.py [--config FILE]`."""

from __future__ import annotations

import argparse
import logging
import os

from bethos.config import MergerSettings, load_settings
from bethos.flink.merger import build

DEFAULT_CONFIG = "config/latest_merger.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=os.environ.get("BETHOS_CONFIG", DEFAULT_CONFIG))
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings(MergerSettings, args.config)
    env, statements = build(settings)
    statements.attach_as_datastream()
    env.execute("bethos latest merger")


if __name__ == "__main__":
    main()
