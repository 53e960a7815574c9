from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from bethos.config import EtlSettings, load_settings, parse_settings
from bethos.exceptions import ConfigError
from bethos.record import MAX_NAME_LENGTH
from bethos.resource_map import (
    ResourceMap,
    load_resource_map,
    parse_resource_map,
)
from bethos.source.layout import resource_map_for

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_map_loads() -> None:
    rmap = load_resource_map(ROOT / "config" / "resource_map.example.yaml")
    assert rmap.signal_for("engine.rpm") == "rpm"
    assert rmap.signal_for("0x0D") == "obd_speed_kmh"
    assert rmap.signal_for("not.there") is None
    assert len(rmap) > 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.yaml", "a.b: speed\nc: rpm\n"),
        ("m.yml", "{a.b: speed, c: rpm}"),
        ("m.json", '{"a.b": "speed", "c": "rpm"}'),
        ("M.JSON", '{"a.b": "speed", "c": "rpm"}'),
    ],
)
def test_yaml_or_json_by_extension(tmp_path: Path, name: str, text: str) -> None:
    rmap = load_resource_map(write(tmp_path, name, text))
    assert rmap.mapping == {"a.b": "speed", "c": "rpm"}
    assert rmap.source.endswith(name)


def test_an_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"m\.txt.*\.yaml, \.yml or \.json"):
        load_resource_map(write(tmp_path, "m.txt", "a: b\n"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read resource map .*nope\.yaml"):
        load_resource_map(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.yaml", "", "the file is empty"),
        ("m.yaml", "- a\n- b\n", "top level must be a mapping.*not list"),
        ("m.yaml", "a: [unclosed\n", "invalid YAML"),
        ("m.json", '{"a": ', "invalid JSON"),
        # YAML would turn these keys into an int and a bool: refused, not converted.
        ("m.yaml", "0x1A: speed\n", r"resource 26 \(int\) must be a non-empty string \(quote it\)"),
        ("m.yaml", "on: speed\n", r"resource True \(bool\)"),
        ("m.yaml", '"": speed\n', r"resource '' \(str\) must be a non-empty string"),
        ("m.yaml", "a: \n", r"resource 'a': the signal name None \(NoneType\)"),
        ("m.yaml", "a: ''\n", r"resource 'a': the signal name '' \(str\)"),
        ("m.yaml", "a: 12\n", r"resource 'a': the signal name 12 \(int\)"),
        ("m.json", '{"a": {"b": "c"}}', r"resource 'a': the signal name .* \(dict\)"),
        ("m.yaml", "a: s\nb: t\na: u\n", r"resource 'a' appears more than once \(line 3\)"),
        ("m.json", '{"a": "s", "a": "t"}', "resource 'a' appears more than once"),
        ("m.yaml", "a: speed\nb: speed\n", "'a' and 'b' both map to signal 'speed'"),
    ],
)
def test_bad_maps_name_the_file_and_the_entry(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_resource_map(path)
    assert str(path) in str(info.value)


def test_a_too_long_signal_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"limit {MAX_NAME_LENGTH}"):
        parse_resource_map({"a": "s" * (MAX_NAME_LENGTH + 1)}, "x.yaml")
    assert parse_resource_map({"a": "s" * MAX_NAME_LENGTH}, "x.yaml").signal_for("a")


def test_shared_signals_only_when_allowed(tmp_path: Path) -> None:
    text = "allow_shared_signals: true\nresources:\n  ecu_a.speed: speed\n  ecu_b.speed: speed\n"
    rmap = load_resource_map(write(tmp_path, "m.yaml", text))
    assert rmap.signal_for("ecu_a.speed") == rmap.signal_for("ecu_b.speed") == "speed"
    # The envelope alone does not allow sharing.
    text = "resources: {a: speed, b: speed}\n"
    with pytest.raises(ConfigError, match="both map to signal 'speed'"):
        load_resource_map(write(tmp_path, "n.yaml", text))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"resources": {"a": "s"}, "other": 1}, "unknown top-level key.*other"),
        ({"resources": {"a": "s"}, "allow_shared_signals": "yes"}, "true or false"),
        ({"allow_shared_signals": True, "a": "s"}, "needs the map itself under 'resources'"),
        ({"resources": {"a": 1}}, r"resource 'a': the signal name 1"),
    ],
)
def test_the_envelope_is_checked(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_resource_map(doc, "x.yaml")


def test_an_explicit_empty_map_is_allowed(tmp_path: Path) -> None:
    assert len(load_resource_map(write(tmp_path, "m.yaml", "{}\n"))) == 0
    assert len(load_resource_map(write(tmp_path, "m.json", "{}"))) == 0


def test_a_map_pickles() -> None:
    rmap = ResourceMap({"a": "b"}, "x.yaml")
    assert pickle.loads(pickle.dumps(rmap)) == rmap


def etl_doc(**influx: object) -> dict[str, object]:
    return {"influxdb": {"pods": ["p"], **influx}}


def test_narrow_layout_settings_defaults_and_required_map() -> None:
    settings = parse_settings(EtlSettings, etl_doc(), "c.yaml", {})
    influx = settings.influxdb
    assert (influx.resource_tag, influx.value_field, influx.unmapped) == (
        "resource",
        "value",
        "drop",
    )
    with pytest.raises(ConfigError, match=r"c\.yaml: resource_map_path: required"):
        parse_settings(EtlSettings, etl_doc(layout="narrow"), "c.yaml", {})
    with pytest.raises(ConfigError, match=r"influxdb\.unmapped"):
        parse_settings(EtlSettings, etl_doc(unmapped="ignore"), "c.yaml", {})
    with pytest.raises(ConfigError, match=r"influxdb\.resource_tag"):
        parse_settings(EtlSettings, etl_doc(resource_tag=""), "c.yaml", {})


def test_resource_map_for_loads_only_for_the_narrow_layout(tmp_path: Path) -> None:
    map_path = write(tmp_path, "m.yaml", "r1: speed\n")
    config = write(
        tmp_path,
        "etl.yaml",
        f"influxdb: {{pods: [p], layout: narrow, unmapped: keep}}\nresource_map_path: {map_path}\n",
    )
    settings = load_settings(EtlSettings, config, environ={})
    rmap = resource_map_for(settings)
    assert rmap is not None and rmap.signal_for("r1") == "speed"
    assert settings.influxdb.unmapped == "keep"
    wide = parse_settings(EtlSettings, etl_doc(), "c.yaml", {})
    assert resource_map_for(wide) is None
