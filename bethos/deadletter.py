"""Dead letters: what a job rejected, why, and where it came from (docs/CONTRACT.md,
"The dead letter"; schemas/dead_letter.schema.json)."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import orjson


def dead_letter(
    original: bytes | str | None,
    reason: str,
    error: str,
    origin: Mapping[str, object],
    now_ms: int,
) -> str:
    """The JSON value of a dead letter. Bytes that are not UTF-8 are kept as base64."""
    if isinstance(original, bytes):
        try:
            text, encoding = original.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(original).decode("ascii"), "base64"
    else:
        text, encoding = original or "", "utf-8"
    return orjson.dumps(
        {
            "reason": reason,
            "error": error,
            "original": text,
            "original_encoding": encoding,
            "origin": dict(origin),
            "time": now_ms,
        }
    ).decode()
