"""Writing points with the v1 `/write` endpoint and line protocol (generator, tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import requests

from bethos.config import InfluxSettings
from bethos.exceptions import SourceError
from bethos.record import SignalValue
from connectors.influxdb.session import open_session


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, SignalValue]
    ts_ms: int


def _escape_key(text: str) -> str:
    # Line protocol escapes only these in keys and tag values; a backslash stays literal.
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_value(value: SignalValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_protocol(point: Point) -> str:
    measurement = point.measurement.replace(",", "\\,").replace(" ", "\\ ")
    tags = "".join(
        f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(point.tags.items()) if v
    )
    fields = ",".join(f"{_escape_key(k)}={_field_value(v)}" for k, v in point.fields.items())
    return f"{measurement}{tags} {fields} {point.ts_ms}"


class InfluxWriter:
    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._session = open_session(settings)

    def _post(self, path: str, **kwargs: object) -> requests.Response:
        url = f"{self._settings.url.rstrip('/')}{path}"
        try:
            response = self._session.post(url, timeout=60, **kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:
            raise SourceError(f"{path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise SourceError(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
        return response

    def create_database(self) -> None:
        name = self._settings.database.replace("\\", "\\\\").replace('"', '\\"')
        self._post("/query", data={"q": f'CREATE DATABASE "{name}"'})

    def drop_database(self) -> None:
        name = self._settings.database.replace("\\", "\\\\").replace('"', '\\"')
        self._post("/query", data={"q": f'DROP DATABASE "{name}"'})

    def write(self, points: Iterable[Point], batch: int = 10_000) -> int:
        lines: list[str] = []
        written = 0
        for point in points:
            lines.append(line_protocol(point))
            if len(lines) >= batch:
                written += self._write_lines(lines)
                lines = []
        if lines:
            written += self._write_lines(lines)
        return written

    def _write_lines(self, lines: list[str]) -> int:
        self._post(
            "/write",
            params={"db": self._settings.database, "precision": "ms"},
            data="\n".join(lines).encode("utf-8"),
        )
        return len(lines)

    def close(self) -> None:
        self._session.close()
