"""The ETL's rows for the aggregated topic's sink, made without Row's __init__, are Rows."""

from __future__ import annotations

import pickle

from pyflink.common import Row, RowKind

from bethos_flink.rows import key_value_row


def test_a_key_value_row_is_the_row_of_its_key_and_value() -> None:
    for key, value in (("VIN1", '{"a":1}'), ("", ""), ("\u2400", "x")):
        fast, plain = key_value_row(key, value), Row(key, value)
        assert fast.__dict__ == plain.__dict__
        assert fast == plain and repr(fast) == repr(plain)
        assert list(fast) == [key, value] and fast[0] == key and fast[1] == value
        assert fast.get_row_kind() is RowKind.INSERT and not hasattr(fast, "_fields")
        assert pickle.loads(pickle.dumps(fast)) == plain
