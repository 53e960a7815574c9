"""The errors of the developer tooling; each is a BethosError, so `bethos` prints it plainly."""

from __future__ import annotations

from bethos.exceptions import BethosError


class StackError(BethosError):
    """A service of the local stack failed to start or stop; the message names it."""


class GroundTruthError(BethosError):
    """InfluxDB did not answer the ground-truth queries of `verify` usably; the message says
    how."""
