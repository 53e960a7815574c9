"""The ETL source, free of Flink: planning windows and chunks (`planning`), reads on background
threads (`window_reads`), per-pod progress and the poller that drives them (`poller`), the progress
file (`progress_file`), the input layout's resource map (`layout`)."""
