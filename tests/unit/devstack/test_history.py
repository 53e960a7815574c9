from __future__ import annotations

from bethos.record import encode_latest
from devstack.verify import Regression, regressions


def message(vin: str, **signals: int) -> tuple[bytes, bytes]:
    candidates = {name: (float(ts), ts, 0) for name, ts in signals.items()}
    return vin.encode(), encode_latest(vin, candidates, "p", 0, 0)


def test_a_history_that_only_moves_forward_has_no_regression() -> None:
    history = [
        message("A", speed=10),
        message("B", speed=5),
        message("A", speed=10, soc=3),  # a new signal, the same speed again
        message("A", speed=12, soc=3),
        (b"A", None),  # a tombstone forgets A ...
        message("A", soc=1),  # ... so what follows starts afresh
    ]
    assert regressions(history) == []


def test_an_older_value_or_a_vanished_signal_is_a_regression() -> None:
    history = [
        message("A", speed=10, soc=3),
        message("A", speed=9, soc=3),  # speed went back (a restore re-published it)
        message("A", speed=11),  # soc vanished
        message("A", speed=11, soc=4),
    ]
    assert regressions(history) == [
        Regression("A", "speed", "older", 10, 9),
        Regression("A", "soc", "vanished", 3, None),
    ]
