"""bethos: the latest value of every vehicle sensor, from InfluxDB to a compacted Kafka topic."""
