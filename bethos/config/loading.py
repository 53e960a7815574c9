"""Loading a job's settings: the YAML file read strictly (`read_yaml`), the model built from its
sources (`load_settings`, `parse_settings`), and every error of every stage turned into one
`ConfigError` listing its problems, each with its key path and, when known, its line."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bethos.config.kafka_security import is_sensitive
from bethos.config.models import JobSettings
from bethos.config.sources import _LOAD, KeyPath, YamlDocument, _dotted, _Load
from bethos.exceptions import ConfigError, ConfigProblem
from bethos.sections import RULE_ERROR, UNKNOWN_SECTION, model_at
from bethos.urls import mask_url

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> YamlDocument:
    """Parse a YAML file strictly: a duplicate key is a problem (with its path and line). An
    unreadable file or invalid YAML raises ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8: {exc.reason}", source=source) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = YamlDocument(None)
        if node is not None:
            _index(node, (), document, set())
            document.values = loader.construct_document(node)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            problems=[ConfigProblem("", f"invalid YAML: {what}", line)], source=source
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _index(node: yaml.Node, path: KeyPath, document: YamlDocument, seen: set[int]) -> None:
    """Record the line of every key path and report duplicate keys."""
    if id(node) in seen:
        return
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            here = (*path, key)
            if key in first:
                document.problems.append(
                    ConfigProblem(
                        _dotted(here), f"duplicate key (first at line {first[key]})", line
                    )
                )
            else:
                first[key] = line
                document.lines[here] = line
            _index(value_node, here, document, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, str(index))
            document.lines.setdefault(here, item.start_mark.line + 1)
            _index(item, here, document, seen)


def parse_settings(model: type[M], doc: Any, source: str, environ: Mapping[str, str]) -> M:
    """Settings from a parsed document (`${VAR}` replaced here) and the environment mapping."""
    return _load(model, YamlDocument(doc), source, environ)


def load_settings(model: type[M], path: str | Path, environ: Mapping[str, str] | None = None) -> M:
    """Settings from a YAML file and the environment (`os.environ` unless given)."""
    document = read_yaml(path)
    return _load(model, document, str(path), os.environ if environ is None else environ)


def _load(model: type[M], document: YamlDocument, source: str, environ: Mapping[str, str]) -> M:
    if not issubclass(model, JobSettings):
        raise TypeError(f"{model.__name__} is not a job's settings (JobSettings)")
    if not isinstance(document.values, dict):
        found = "the file is empty" if document.values is None else type(document.values).__name__
        raise ConfigError(
            problems=[
                *document.problems,
                ConfigProblem("", f"the top level must be a mapping of keys (found {found})"),
            ],
            source=source,
        )
    load = _Load(document, environ)
    token = _LOAD.set(load)
    errors: list[Any] = []
    settings = None
    try:
        settings = model()
    except ValidationError as exc:
        errors = exc.errors()
    finally:
        _LOAD.reset(token)
    problems = [*document.problems, *load.problems]
    for error in errors:
        problem = _problem(model, error, load)
        if problem is not None:
            problems.append(problem)
    if problems or settings is None:
        # In the file's order; problems of the environment (no line) last.
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems=problems, source=source)
    return settings


def _problem(model: type[BaseModel], error: Any, load: _Load) -> ConfigProblem | None:
    """The problem of a pydantic error; None when a source reported it already."""
    loc = [str(part) for part in error["loc"]]
    if any(tuple(loc[: len(unset)]) == unset for unset in load.unset):
        return None
    kind, value = error["type"], error["input"]
    secret = bool(loc) and is_sensitive(loc[-1])
    if kind == UNKNOWN_SECTION:  # e.g. `latest_merger.strategy` names no strategy
        loc.append(error["ctx"]["key"])
        message = error["msg"]
    elif kind == "extra_forbidden":
        message = "unknown key" + _did_you_mean(model, error["loc"], load.document.values)
    elif kind == "missing":
        message = "required"
    else:
        message = error["msg"].removeprefix("Value error, ")
        shown: object = mask_url(value) if isinstance(value, str) else value
        if not isinstance(shown, str | int | float | bool):
            shown = None
        said = repr(shown) in message
        if kind != RULE_ERROR and shown is not None and not secret and not said:
            message += f" (got {shown!r})"
    path = tuple(loc)
    origin = load.origins.get(path)
    if origin is not None and kind not in ("extra_forbidden", RULE_ERROR):
        message += f" (from {origin})"
    # A value from an environment variable has no line in the file.
    from_variable = origin is not None and not origin.startswith("${")
    return ConfigProblem(_dotted(path), message, None if from_variable else load.line_of(path))


def _did_you_mean(model: type[BaseModel], loc: tuple[Any, ...], values: Any) -> str:
    """A close key of the section that holds an unknown key, if there is one."""
    section = model_at(model, loc[:-1], values)
    close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields) if section else [])
    return f" (did you mean {close[0]!r}?)" if close else ""
