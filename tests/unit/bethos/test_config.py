from __future__ import annotations

import re
from pathlib import Path

import pytest

from bethos.config import (
    DEFAULT_BROKERS,
    EtlSettings,
    InfluxSettings,
    MergerSettings,
    brokers_from_env,
    expand_env,
    load_settings,
    parse_settings,
)
from bethos.durations import format_duration_ms, parse_duration_ms
from bethos.exceptions import ConfigError
from bethos.strategies.inline import Inline

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_project_configs_load_with_defaults() -> None:
    etl = load_settings(EtlSettings, ROOT / "config" / "etl.yaml", environ={})
    merger = load_settings(MergerSettings, ROOT / "config" / "latest_merger.yaml", environ={})
    assert etl.poll_interval == 10_000
    assert etl.kafka.brokers == DEFAULT_BROKERS
    assert merger.latest_merger.strategy == "log_compacted"
    assert merger.latest_merger.flush_interval == 120_000
    assert merger.topics.latest == "sensor-service.dispatch.telemetry-latest-compacted"


def test_env_substitution_with_and_without_default() -> None:
    assert expand_env("a ${X} ${Y:dflt} ${Z:}", {"X": "1"}) == "a 1 dflt "
    with pytest.raises(ConfigError, match="MISSING"):
        expand_env("${MISSING}", {})


def test_brokers_from_env_numbered_and_joined() -> None:
    assert brokers_from_env({"KAFKA_BROKERS": "h:1"}) == "h:1"
    assert brokers_from_env({"KAFKA_BROKER_1": "a:1", "KAFKA_BROKER_2": "b:2"}) == "a:1,b:2"
    assert brokers_from_env({}) is None


def test_a_bad_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a]}\npoll_interval: soon\n")
    with pytest.raises(ConfigError, match="poll_interval"):
        load_settings(EtlSettings, path, environ={})
    path = write(tmp_path, "influxdb: {pods: [a], podz: 1}\n")
    with pytest.raises(ConfigError, match=r"influxdb\.podz"):
        load_settings(EtlSettings, path, environ={})


def test_an_unknown_strategy_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "latest_merger: {strategy: fastest}\n")
    with pytest.raises(
        ConfigError, match="'log_compacted', 'inline', 'state_store', 'window_stream'"
    ):
        load_settings(MergerSettings, path, environ={})


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a], password: hunter2}\n")
    with pytest.raises(ConfigError, match="environment"):
        load_settings(EtlSettings, path, environ={})
    path = write(tmp_path, "influxdb: {pods: [a], username: u}\n")
    settings = load_settings(EtlSettings, path, environ={"INFLUXDB_PASSWORD": "hunter2"})
    assert settings.influxdb.password is not None
    assert settings.influxdb.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def test_durations() -> None:
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("10s") == 10_000
    assert parse_duration_ms("2m") == 120_000
    assert parse_duration_ms("1h") == 3_600_000
    assert parse_duration_ms(250) == 250
    for bad in ("ten", "-1s", "1w", True):
        with pytest.raises(ConfigError):
            parse_duration_ms(bad)  # type: ignore[arg-type]


def test_strategy_sections_and_their_checks(tmp_path: Path) -> None:
    store = load_settings(MergerSettings, ROOT / "config" / "state_store.yaml", environ={})
    assert store.latest_merger.strategy == "state_store"
    assert store.latest_merger.state_store.key_prefix == "bethos:latest"
    with_secret = load_settings(
        MergerSettings, ROOT / "config" / "state_store.yaml", environ={"REDIS_PASSWORD": "pw"}
    )
    secret = with_secret.latest_merger.state_store.password
    assert secret is not None and secret.get_secret_value() == "pw"
    assert "pw" not in repr(with_secret)
    path = write(tmp_path, "latest_merger:\n  state_store:\n    password: x\n")
    with pytest.raises(ConfigError, match=re.escape("state_store.password: secrets come only")):
        load_settings(MergerSettings, path, environ={})
    path = write(tmp_path, "latest_merger:\n  strategy: inline\n  inline:\n    sink: file\n")
    with pytest.raises(ConfigError, match=re.escape("inline.path: required")):
        load_settings(MergerSettings, path, environ={})
    path = write(tmp_path, "latest_merger:\n  strategy: inline\n  inline:\n    batch_size: 0\n")
    with pytest.raises(ConfigError, match=re.escape("latest_merger.inline.batch_size")):
        load_settings(MergerSettings, path, environ={})
    path = write(tmp_path, "latest_merger:\n  strategy: window_stream\n  window:\n    size: soon\n")
    with pytest.raises(ConfigError, match=re.escape("latest_merger.window.size")):
        load_settings(MergerSettings, path, environ={})


# -- the sources: environment over file over defaults ---------------------------------------------

SHIPPED = [
    (EtlSettings, "etl.yaml"),
    (MergerSettings, "latest_merger.yaml"),
    (MergerSettings, "state_store.yaml"),
]


@pytest.mark.parametrize(("model", "name"), SHIPPED)
def test_numbered_brokers_work_with_the_shipped_configs(
    model: type[EtlSettings | MergerSettings], name: str
) -> None:
    numbered = {"KAFKA_BROKER_1": "a:1", "KAFKA_BROKER_2": "b:2", "KAFKA_BROKER_3": "c:3"}
    assert load_settings(model, ROOT / "config" / name, numbered).kafka.brokers == "a:1,b:2,c:3"
    both = {**numbered, "KAFKA_BROKERS": "k:9"}
    assert load_settings(model, ROOT / "config" / name, both).kafka.brokers == "k:9"
    assert load_settings(model, ROOT / "config" / name, {}).kafka.brokers == DEFAULT_BROKERS


def test_the_environment_wins_over_the_file_and_keeps_its_other_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kafka:\n  brokers: f:1\n  properties: {client.id: bethos}\ninfluxdb: {pods: [a]}\n",
    )
    assert load_settings(EtlSettings, path, {}).kafka.brokers == "f:1"
    kafka = load_settings(EtlSettings, path, {"KAFKA_BROKER_1": "e:1"}).kafka
    assert kafka.brokers == "e:1"
    assert kafka.properties == {"client.id": "bethos"}


def test_a_gap_in_numbered_brokers_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "consumer_group: g\n")
    with pytest.raises(ConfigError, match=r"KAFKA_BROKER_1\.\.N must be numbered from 1") as info:
        load_settings(MergerSettings, path, {"KAFKA_BROKER_1": "a:1", "KAFKA_BROKER_3": "c:3"})
    assert [p.key for p in info.value.problems] == ["kafka.brokers"]


def test_only_the_mapping_given_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", "os:1")
    monkeypatch.setenv("INFLUXDB_PASSWORD", "from-os")
    monkeypatch.setenv("POLL", "5s")
    path = write(tmp_path, "influxdb: {pods: [a]}\npoll_interval: ${POLL:7s}\n")
    given = load_settings(EtlSettings, path, environ={})
    assert (given.kafka.brokers, given.influxdb.password, given.poll_interval) == (
        DEFAULT_BROKERS,
        None,
        7_000,
    )
    from_os = load_settings(EtlSettings, path)
    assert (from_os.kafka.brokers, from_os.poll_interval) == ("os:1", 5_000)
    # A model built in code reads nothing from outside.
    built = EtlSettings(influxdb=InfluxSettings(pods=["a"]))
    assert (built.kafka.brokers, built.influxdb.password) == (DEFAULT_BROKERS, None)


def test_parse_settings_leaves_its_document_alone() -> None:
    doc = {"influxdb": {"pods": ["a"]}, "topics": {"dlq": "${DLQ:d}"}}
    settings = parse_settings(
        EtlSettings, doc, "c.yaml", {"KAFKA_BROKERS": "h:1", "INFLUXDB_TOKEN": "t"}
    )
    assert (settings.topics.dlq, settings.kafka.brokers) == ("d", "h:1")
    assert doc == {"influxdb": {"pods": ["a"]}, "topics": {"dlq": "${DLQ:d}"}}


def test_secrets_from_the_environment_never_print(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "influxdb: {pods: [a]}\n"
        "kafka: {security: {protocol: SASL_PLAINTEXT, mechanism: PLAIN, username: u}}\n",
    )
    environ = {"KAFKA_SASL_PASSWORD": "sasl-pw", "INFLUXDB_TOKEN": "tok", "INFLUXDB_PASSWORD": "pw"}
    settings = load_settings(EtlSettings, path, environ)
    assert settings.kafka.security.password is not None
    assert settings.kafka.python_client_properties()["sasl.password"] == "sasl-pw"
    password = settings.influxdb.password
    assert password is not None and password.get_secret_value() == "tok"  # the token wins
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "sasl-pw" not in text and "tok" not in text


# -- ${VAR}: replaced after parsing -------------------------------------------------------------


def test_an_environment_value_stays_one_scalar(tmp_path: Path) -> None:
    path = write(tmp_path, 'influxdb:\n  pods: [a]\n  database: "${DB}"\n  username: ${USER}\n')
    injected = "x\n  podz: 1\nstart_at: 5"
    settings = load_settings(EtlSettings, path, {"DB": injected, "USER": "u-${DB}"})
    assert settings.influxdb.database == injected
    assert settings.start_at is None
    assert settings.influxdb.username == "u-${DB}"  # an environment value is not expanded again
    path = write(tmp_path, "flink: {parallelism: '${P}'}\ninfluxdb: {pods: [a]}\n")
    with pytest.raises(ConfigError, match=re.escape("flink.parallelism: ")) as info:
        load_settings(EtlSettings, path, {"P": "{parallelism: 2}"})
    assert "(from ${P})" in str(info.value)


def test_a_variable_in_a_comment_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "# set ${NOT_SET} to change it\ninfluxdb: {pods: [a]}  # ${X}\n")
    assert load_settings(EtlSettings, path, environ={}).influxdb.pods == ["a"]


def test_a_missing_variable_is_reported_once_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a]}\npoll_interval: ${NOPE}\nlookback: ${X:}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(EtlSettings, path, environ={})
    problems = info.value.problems
    assert [(p.key, p.line) for p in problems][:1] == [("poll_interval", 2)]
    assert "NOPE is not set and has no default" in problems[0].message
    # `${X:}` is set to the empty text, which is not a duration: a second, different problem.
    assert [p.key for p in problems] == ["poll_interval", "lookback"]


def test_a_malformed_reference_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a], database: '${DB'}\n")
    with pytest.raises(ConfigError, match=r"influxdb\.database: malformed"):
        load_settings(EtlSettings, path, environ={})


# -- a strict YAML file ---------------------------------------------------------------------------


def test_duplicate_keys_are_rejected_with_their_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb:\n  pods: [a]\n  url: http://x:1\n  pods: [b]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(EtlSettings, path, environ={})
    (problem,) = info.value.problems
    assert (problem.key, problem.line) == ("influxdb.pods", 4)
    assert problem.message == "duplicate key (first at line 2)"
    assert str(info.value) == f"{path}:4: influxdb.pods: duplicate key (first at line 2)"


def test_files_that_are_not_a_mapping_of_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the file is empty"):
        load_settings(MergerSettings, write(tmp_path, "# nothing\n"), environ={})
    with pytest.raises(ConfigError, match=r"top level must be a mapping of keys \(found list\)"):
        load_settings(MergerSettings, write(tmp_path, "- a\n"), environ={})
    with pytest.raises(ConfigError, match=r"c\.yaml:2: invalid YAML") as info:
        load_settings(MergerSettings, write(tmp_path, "a: [1\nb: 2\n"), environ={})
    assert info.value.problems[0].line == 2
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(MergerSettings, tmp_path / "absent.yaml", environ={})


# -- every problem at once --------------------------------------------------------------------


def test_a_file_with_three_problems_lists_three(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "influxdb: {pods: [a, a]}\npoll_interval: 0\nretry_initial_interval: 1m\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(EtlSettings, path, environ={})
    error = info.value
    assert [(p.key, p.line) for p in error.problems] == [
        ("influxdb.pods.1", 1),
        ("poll_interval", 2),
        ("retry_initial_interval", 3),
    ]
    assert len(str(error).splitlines()) == 3
    assert error.source == str(path)


def test_rules_are_checked_even_when_other_keys_fail(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a], podz: 1}\npoll_interval: soon\nlookback: 1h\n")
    with pytest.raises(ConfigError) as info:
        load_settings(EtlSettings, path, environ={})
    keys = [p.key for p in info.value.problems]
    assert keys == ["influxdb.podz", "poll_interval", "lookback"]
    assert "did you mean 'pods'?" in info.value.problems[0].message
    # A rule that reads a key that failed is skipped, not reported with a made-up value.
    path = write(tmp_path, "influxdb: {pods: [a]}\nmax_window: soon\nlookback: 1h\n")
    with pytest.raises(ConfigError) as info:
        load_settings(EtlSettings, path, environ={})
    assert [p.key for p in info.value.problems] == ["max_window"]
    # Inside a strategy too: an unknown key does not hide the broken rules next to it.
    path = write(
        tmp_path,
        "latest_merger:\n  strategy: inline\n  flush_interval: 0\n  inline: {sink: file, x: 1}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(MergerSettings, path, environ={})
    assert [p.key for p in info.value.problems] == [
        "latest_merger.flush_interval",
        "latest_merger.inline.x",
        "latest_merger.inline.path",
    ]


ETL_REJECTED = [
    ("poll_interval: 0", "poll_interval", "must be more than 0"),
    ("chunk_duration: 0s", "chunk_duration", "must be more than 0"),
    ("max_window: 0", "max_window", "must be more than 0"),
    ("retry_initial_interval: 0", "retry_initial_interval", "must be more than 0"),
    ("retry_max_interval: 0ms", "retry_max_interval", "must be more than 0"),
    ("retry_initial_interval: 20s", "retry_initial_interval", "more than retry_max_interval"),
    ("lookback: 11m", "lookback", "is more than max_window (10m)"),
    ("influxdb: {pods: []}", "influxdb.pods", "at least one pod"),
    ("influxdb: {pods: [a, b, a]}", "influxdb.pods.2", "'a' is listed twice"),
    ("influxdb: {pods: [a, ' ']}", "influxdb.pods.1", "cannot be empty"),
    ("influxdb: {pods: [a], timeout: 0}", "influxdb.timeout", "must be more than 0"),
    ("influxdb: {pods: [a], url: localhost}", "influxdb.url", "not an http(s) URL"),
    ("influxdb: {pods: [a], layout: narrow}", "resource_map_path", "required when"),
    ("flink: {checkpoint_interval: 5ms}", "flink.checkpoint_interval", "at least 10ms"),
    ("kafka: {brokers: 'a:1,b'}", "kafka.brokers", "not host:port: 'b'"),
    ("kafka: {properties: {bootstrap.servers: x}}", "kafka.properties.bootstrap.servers", "set by"),
    ("kafka: {properties: {sasl.jaas.config: x}}", "kafka.properties.sasl.jaas.config", "secrets"),
    ("kafka: {security: {password: x}}", "kafka.security.password", "only from the environ"),
    ("kafka: {properties: {sasl.username: u}}", "kafka.properties.sasl.username", "set by"),
    ("kafka: {properties: {ssl.ca.location: f}}", "kafka.properties.ssl.ca.location", "set by"),
    ("kafka: {sasl_password: x}", "kafka.sasl_password", "unknown key"),
    ("kafka: {security: {protocol: SASL}}", "kafka.security.protocol", "SASL_PLAINTEXT"),
    ("kafka: {security: {mechanism: GSSAPI}}", "kafka.security.mechanism", "SCRAM-SHA-512"),
    ("kafka: {security: {username: u}}", "kafka.security.username", "only used with SASL"),
    ("kafka: {security: {ca_file: /x.pem}}", "kafka.security.ca_file", "only used with SSL"),
    ("kafka: {security: {protocol: SSL, ca_file: /no/ca.pem}}", "kafka.security.ca_file", "cannot"),
    ("topics: {dlq: sensor-service.dispatch.telemetry-aggregated}", "topics.dlq", "same topic"),
    ("topics: {latest: 'a b'}", "topics.latest", "not a Kafka topic name"),
    ("backfill: 3651d", "backfill", "duration too long"),
    ("poll_intervall: 10s", "poll_intervall", "unknown key (did you mean 'poll_interval'?)"),
    ("1: x", "1", "unknown key"),
]


@pytest.mark.parametrize(("line", "key", "fragment"), ETL_REJECTED)
def test_etl_settings_that_are_rejected(tmp_path: Path, line: str, key: str, fragment: str) -> None:
    text = line + "\n" if line.startswith("influxdb:") else "influxdb: {pods: [a]}\n" + line + "\n"
    with pytest.raises(ConfigError) as info:
        load_settings(EtlSettings, write(tmp_path, text), environ={})
    assert [p.key for p in info.value.problems] == [key], str(info.value)
    assert fragment in info.value.problems[0].message


MERGER_REJECTED = [
    ("{flush_interval: 0}", "latest_merger.flush_interval", "must be more than 0"),
    ("{vin_ttl: 0s}", "latest_merger.vin_ttl", "must be more than 0"),
    ("{strategy: window_stream, window: {size: 0}}", "latest_merger.window.size", "more than 0"),
    (
        "{strategy: window_stream, window: {idleness: 0}}",
        "latest_merger.window.idleness",
        "more than 0",
    ),
    (
        "{strategy: state_store, state_store: {publish_interval: 0}}",
        "latest_merger.state_store.publish_interval",
        "more than 0",
    ),
    (
        "{strategy: state_store, state_store: {redis_url: 'http://h'}}",
        "latest_merger.state_store.redis_url",
        "not a Redis URL",
    ),
    (
        "{strategy: inline, inline: {sink: kafka, batch_size: 5}}",
        "latest_merger.inline.topic",
        "its key is its delivery bucket (batch-N), not a VIN",
    ),
    (
        "{strategy: inline, inline: {sink: kafka, batch_size: 5, topic: l}}",
        "latest_merger.inline.topic",
        "not topics.latest",
    ),
    (
        "{strategy: inline, inline: {sink: kafka, topic: a}}",
        "latest_merger.inline.topic",
        "feeds them back",
    ),
]


@pytest.mark.parametrize(("section", "key", "fragment"), MERGER_REJECTED)
def test_merger_settings_that_are_rejected(
    tmp_path: Path, section: str, key: str, fragment: str
) -> None:
    text = f"topics: {{aggregated: a, latest: l}}\nlatest_merger: {section}\n"
    with pytest.raises(ConfigError) as info:
        load_settings(MergerSettings, write(tmp_path, text), environ={})
    assert [p.key for p in info.value.problems] == [key], str(info.value)
    assert fragment in info.value.problems[0].message


def test_accepted_edges(tmp_path: Path) -> None:
    text = (
        "influxdb: {pods: [a]}\nlookback: 0s\nmax_window: 30s\nbackfill: 0\n"
        "retry_initial_interval: 10s\nretry_max_interval: 10s\n"
    )
    settings = load_settings(EtlSettings, write(tmp_path, text), environ={})
    assert (settings.lookback, settings.max_window, settings.backfill) == (0, 30_000, 0)
    text = "latest_merger: {strategy: inline, inline: {sink: kafka, batch_size: 5, topic: b}}\n"
    merger = load_settings(MergerSettings, write(tmp_path, text), environ={})
    assert isinstance(merger.latest_merger, Inline) and merger.latest_merger.inline.topic == "b"
    text = "latest_merger: {strategy: inline, inline: {sink: kafka}}\n"  # keyed, one VIN each
    assert load_settings(MergerSettings, write(tmp_path, text), environ={})


def test_a_password_in_a_url_is_refused_and_never_shown(tmp_path: Path) -> None:
    text = "influxdb: {pods: [a], url: 'http://u:hunter2@h:8086'}\n"
    with pytest.raises(ConfigError, match=r"influxdb\.url: holds a password") as info:
        load_settings(EtlSettings, write(tmp_path, text), environ={})
    assert "hunter2" not in str(info.value)
    text = "influxdb: {pods: [a], url: 'ftp://u:hunter2@h'}\n"
    with pytest.raises(ConfigError, match="not an http") as info:
        load_settings(EtlSettings, write(tmp_path, text), environ={})
    assert "hunter2" not in str(info.value)
    path = ROOT / "config" / "state_store.yaml"
    with pytest.raises(ConfigError, match="REDIS_PASSWORD") as info:
        load_settings(MergerSettings, path, {"REDIS_URL": "redis://:hunter2@h:6379/0"})
    assert "hunter2" not in str(info.value)


def test_a_value_from_a_variable_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "consumer_group: g\n")
    with pytest.raises(ConfigError) as info:
        load_settings(MergerSettings, path, {"KAFKA_BROKERS": "nope"})
    (problem,) = info.value.problems
    assert problem.key == "kafka.brokers" and problem.line is None
    assert problem.message.endswith("(from KAFKA_BROKERS)")


def test_durations_print_back() -> None:
    for ms, text in ((0, "0ms"), (500, "500ms"), (10_000, "10s"), (120_000, "2m"), (90_000, "90s")):
        assert format_duration_ms(ms) == text
        assert parse_duration_ms(text) == ms


def test_strategy_error_paths_name_the_strategy_once(tmp_path: Path) -> None:
    text = "latest_merger:\n  strategy: inline\n  inline: {batch_size: 0, sink: file, path: p}\n"
    with pytest.raises(ConfigError) as info:
        load_settings(MergerSettings, write(tmp_path, text), environ={})
    assert [p.key for p in info.value.problems] == ["latest_merger.inline.batch_size"]
    assert "inline.inline" not in str(info.value)


@pytest.mark.parametrize(
    ("merger", "expected_ms"),
    [
        ({"latest_merger": {"flush_interval": "2m"}}, 10_000),
        ({"latest_merger": {"flush_interval": "10s"}}, 2_000),
        ({"latest_merger": {"flush_interval": "30s"}}, 3_000),
        ({"latest_merger": {"flush_interval": "3s"}}, 2_000),
        ({"latest_merger": {"flush_interval": "10s", "delivery": "at_least_once"}}, 10_000),
        (
            {"latest_merger": {"flush_interval": "10s"}, "flink": {"checkpoint_interval": "7s"}},
            7_000,
        ),
        (
            {"latest_merger": {"strategy": "state_store", "flush_interval": "40s"}},
            4_000,
        ),
    ],
)
def test_the_merger_checkpoints_at_a_tenth_of_its_flush_with_exactly_once(
    merger: dict[str, object], expected_ms: int
) -> None:
    settings = parse_settings(MergerSettings, merger, "test", {})
    assert settings.checkpoint_interval_ms == expected_ms


def test_the_shipped_configs_checkpoint_every_10_seconds() -> None:
    etl = load_settings(EtlSettings, ROOT / "config" / "etl.yaml", environ={})
    assert etl.checkpoint_interval_ms == 10_000
    for name in ("latest_merger.yaml", "state_store.yaml"):
        merger = load_settings(MergerSettings, ROOT / "config" / name, environ={})
        assert merger.flink.checkpoint_interval is None
        assert merger.checkpoint_interval_ms == 10_000
    short = load_settings(
        MergerSettings, ROOT / "config" / "latest_merger.yaml", {"BETHOS_FLUSH_INTERVAL": "10s"}
    )
    assert short.checkpoint_interval_ms == 2_000
