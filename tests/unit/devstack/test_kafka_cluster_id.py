import base64
import uuid

import pytest

from devstack.stack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xf8 encodes to "-" first: the storage tool once read such an id as an option and failed.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))

    cluster_id = kafka.new_cluster_id()

    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


def test_a_cluster_id_is_22_url_safe_characters() -> None:
    cluster_id = kafka.new_cluster_id()

    assert len(cluster_id) == 22
    assert base64.urlsafe_b64decode(cluster_id + "==") != b""
