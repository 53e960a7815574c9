from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from bethos.merge_rule import VinState, value_order_key
from bethos.record import INT64_MAX, INT64_MIN, AggregatedRecord, Signal, SignalValue
from bethos.record_limits import TOO_MANY_SIGNALS, RecordLimits
from bethos.strategies.window_stream import (
    Outcome,
    Verdict,
    WindowLogic,
    WindowState,
    WindowStream,
    close_time,
    event_time,
    window_end,
)

SIZE = 10
MIN_WATERMARK = INT64_MIN  # Flink's Long.MIN_VALUE before the first watermark


def record(
    received_at: int = 0, pod: str = "p1", **signals: tuple[SignalValue, int]
) -> AggregatedRecord:
    as_signals = {name: Signal(value, ts) for name, (value, ts) in signals.items()}
    return AggregatedRecord("VIN1", as_signals, pod, received_at, 0)


def canonical(state: VinState) -> tuple[object, ...]:
    signals = {name: (value_order_key(c[0]), c[1], c[2]) for name, c in state.signals.items()}
    return (signals, state.pod, state.received_at)


def merged(records: list[AggregatedRecord]) -> VinState:
    state = VinState()
    for rec in records:
        state.merge_record(rec)
    return state


def test_window_end_at_the_boundaries() -> None:
    assert window_end(0, SIZE) == 10
    assert window_end(9, SIZE) == 10
    assert window_end(10, SIZE) == 20
    assert window_end(1_700_000_039_999, 60_000) == 1_700_000_040_000
    assert window_end(1_700_000_040_000, 60_000) == 1_700_000_100_000


def test_event_time_is_the_newest_signal_ts() -> None:
    assert event_time(record(speed=(1, 3), door=(True, 7), gear=("D", 5))) == 7
    assert event_time(record(received_at=42)) == 42


def test_close_time_is_the_last_millisecond_capped_at_the_largest_long() -> None:
    assert close_time(10) == 9
    assert close_time(window_end(INT64_MAX, 1000)) == INT64_MAX


def test_the_start_of_stream_watermark_leaves_every_window_open() -> None:
    state = WindowState()
    first = state.add(record(speed=(1, 0)), MIN_WATERMARK, SIZE, 0)
    again = state.add(record(speed=(2, 5)), MIN_WATERMARK, SIZE, 0)
    assert first == Outcome(Verdict.PENDING, 10, new_window=True)
    assert again == Outcome(Verdict.PENDING, 10, new_window=False)
    assert state.due(MIN_WATERMARK) == []


def verdict_at(watermark: int, allowed_lateness_ms: int) -> Verdict:
    return WindowState().add(record(speed=(1, 5)), watermark, SIZE, allowed_lateness_ms).verdict


def test_pending_late_and_too_late_at_the_exact_boundaries() -> None:
    # The window [0, 10) closes at watermark 9; with lateness 5 it takes records until 13.
    assert verdict_at(8, 5) is Verdict.PENDING
    assert verdict_at(9, 5) is Verdict.LATE_EMIT
    assert verdict_at(13, 5) is Verdict.LATE_EMIT
    assert verdict_at(14, 5) is Verdict.TOO_LATE
    assert verdict_at(8, 0) is Verdict.PENDING
    assert verdict_at(9, 0) is Verdict.TOO_LATE


def test_too_late_leaves_the_state_untouched() -> None:
    state = WindowState()
    state.add(record(speed=(1, 5)), MIN_WATERMARK, SIZE, 0)
    state.close(10)
    state.add(record(speed=(2, 15)), 9, SIZE, 0)
    before = state.to_tuple()
    outcome = state.add(record(speed=(9, 8), door=(True, 8)), 9, SIZE, 0)
    assert outcome == Outcome(Verdict.TOO_LATE, 10)
    assert state.to_tuple() == before


def test_the_emission_of_window_2_includes_the_signals_of_window_1() -> None:
    state = WindowState()
    state.add(record(speed=(50, 3)), MIN_WATERMARK, SIZE, 0)
    state.add(record(door=(True, 12)), MIN_WATERMARK, SIZE, 0)
    first = state.close(10)
    second = state.close(20)
    assert first is not None and second is not None
    assert first.latest_signals() == {"speed": Signal(50, 3)}
    assert second.latest_signals() == {"speed": Signal(50, 3), "door": Signal(True, 12)}


def test_a_record_of_an_open_later_window_does_not_leak_into_an_earlier_emission() -> None:
    state = WindowState()
    state.add(record(speed=(50, 13)), MIN_WATERMARK, SIZE, 0)
    state.add(record(speed=(70, 25), gear=("P", 21)), MIN_WATERMARK, SIZE, 0)
    emission = state.close(20)
    assert emission is not None
    assert emission.latest_signals() == {"speed": Signal(50, 13)}
    assert list(state.pending) == [30]


def test_late_emit_reports_whether_anything_changed() -> None:
    state = WindowState()
    state.add(record(speed=(50, 3)), MIN_WATERMARK, SIZE, 0)
    state.close(10)
    duplicate = state.add(record(speed=(50, 3)), 9, SIZE, 5)
    older = state.add(record(speed=(40, 1)), 9, SIZE, 5)
    newer = state.add(record(speed=(60, 4), door=(False, 2)), 9, SIZE, 5)
    assert duplicate == Outcome(Verdict.LATE_EMIT, 10, changed=False)
    assert older == Outcome(Verdict.LATE_EMIT, 10, changed=False)
    assert newer == Outcome(Verdict.LATE_EMIT, 10, changed=True)
    assert state.closed.latest_signals() == {"speed": Signal(60, 4), "door": Signal(False, 2)}


def test_a_window_takes_records_until_its_timer_closes_it() -> None:
    state = WindowState()
    state.add(record(speed=(50, 3)), MIN_WATERMARK, SIZE, 0)
    outcome = state.add(record(door=(True, 4)), 11, SIZE, 0)
    assert outcome == Outcome(Verdict.PENDING, 10, new_window=False)
    emission = state.close(10)
    assert emission is not None
    assert emission.latest_signals() == {"speed": Signal(50, 3), "door": Signal(True, 4)}


def test_close_without_pending_records_emits_nothing() -> None:
    state = WindowState()
    assert state.close(10) is None
    state.add(record(speed=(50, 3)), MIN_WATERMARK, SIZE, 0)
    assert state.close(10) is not None
    assert state.close(10) is None


def test_an_emission_is_a_copy() -> None:
    state = WindowState()
    state.add(record(speed=(50, 3)), MIN_WATERMARK, SIZE, 0)
    emission = state.close(10)
    state.add(record(speed=(60, 5)), 9, SIZE, 5)
    assert emission is not None
    assert emission.latest_signals() == {"speed": Signal(50, 3)}


def test_due_lists_the_closed_pending_windows_oldest_first() -> None:
    state = WindowState()
    for ts in (35, 5, 22, 14):
        state.add(record(speed=(1, ts)), MIN_WATERMARK, SIZE, 0)
    assert state.due(8) == []
    assert state.due(29) == [10, 20, 30]
    assert state.due(INT64_MAX) == [10, 20, 30, 40]


def test_to_tuple_round_trip() -> None:
    state = WindowState()
    state.add(record(received_at=7, pod="p2", speed=(1.5, 3), gear=("D", 4)), -5, SIZE, 0)
    state.close(10)
    state.add(record(door=(True, 15)), 9, SIZE, 0)
    state.add(record(soc=(80, 27)), 9, SIZE, 0)
    saved = pickle.loads(pickle.dumps(state.to_tuple()))
    assert WindowState.from_tuple(saved) == state
    assert WindowState.from_tuple(None) == WindowState()


values = st.one_of(
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    st.sampled_from(["", "a", "D", "P"]),
)
records = st.builds(
    lambda signals, received_at, pod: AggregatedRecord(
        "VIN1", {name: Signal(v, ts) for name, (v, ts) in signals.items()}, pod, received_at, 0
    ),
    st.dictionaries(
        st.sampled_from(["speed", "door", "gear", "soc"]),
        st.tuples(values, st.integers(min_value=0, max_value=60)),
        min_size=1,
        max_size=4,
    ),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["p1", "p2"]),
)


class Run:
    """Feeds records in arrival order with a bounded out-of-orderness watermark, closing
    windows as the watermark passes them, the way the Flink function's timers would."""

    def __init__(self, out_of_orderness_ms: int, allowed_lateness_ms: int) -> None:
        self.out_of_orderness_ms = out_of_orderness_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.state = WindowState()
        self.watermark = MIN_WATERMARK
        self.arrived: list[AggregatedRecord] = []
        self.accepted: list[AggregatedRecord] = []
        # (end of the window, emission, records accepted by then)
        self.closings: list[tuple[int, VinState, list[AggregatedRecord]]] = []
        # (watermark, emission) for each allowed late record
        self.late_emissions: list[tuple[int, VinState]] = []
        self.emissions: list[VinState] = []

    def feed(self, rec: AggregatedRecord) -> Outcome:
        outcome = self.state.add(rec, self.watermark, SIZE, self.allowed_lateness_ms)
        closes_at = close_time(outcome.end)
        if outcome.verdict is Verdict.TOO_LATE:
            assert self.watermark >= closes_at + self.allowed_lateness_ms
        else:
            self.accepted.append(rec)
        if outcome.verdict is Verdict.LATE_EMIT:
            assert closes_at <= self.watermark < closes_at + self.allowed_lateness_ms
            emission = VinState.from_tuple(self.state.closed.to_tuple())
            self.late_emissions.append((self.watermark, emission))
            self.emissions.append(emission)
        self.arrived.append(rec)
        newest = max(event_time(r) for r in self.arrived)
        self.advance(max(self.watermark, newest - self.out_of_orderness_ms))
        return outcome

    def advance(self, watermark: int) -> None:
        self.watermark = watermark
        for end in self.state.due(watermark):
            emission = self.state.close(end)
            assert emission is not None
            self.closings.append((end, emission, list(self.accepted)))
            self.emissions.append(emission)


lateness = st.integers(min_value=0, max_value=30)


@given(st.lists(records, max_size=12), lateness, lateness)
def test_each_closing_emits_every_record_of_its_window_and_earlier_and_nothing_later(
    arrivals: list[AggregatedRecord], out_of_orderness_ms: int, allowed_lateness_ms: int
) -> None:
    run = Run(out_of_orderness_ms, allowed_lateness_ms)
    for rec in arrivals:
        run.feed(rec)
    run.advance(INT64_MAX)
    ends = [end for end, _, _ in run.closings]
    assert ends == sorted(set(ends))
    for end, emission, accepted in run.closings:
        assert all(ts < end for _, ts, _ in emission.signals.values())
        expected = [r for r in accepted if window_end(event_time(r), SIZE) <= end]
        assert canonical(emission) == canonical(merged(expected))
    # A late emission holds closed windows only, and a closed window ends by the watermark.
    for watermark, emission in run.late_emissions:
        assert all(ts <= watermark for _, ts, _ in emission.signals.values())
    assert canonical(run.state.closed) == canonical(merged(run.accepted))
    assert run.state.pending == {}


@given(st.lists(records, min_size=1, max_size=12), st.data())
def test_when_nothing_is_too_late_the_last_emission_is_the_merge_of_all_records(
    arrivals: list[AggregatedRecord], data: st.DataObject
) -> None:
    # Lateness that covers the whole out-of-orderness: no record can be too late.
    out_of_orderness_ms = data.draw(lateness)
    allowed_lateness_ms = data.draw(st.integers(min_value=61, max_value=100))
    run = Run(out_of_orderness_ms, allowed_lateness_ms)
    outcomes = [run.feed(rec) for rec in arrivals]
    run.advance(INT64_MAX)
    assert all(o.verdict is not Verdict.TOO_LATE for o in outcomes)
    assert canonical(run.emissions[-1]) == canonical(merged(arrivals))


def test_the_logic_places_records_closes_windows_and_loads_state() -> None:
    logic = WindowStream.model_validate(
        {"window": {"size": "10ms", "allowed_lateness": "5ms"}}
    ).build()
    assert logic == WindowLogic(size_ms=10, allowed_lateness_ms=5)
    state = WindowState()
    # The latest topic's record, read at a stateless start, is state, not an event.
    logic.load(state, record(gear=("P", 1)))
    assert logic.place(state, record(speed=(1, 3)), MIN_WATERMARK).verdict is Verdict.PENDING
    assert logic.place(state, record(speed=(2, 14)), MIN_WATERMARK).new_window
    assert logic.on_watermark(state, 8) == []
    emissions = logic.on_watermark(state, 19)
    assert [e.latest_signals() for e in emissions] == [
        {"gear": Signal("P", 1), "speed": Signal(1, 3)},
        {"gear": Signal("P", 1), "speed": Signal(2, 14)},
    ]
    assert logic.place(state, record(door=(True, 12)), 19).verdict is Verdict.LATE_EMIT
    late = logic.place(state, record(door=(False, 2)), 19)
    assert late.verdict is Verdict.TOO_LATE
    assert logic.too_late(late.end, 19) == (
        "window ending 10 closed; watermark 19 is past its allowed lateness of 5 ms"
    )


def test_closing_windows_keep_the_record_within_the_limits() -> None:
    logic = WindowLogic(SIZE, allowed_lateness_ms=100, limits=RecordLimits(max_signals=3))
    state = WindowState()
    logic.place(state, record(a=(1, 1), b=(1, 2)), MIN_WATERMARK)
    logic.place(state, record(c=(1, 11), d=(1, 12)), MIN_WATERMARK)
    (first, second) = logic.on_watermark(state, 25, "VIN1")
    assert sorted(first.signals) == ["a", "b"] and sorted(second.signals) == ["a", "b", "c"]
    (kept_out,) = state.refused
    assert kept_out.reason == TOO_MANY_SIGNALS and list(kept_out.signals) == ["d"]
    state.refused.clear()
    # A late record within the allowed lateness is bounded the same way.
    outcome = logic.place(state, record(e=(1, 15), a=(2, 16)), 30)
    assert outcome.verdict is Verdict.LATE_EMIT and outcome.changed
    assert sorted(state.closed.signals) == ["a", "b", "c"]
    assert [part.signals.keys() for part in state.refused] == [{"e"}]
    # What the limits keep out is never saved.
    assert WindowState.from_tuple(state.to_tuple()).refused == []


def test_a_latest_record_read_after_an_emission_asks_for_one_more() -> None:
    """Both topics are read at once: a VIN's window may close and emit before the latest
    topic's record of the VIN is read, and that emission lacks what the record holds."""
    logic = WindowLogic(SIZE)
    state = WindowState()
    assert not logic.load(state, record(gear=("P", 1)))
    logic.place(state, record(speed=(1, 3)), MIN_WATERMARK)
    (emission,) = logic.on_watermark(state, 19)
    assert emission.latest_signals() == {"gear": Signal("P", 1), "speed": Signal(1, 3)}
    assert logic.load(state, record(door=(True, 2)))
    assert state.closed.latest_signals()["door"] == Signal(True, 2)
    # What adds nothing asks for nothing; the flag is saved.
    assert not logic.load(state, record(speed=(0, 1)))
    assert WindowState.from_tuple(state.to_tuple()).emitted


def test_a_state_saved_before_the_emitted_flag_counts_as_emitted() -> None:
    state = WindowState()
    state.add(record(speed=(1, 3)), MIN_WATERMARK, SIZE, 0)
    closed, pending, _ = state.to_tuple()
    assert WindowState.from_tuple((closed, pending)).emitted
