"""The ETL source, free of Flink: windows and chunks, reads, per-pod progress."""
