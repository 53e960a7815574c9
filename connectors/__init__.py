"""Connectors of bethos: the InfluxDB source and the Kafka topics."""
