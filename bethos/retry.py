"""The retry schedule shared by every retrying part: exponential backoff with full jitter."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial: int, maximum: int, rng: random.Random) -> int:
    """Exponential backoff with full jitter: a delay in [initial/2, min(max, initial*2^(n-1))]."""
    ceiling = min(maximum, initial * (2 ** max(0, attempt - 1)))
    return int(rng.uniform(min(initial, ceiling) / 2, ceiling))
