"""Each bad value dead-lettered once, though several reads find it.

Every window starts `lookback` before the end of the last one, and a reconcile pass reads whole
buckets again, so a bad row comes back in several reads. A pod keeps a fingerprint of each reject
it has dead-lettered, with the row's time, for as long as a later read can still reach that time.
Fingerprints are stable hashes, not Python's `hash()` (salted per process): the set lives in
Flink state and is restored on other TaskManagers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from bethos.config import EtlSettings
from bethos.fetch_result import Reject

# Beyond this many per pod (a flood of bad rows) the oldest are forgotten; at worst a forgotten
# one is dead-lettered again by a later read.
MAX_REMEMBERED = 100_000


def fingerprint(reject: Reject) -> int:
    digest = hashlib.blake2b(f"{reject.reason}\0{reject.row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def reach_back(completed_until: int, settings: EtlSettings) -> int:
    """The oldest time that a read planned from this progress or a later one can cover: a
    window starts `lookback` before the progress, a reconcile pass at most `reconcile_window`
    before now (bucket-aligned, so one bucket more)."""
    reach = settings.lookback
    if settings.reconcile_interval > 0:
        reach = max(reach, settings.reconcile_window + settings.chunk_duration)
    return completed_until - reach


def first_sent(
    rejects: Iterable[Reject], sent: dict[int, int], forget_before: int
) -> tuple[list[Reject], int]:
    """The rejects not dead-lettered before, and how many were. Updates `sent` (fingerprint ->
    row time, epoch ms): adds the new ones, forgets those whose time is before `forget_before`
    (no read reaches them again) and, past MAX_REMEMBERED, the oldest."""
    new: list[Reject] = []
    repeated = 0
    for reject in rejects:
        key = fingerprint(reject)
        if key in sent:
            repeated += 1
        else:
            sent[key] = reject.at
            new.append(reject)
    for key in [key for key, at in sent.items() if at < forget_before]:
        del sent[key]
    if len(sent) > MAX_REMEMBERED:
        newest = sorted(sent.items(), key=lambda item: item[1])[-MAX_REMEMBERED:]
        sent.clear()
        sent.update(newest)
    return new, repeated
