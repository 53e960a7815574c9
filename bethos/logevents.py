"""One line per event: `[component] event=NAME key=value ...` (SPEC section 6)."""

from __future__ import annotations

import logging


def _format_value(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_event(component: str, event: str, **fields: object) -> str:
    parts = [f"[{component}] event={event}"]
    parts.extend(f"{key}={_format_value(value)}" for key, value in fields.items())
    return " ".join(parts)


def log_event(
    logger: logging.Logger, component: str, event: str, level: int = logging.INFO, **fields: object
) -> None:
    logger.log(level, format_event(component, event, **fields))
