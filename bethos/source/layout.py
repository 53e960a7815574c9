"""The InfluxDB input layout an ETL job reads: the resource map it needs, if any."""

from __future__ import annotations

from bethos.config import EtlSettings
from bethos.exceptions import ConfigError
from bethos.resource_map import ResourceMap, load_resource_map


def resource_map_for(settings: EtlSettings) -> ResourceMap | None:
    """The map an ETL job needs: loaded for the narrow layout, None for the wide one.

    A relative `resource_map_path` is relative to the working directory.
    """
    if settings.influxdb.layout != "narrow":
        return None
    if not settings.resource_map_path:
        raise ConfigError("resource_map_path: required when influxdb.layout is 'narrow'")
    return load_resource_map(settings.resource_map_path)
