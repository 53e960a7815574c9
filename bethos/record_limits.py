"""Bounds on a VIN's latest record, which is the union of every signal ever seen for the VIN.

Without them one VIN that reports ever new signal names, or ever longer strings, grows its
latest record past the broker's message limit: the sink fails on it and the job restarts in a
loop. `merge_bounded` merges a record as the merge rule says, except the signals that would
break a limit: those are left out and handed back as `Refused`, for a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass

from bethos.merge_rule import Candidate, VinState, candidate_key
from bethos.record import INT64_MIN, AggregatedRecord, Signal, encode_latest

TOO_MANY_SIGNALS = "too_many_signals"
VALUE_TOO_LARGE = "value_too_large"
RECORD_TOO_LARGE = "record_too_large"


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """`max_signals`: signals a VIN's latest record may hold; `max_value_bytes`: UTF-8 bytes of
    one string value; `max_record_bytes`: the encoded latest record, which must stay under the
    latest topic's `max.message.bytes` and the producer's `max.request.size`."""

    max_signals: int = 10_000
    max_value_bytes: int = 65_536
    max_record_bytes: int = 1_000_000


@dataclass(frozen=True, slots=True)
class Refused:
    """Signals of one record left out of the VIN's state, and why."""

    reason: str
    detail: str
    signals: dict[str, Signal]


# The longest JSON of a number (orjson writes it `-1.7976931348623157e+308`, 24 bytes, as long
# as any 17-digit float with a three-digit exponent): a later update of a number never makes the
# record larger.
_WIDEST_NUMBER = -1.7976931348623157e308


# orjson writes a character as at most 6 bytes (`\u001f`); a signal's JSON beyond its name and
# value is `"":{"value":,"ts":-9223372036854775808},` (40 bytes); a number at its widest is 24.
_CHAR_BYTES = 6
_SIGNAL_BYTES = 40
_NUMBER_BYTES = 24
# An empty record writes updated_at as 0; with signals at INT64_MIN it takes 19 bytes more.
_UPDATED_AT_BYTES = 19
# A record with no signals, an empty VIN and pod and its times at their widest: the VIN (twice)
# and the pod add their characters to it.
_EMPTY_RECORD_BYTES = len(encode_latest("", {}, "", INT64_MIN, INT64_MIN)) + _UPDATED_AT_BYTES


def size_bound(vin: str, state: VinState) -> int:
    """A cheap bound on `latest_size`, without encoding the record: lengths only, summed in C
    where they can be (the merge asks it of every record that adds signals or strings)."""
    signals = state.signals
    total = (
        _EMPTY_RECORD_BYTES
        + _CHAR_BYTES * (2 * len(vin) + len(state.pod) + sum(map(len, signals)))
        + (_SIGNAL_BYTES + _NUMBER_BYTES) * len(signals)
    )
    for value, _, _ in signals.values():
        if type(value) is str:
            total += _CHAR_BYTES * len(value) + 2 - _NUMBER_BYTES
    return total


def latest_size(vin: str, state: VinState) -> int:
    """A bound on the bytes of the VIN's latest record: its strings as they are, its numbers,
    booleans and times at their widest."""
    widest = {
        name: Signal(value if isinstance(value, str) else _WIDEST_NUMBER, INT64_MIN)
        for name, (value, _, _) in state.signals.items()
    }
    return len(encode_latest(vin, widest, state.pod, INT64_MIN, INT64_MIN))


def merge_bounded(
    state: VinState, record: AggregatedRecord, limits: RecordLimits
) -> tuple[bool, list[Refused]]:
    """Merge `record` into `state` within the limits: (any signal changed, what was refused).

    A string value over `max_value_bytes` is refused. New signal names beyond `max_signals`
    are refused (in name order, so a replay refuses the same ones). When the record's new
    signals and changed strings would make the latest record larger than `max_record_bytes`,
    they are taken back out and refused; the record's other updates stay.
    """
    known = state.signals
    received_at = record.received_at
    changed = False
    rest: dict[str, Candidate] | None = None
    for name, (value, ts) in record.signals.items():
        current = known.get(name)
        if current is None or type(value) is str or type(current[0]) is str:
            # What may grow the record (a new signal, a string): merged within the limits below.
            if rest is None:
                rest = {}
            rest[name] = (value, ts, received_at)
            continue
        # Numbers and booleans of known signals cannot grow the record (they are counted at
        # their widest): the merge rule alone. A later ts wins outright; a tie needs the key.
        if ts > current[1] or (
            ts == current[1] and candidate_key((value, ts, received_at)) > candidate_key(current)
        ):
            known[name] = (value, ts, received_at)
            changed = True
    if (received_at, record.pod) > (state.received_at, state.pod):
        state.received_at, state.pod = received_at, record.pod
    if rest is None:
        return changed, []
    grown, refused = _merge_candidates(state, record.vin, rest, limits)
    return changed or grown, refused


def merge_state_bounded(
    state: VinState, vin: str, other: VinState, limits: RecordLimits
) -> tuple[bool, list[Refused]]:
    """`merge_bounded` for a whole merged state (a closing window's) instead of one record."""
    if (other.received_at, other.pod) > (state.received_at, state.pod):
        state.received_at, state.pod = other.received_at, other.pod
    return _merge_candidates(state, vin, dict(other.signals), limits)


def _merge_candidates(
    state: VinState, vin: str, incoming: dict[str, Candidate], limits: RecordLimits
) -> tuple[bool, list[Refused]]:
    refused: list[Refused] = []
    if any(type(candidate[0]) is str for candidate in incoming.values()):
        too_long = {
            name: candidate
            for name, candidate in incoming.items()
            if type(candidate[0]) is str and len(candidate[0].encode()) > limits.max_value_bytes
        }
        if too_long:
            for name in too_long:
                del incoming[name]
            detail = f"string values longer than {limits.max_value_bytes} bytes"
            refused.append(Refused(VALUE_TOO_LARGE, detail, _signals(too_long)))
    known = state.signals
    new_names = [name for name in incoming if name not in known]
    room = max(0, limits.max_signals - len(known))
    if len(new_names) > room:
        new_names.sort()
        over = {name: incoming.pop(name) for name in new_names[room:]}
        detail = (
            f"the VIN's latest record holds {len(known)} signals of at most "
            f"{limits.max_signals}; {len(over)} new ones left out"
        )
        refused.append(Refused(TOO_MANY_SIGNALS, detail, _signals(over)))
    # What may grow the record: new signals and strings (changed, or changed to or from);
    # undone when the record would grow too large. Numbers count at their widest already.
    before: dict[str, Candidate | None] = {}
    updated: list[str] = []
    for name, candidate in incoming.items():
        current = known.get(name)
        if current is None:
            before[name] = None
        elif candidate_key(candidate) > candidate_key(current):
            if type(candidate[0]) is str or type(current[0]) is str:
                before[name] = current
        else:
            continue
        known[name] = candidate
        updated.append(name)
    if (
        before
        and size_bound(vin, state) > limits.max_record_bytes
        and latest_size(vin, state) > limits.max_record_bytes
    ):
        for name, previous in before.items():
            if previous is None:
                del known[name]
            else:
                known[name] = previous
        updated = [name for name in updated if name not in before]
        detail = f"the VIN's latest record would be more than {limits.max_record_bytes} bytes"
        refused.append(
            Refused(RECORD_TOO_LARGE, detail, _signals({n: incoming[n] for n in before}))
        )
    return bool(updated), refused


def _signals(candidates: dict[str, Candidate]) -> dict[str, Signal]:
    return {name: Signal(value, ts) for name, (value, ts, _) in candidates.items()}
