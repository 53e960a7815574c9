"""The records a consumer group is behind its topic."""

from __future__ import annotations

from devstack.status.consumer_lag import TopicLag, topic_lag


def test_records_behind_per_topic() -> None:
    lag = topic_lag("g", "t", committed={0: 90, 1: -1001}, ends={0: 100, 1: 7, 2: 5})
    # partition 1 has an invalid (none) offset, partition 2 none at all
    assert lag == TopicLag("g", "t", 3, 10, 2)
    assert topic_lag("g", "t", {0: 100}, {0: 100}).records_behind == 0
