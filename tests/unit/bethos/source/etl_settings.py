"""The ETL settings the source's tests share."""

from __future__ import annotations

from bethos.config import EtlSettings, InfluxSettings

SETTINGS = EtlSettings(
    influxdb=InfluxSettings(pods=["p"]),
    poll_interval=10_000,
    chunk_duration=10_000,
    lookback=30_000,
    ingest_delay=2_000,
    max_window=600_000,
    retry_max_attempts=3,
    retry_initial_interval=500,
    retry_max_interval=10_000,
)
