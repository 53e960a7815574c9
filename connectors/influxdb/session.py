"""An HTTP session to InfluxDB: Basic auth (the 2.x/3.x token as password) and the CA file."""

from __future__ import annotations

import requests

from bethos.config import InfluxSettings


def open_session(settings: InfluxSettings) -> requests.Session:
    session = requests.Session()
    if settings.password is not None:
        session.auth = (settings.username, settings.password.get_secret_value())
    if settings.ca_file:
        session.verify = settings.ca_file
    return session
