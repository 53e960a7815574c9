from __future__ import annotations

import itertools
import marshal

from hypothesis import given
from hypothesis import strategies as st

from bethos.merge_rule import VinState, newer, value_order_key
from bethos.record import AggregatedRecord, Signal, SignalValue, encode_latest

values = st.one_of(
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    st.sampled_from(["", "a", "b", "D", "P"]),
)
# Few distinct timestamps so that equal ts and equal received_at happen often.
times = st.integers(min_value=0, max_value=3)
signal_names = st.sampled_from(["speed", "door", "gear", "soc"])
records = st.builds(
    lambda signals, received_at, pod: AggregatedRecord(
        "VIN1", {name: Signal(v, ts) for name, (v, ts) in signals.items()}, pod, received_at, 0
    ),
    st.dictionaries(signal_names, st.tuples(values, times), max_size=4),
    times,
    st.sampled_from(["p1", "p2"]),
)


def merged(recs: list[AggregatedRecord]) -> VinState:
    state = VinState()
    for record in recs:
        state.merge_record(record)
    return state


def canonical(state: VinState) -> tuple[object, ...]:
    signals = {name: (value_order_key(c[0]), c[1], c[2]) for name, c in state.signals.items()}
    return (signals, state.pod, state.received_at)


@given(st.lists(records, max_size=6))
def test_merge_is_commutative_over_any_order(recs: list[AggregatedRecord]) -> None:
    expected = canonical(merged(recs))
    for order in itertools.islice(itertools.permutations(recs), 24):
        assert canonical(merged(list(order))) == expected


@given(st.lists(records, max_size=5), st.lists(records, max_size=5), st.lists(records, max_size=5))
def test_merge_is_associative(
    a: list[AggregatedRecord], b: list[AggregatedRecord], c: list[AggregatedRecord]
) -> None:
    left = merged(a)
    left_b = merged(b)
    left_b.merge_state(merged(c))
    left.merge_state(left_b)

    right = merged(a)
    right.merge_state(merged(b))
    right.merge_state(merged(c))
    assert canonical(left) == canonical(right) == canonical(merged(a + b + c))


@given(st.lists(records, max_size=6))
def test_merge_is_idempotent(recs: list[AggregatedRecord]) -> None:
    once = merged(recs)
    twice = merged(recs + recs)
    assert canonical(once) == canonical(twice)
    state = merged(recs)
    assert all(state.merge_record(r) is False for r in recs)


@given(st.lists(records, min_size=1, max_size=6), records)
def test_a_signal_never_moves_backwards(
    recs: list[AggregatedRecord], late: AggregatedRecord
) -> None:
    state = merged(recs)
    before = {name: c[1] for name, c in state.signals.items()}
    state.merge_record(late)
    for name, ts in before.items():
        assert state.signals[name][1] >= ts


def test_newest_event_time_wins_not_arrival_order() -> None:
    new = AggregatedRecord("V", {"speed": Signal(50.0, 200)}, "p", received_at=1, produced_at=0)
    old = AggregatedRecord("V", {"speed": Signal(10.0, 100)}, "p", received_at=9, produced_at=0)
    assert merged([new, old]).signals["speed"][0] == 50.0


def test_ties_break_on_received_at_then_value_order() -> None:
    assert newer((1.0, 5, 1), (2.0, 5, 2)) == (2.0, 5, 2)
    assert newer((9.0, 5, 2), (2.0, 5, 2)) == (9.0, 5, 2)
    # booleans < numbers < strings; among equal numbers int < float
    assert newer(("a", 5, 2), (True, 5, 2)) == ("a", 5, 2)
    assert newer((1, 5, 2), (1.0, 5, 2)) == (1.0, 5, 2)
    assert newer((1.0, 5, 2), (1, 5, 2)) == (1.0, 5, 2)


def test_signals_once_seen_stay() -> None:
    a = AggregatedRecord("V", {"speed": Signal(1.0, 1)}, "p", 1, 0)
    b = AggregatedRecord("V", {"door": Signal(True, 2)}, "p", 2, 0)
    assert set(merged([a, b]).latest_signals()) == {"speed", "door"}


def test_state_round_trips_through_its_saved_form() -> None:
    state = merged([AggregatedRecord("V", {"gear": Signal("D", 3)}, "p2", 7, 0)])
    restored = VinState.from_tuple(state.to_tuple())
    assert canonical(restored) == canonical(state)


def test_an_entry_survives_its_saved_form() -> None:
    import pickle

    from bethos.merge_rule import Entry

    assert Entry.load(None) == Entry(VinState())
    entry = Entry(VinState({"a": (1.5, 10, 2)}, "p", 2), True, 120_000, 99, 4, True)
    restored = Entry.load(pickle.loads(pickle.dumps(entry.saved())))
    assert restored == entry


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.tuples(
            st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False)),
            st.integers(0, 2**62),
            st.integers(0, 2**62),
        ),
        max_size=8,
    )
)
def test_the_latest_record_is_encoded_straight_from_the_candidates(
    signals: dict[str, tuple[SignalValue, int, int]],
) -> None:
    state = VinState(dict(signals), "pod-1", 5)
    expected = encode_latest("V1", state.latest_signals(), "pod-1", 5, 9)
    assert state.encode_latest("V1", produced_at=9) == expected


def test_an_entry_saved_before_the_census_loads_with_none() -> None:
    from bethos.merge_rule import Entry

    old = ({"speed": (1.0, 10, 1)}, "p", 1, True, 2_000, 100)
    entry = Entry.load(old)
    assert (entry.dirty, entry.next_flush, entry.last_seen, entry.census) == (True, 2_000, 100, -1)
    assert entry.merged_input
    assert Entry.load(entry.saved()) == entry


def test_an_entry_saved_before_merged_input_was_fed_by_the_input() -> None:
    from bethos.merge_rule import Entry

    old = marshal.dumps(({"speed": (1.0, 10, 1)}, "p", 1, False, 2_000, 100, 3), 4)
    entry = Entry.load(old)
    assert (entry.census, entry.merged_input) == (3, True)


def test_an_entry_keeps_every_value_type_through_state() -> None:
    from bethos.merge_rule import Entry, VinState

    signals = {
        "flag": (True, 1, 2),
        "count": (1, 1, 2),
        "speed": (1.0, 1, 2),
        "big": (2**63 - 1, 2**62, 2**62),
        "name": ("ü\u2400", 1, 2),
    }
    entry = Entry(VinState(signals, "pod-1", 5), True, 10, None, 3)
    loaded = Entry.load(entry.saved())
    assert loaded == entry
    assert [type(c[0]) for c in loaded.state.signals.values()] == [bool, int, float, int, str]
