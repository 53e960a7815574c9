"""The resource map of the narrow InfluxDB layout: resource tag value -> signal name.

The file named by `resource_map_path` is YAML (`.yaml`, `.yml`) or JSON (`.json`), chosen by its
extension. Its top level is either the mapping itself::

    engine.rpm: rpm
    "0x1A2B": speed          # quote IDs that YAML would read as numbers or booleans

or, to allow several resources to share one signal name, an envelope::

    allow_shared_signals: true
    resources:
      ecu_a.speed: speed
      ecu_b.speed: speed

Rules, checked at load with a ConfigError naming the file and the entry:

- keys and values are non-empty strings (YAML numbers, booleans or nulls are refused rather than
  converted, so `0x1A2B: speed` cannot silently become the resource "6699");
- a signal name has at most MAX_NAME_LENGTH characters, the limit of the record model;
- a resource appears once (a duplicated key is an error, not "last one wins");
- two resources may map to the same signal only with `allow_shared_signals: true`. By default a
  shared target is refused because it is usually a copy-paste mistake; when allowed, the readings
  of both resources become one signal and the merge rule keeps the newest by event time;
- at the top level of the plain form, `allow_shared_signals` is reserved, and `resources` is
  read as the envelope when its value is a mapping (use the envelope to map resources that are
  literally called so);
- an empty file is an error; an explicit empty mapping (`{}`) is accepted, for use with
  `influxdb.unmapped: keep`.

What happens to a resource that is not in the map is the reader's choice (`influxdb.unmapped`):
`signal_for` returns None for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bethos.exceptions import ConfigError
from bethos.record import MAX_NAME_LENGTH

_ENVELOPE_KEYS = frozenset({"resources", "allow_shared_signals"})


@dataclass(frozen=True, slots=True)
class ResourceMap:
    """Resource name -> signal name. Plain data: cheap to pickle into a Flink function."""

    mapping: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    def signal_for(self, resource: str) -> str | None:
        """The signal name of a resource, or None when the map does not know it."""
        return self.mapping.get(resource)

    def __len__(self) -> int:
        return len(self.mapping)


class _DuplicateKeyError(Exception):
    def __init__(self, key: object, where: str) -> None:
        super().__init__(key, where)
        self.key = key
        self.where = where


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated within one mapping."""


def _construct_strict_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise _DuplicateKeyError(key, f"line {key_node.start_mark.line + 1}")
    return loader.construct_mapping(node, deep=True)


_StrictYamlLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_strict_mapping,
)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key, "JSON object")
        result[key] = value
    return result


def _parse(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            return yaml.load(text, Loader=_StrictYamlLoader)  # a SafeLoader subclass
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_json_pairs)
    except _DuplicateKeyError as exc:
        raise ConfigError(
            f"resource map {path}: resource {exc.key!r} appears more than once ({exc.where})"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"resource map {path}: invalid YAML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"resource map {path}: invalid JSON: {exc}") from None
    raise ConfigError(
        f"resource map {path}: unknown extension {path.suffix!r}; use .yaml, .yml or .json"
    )


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def parse_resource_map(doc: Any, source: str) -> ResourceMap:
    """Validate a decoded map document (see the module docstring for the rules)."""
    if doc is None:
        raise ConfigError(f"resource map {source}: the file is empty")
    if not isinstance(doc, dict):
        raise ConfigError(
            f"resource map {source}: the top level must be a mapping of resource to signal name, "
            f"not {type(doc).__name__}"
        )
    allow_shared = False
    entries: dict[Any, Any] = doc
    if isinstance(doc.get("resources"), dict):
        extra = sorted(str(key) for key in doc if key not in _ENVELOPE_KEYS)
        if extra:
            raise ConfigError(
                f"resource map {source}: unknown top-level key(s) {', '.join(extra)}; "
                "next to 'resources' only 'allow_shared_signals' is allowed"
            )
        allow_shared = doc.get("allow_shared_signals", False)
        if not isinstance(allow_shared, bool):
            raise ConfigError(
                f"resource map {source}: allow_shared_signals must be true or false, "
                f"not {_describe(allow_shared)}"
            )
        entries = doc["resources"]
    elif "allow_shared_signals" in doc:
        raise ConfigError(
            f"resource map {source}: allow_shared_signals needs the map itself under 'resources'"
        )
    mapping: dict[str, str] = {}
    owner: dict[str, str] = {}
    for resource, signal in entries.items():
        if not isinstance(resource, str) or not resource:
            raise ConfigError(
                f"resource map {source}: resource {_describe(resource)} must be a non-empty "
                "string (quote it)"
            )
        if not isinstance(signal, str) or not signal:
            raise ConfigError(
                f"resource map {source}: resource {resource!r}: the signal name "
                f"{_describe(signal)} must be a non-empty string"
            )
        if len(signal) > MAX_NAME_LENGTH:
            raise ConfigError(
                f"resource map {source}: resource {resource!r}: the signal name has "
                f"{len(signal)} characters, limit {MAX_NAME_LENGTH}"
            )
        first = owner.setdefault(signal, resource)
        if first != resource and not allow_shared:
            raise ConfigError(
                f"resource map {source}: resources {first!r} and {resource!r} both map to "
                f"signal {signal!r}; set allow_shared_signals: true (with the map under "
                "'resources') if that is intended"
            )
        mapping[resource] = signal
    return ResourceMap(mapping, source)


def load_resource_map(path: str | Path) -> ResourceMap:
    """Read and validate a resource map file; ConfigError names the file and the bad entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read resource map {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"resource map {path}: not UTF-8: {exc.reason}") from None
    return parse_resource_map(_parse(path, text), str(path))
