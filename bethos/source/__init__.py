"""The ETL source, free of Flink: one tick of a pod, top to bottom (`poller`: its state, its
finished read settled, its next read planned and handed over), the reads on background threads
between ticks (`window_reads`), the rejects dead-lettered once (`rejects`), the progress file
(`progress_file`), the input layout's resource map (`layout`)."""
