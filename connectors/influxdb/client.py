"""InfluxDB v1 `/query` over HTTP: InfluxQL, chunked JSON, every chunk checked for errors.

The v1 query API is served by InfluxDB 1.x, 2.x (DBRP mapping) and 3.x; auth is Basic with the
user and password, or a 2.x/3.x token sent as the password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import requests

from bethos.config import InfluxSettings
from bethos.exceptions import RecordError, SourceError
from bethos.poller import FetchResult, Reading, Reject, Window
from bethos.record import check_signal_value
from connectors.influxdb.influxql import NS_PER_MS, wide_window_query, window_params

log = logging.getLogger(__name__)


class InfluxClient:
    """Construct cheaply; the HTTP session is opened on first use and closed by `close()`."""

    def __init__(self, settings: InfluxSettings, chunk_size: int = 10_000) -> None:
        self._settings = settings
        self._chunk_size = chunk_size
        self._session: requests.Session | None = None
        self._query = wide_window_query(settings.measurement, settings.pod_tag, settings.vin_tag)

    def _http(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            if self._settings.password is not None:
                session.auth = (
                    self._settings.username,
                    self._settings.password.get_secret_value(),
                )
            if self._settings.ca_file:
                session.verify = self._settings.ca_file
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def query_chunks(self, query: str, params: dict[str, object]) -> Iterator[dict[str, Any]]:
        """Yield each result object of a chunked response; raise SourceError on any error."""
        try:
            response = self._http().post(
                f"{self._settings.url.rstrip('/')}/query",
                data={
                    "db": self._settings.database,
                    "q": query,
                    "params": orjson.dumps(params).decode(),
                    "epoch": "ns",
                    "chunked": "true",
                    "chunk_size": str(self._chunk_size),
                },
                stream=True,
                timeout=self._settings.timeout / 1000,
            )
        except requests.RequestException as exc:
            raise SourceError(f"request failed: {type(exc).__name__}: {exc}") from None
        with response:
            if response.status_code != 200:
                raise SourceError(f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                for line in response.iter_lines():
                    if not line:
                        continue
                    body = orjson.loads(line)
                    if body.get("error"):
                        raise SourceError(f"query error: {body['error']}")
                    for result in body.get("results", []):
                        if result.get("error"):
                            raise SourceError(f"query error: {result['error']}")
                        yield result
            except (requests.RequestException, orjson.JSONDecodeError) as exc:
                raise SourceError(f"response broken: {type(exc).__name__}: {exc}") from None

    def fetch_window(self, pod: str, window: Window) -> FetchResult:
        """Every reading of one pod in the window, wide layout (each field a signal)."""
        result = FetchResult()
        vin_tag = self._settings.vin_tag
        params = window_params(pod, window.start, window.end)
        for chunk in self.query_chunks(self._query, params):
            for series in chunk.get("series", []):
                vin = (series.get("tags") or {}).get(vin_tag, "")
                columns = series["columns"]
                for row in series["values"]:
                    if not vin:
                        result.rejects.append(
                            Reject(
                                "no_vin",
                                f"series has no {vin_tag!r} tag",
                                orjson.dumps(dict(zip(columns, row, strict=True))).decode(),
                            )
                        )
                        continue
                    ts = row[0] // NS_PER_MS
                    for name, value in zip(columns[1:], row[1:], strict=True):
                        if value is None:
                            continue
                        try:
                            checked = check_signal_value(name, value)
                        except RecordError as exc:
                            result.rejects.append(
                                Reject(
                                    exc.reason,
                                    exc.detail,
                                    orjson.dumps(
                                        {"vin": vin, "time": row[0], name: value}
                                    ).decode(),
                                )
                            )
                            continue
                        result.readings.append(Reading(vin, name, checked, ts))
        return result
