"""`inline`: its settings build the flush and the batching; batches are keyed, JSON arrays."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.exceptions import ConfigError
from bethos.strategies.flushing import delivery_bucket
from bethos.strategies.inline import Inline, InlineSettings, batch_key


def inline(**settings: object) -> Inline:
    return Inline.model_validate({"flush_interval": "2s", "emit": "all", "inline": settings})


def test_build_carries_the_flush_and_the_batching() -> None:
    logic = inline(batch_size=4, linger="50ms").build()
    assert logic.flush.interval_ms == 2_000 and logic.flush.emit_all
    assert (logic.delivery.batch_size, logic.delivery.linger_ms) == (4, 50)
    assert logic.batched
    assert not inline().build().batched


@given(st.integers(1, 40), st.integers(1, 12))
def test_a_delivery_is_one_message_per_batch_holding_every_vin(vins: int, size: int) -> None:
    logic = inline(batch_size=size).build()
    entries = [(f"V{i}", None if i % 5 == 0 else b'{"vin":"V%d"}' % i) for i in range(vins)]
    messages = logic.batch_messages(17, entries)
    assert len(messages) == -(-vins // size)
    assert {key for key, _ in messages} == {batch_key(17)}
    records = [record for _, value in messages for record in orjson.loads(value)]
    assert [record["vin"] for record in records] == [vin for vin, _ in entries]
    assert [record.get("data", 0) is None for record in records] == [
        value is None for _, value in entries
    ]


def test_a_batch_key_keeps_a_vins_batches_on_one_partition() -> None:
    # The key is the VIN's delivery bucket: the same for every batch holding the VIN.
    assert batch_key(delivery_bucket("V1")) == batch_key(delivery_bucket("V1"))
    assert batch_key(3) != batch_key(4)


def test_a_line_is_the_record_or_the_tombstone_object() -> None:
    logic = inline().build()
    assert logic.line("V1", b'{"vin":"V1"}') == b'{"vin":"V1"}\n'
    assert orjson.loads(logic.line("V2", None)) == {"schema": 1, "vin": "V2", "data": None}


def test_batches_never_go_to_the_latest_topic() -> None:
    assert InlineSettings(sink="kafka").kafka_topic("latest") == "latest"
    assert InlineSettings(sink="kafka", batch_size=5, topic="batches").kafka_topic("x") == "batches"
    with pytest.raises(ConfigError, match=r"inline\.topic"):
        InlineSettings(sink="kafka", batch_size=5).kafka_topic("latest")
    with pytest.raises(ConfigError, match=r"inline\.topic"):
        InlineSettings(sink="kafka", batch_size=5, topic="latest").kafka_topic("latest")
