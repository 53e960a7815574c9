"""`bethos status`: per job its state, uptime, restarts and checkpoint age, the ETL's pods (lag,
last poll), the merger's VINs and flush age, and how far each Kafka source is behind its topic.

Everything comes from Flink's REST API except the topics' end offsets, which Kafka gives:
- state: `/jobs/overview`;
- uptime and restarts: the job metrics `uptime` (since the last restart) and `numRestarts`;
- checkpoint age: `/jobs/<id>/checkpoints`, `latest.completed.latest_ack_timestamp`;
- the operators' metrics, `/jobs/<id>/vertices/<vid>/subtasks/metrics` (min/max/sum over the
  subtasks): `<operator>.pod.<pod>.lag_ms` and `.last_poll_at_ms` (the ETL),
  `<operator>.vins_held` and `.last_flush_at_ms` (the merger);
- consumer lag, from Kafka alone: the merger's Kafka source commits its offsets to Kafka under
  the merger's `consumer_group` when a checkpoint completes, so the records behind are the
  topic's end offsets minus that group's committed offsets, per partition, summed per topic.
  The group and topic are those of the merger's config (Flink's metrics name neither: its
  offset gauges replace the dots of a topic name and appear only for partitions that have had
  records).

The modules: `rest_figures` (the jobs' figures from Flink's REST answers: reading each answer
is a pure function, and gathering takes the REST reader as a function, so tests feed recorded
JSON), `consumer_lag` (the records a consumer group is behind, asked of Kafka), `snapshot` (the
status now: the services, the jobs, the lag; `collect`), `rich_tables` (the tables `bethos
status` prints).
"""
