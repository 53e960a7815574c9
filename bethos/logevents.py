"""One line per event: `[component] event=NAME key=value ...` (docs/CONTRACT.md, "Log events")."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass


def _format_value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'
    return text


def format_event(component: str, event: str, **fields: object) -> str:
    parts = [f"[{component}] event={event}"]
    parts.extend(f"{key}={_format_value(value)}" for key, value in fields.items())
    return " ".join(parts)


def log_event(
    logger: logging.Logger, component: str, event: str, level: int = logging.INFO, **fields: object
) -> None:
    logger.log(level, format_event(component, event, **fields))


@dataclass(frozen=True)
class Event:
    """A parsed event line; `prefix` is what the logger wrote before it (its timestamp)."""

    component: str
    event: str
    fields: dict[str, str]
    prefix: str


_EVENT = re.compile(r"\[(?P<component>[^\]\s]+)\] event=(?P<event>\S+)(?P<fields>.*)$")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_ESCAPED = re.compile(r"\\(.)")
_UNESCAPE = {"n": "\n", "r": "\r"}


def _parse_value(text: str) -> str:
    if text.startswith('"'):
        return _ESCAPED.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text[1:-1])
    return text


def parse_event(line: str) -> Event | None:
    """The inverse of `format_event`, for a log line that holds one; None otherwise."""
    match = _EVENT.search(line)
    if match is None:
        return None
    fields = {key: _parse_value(value) for key, value in _FIELD.findall(match.group("fields"))}
    return Event(match.group("component"), match.group("event"), fields, line[: match.start()])
