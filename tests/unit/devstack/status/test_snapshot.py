from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.status import snapshot


class OneJob(BaseHTTPRequestHandler):
    """A cluster's REST API listing one finished job."""

    def do_GET(self) -> None:
        if self.path != "/jobs/overview":
            self.send_error(404)
            return
        body = json.dumps({"jobs": [{"jid": "j1", "name": "etl", "state": "FINISHED"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def rest_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneJob)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_jobs_come_from_the_cluster_it_is_given(rest_url: str) -> None:
    """Not the default port: a second cluster beside the stack's listens on others."""
    status = snapshot.collect([], [], all_jobs=True, rest_url=rest_url)
    assert [(job.name, job.state) for job in status.jobs] == [("etl", "FINISHED")]
