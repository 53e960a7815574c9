"""`bethos config check` and `bethos config show`, without any server."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from bethos.config import DEFAULT_BROKERS
from devstack.cli import config
from devstack.cli.main import main
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[3]
SECRETS = {
    "INFLUXDB_TOKEN": "influx-secret",
    "KAFKA_SASL_PASSWORD": "sasl-secret",
    "REDIS_PASSWORD": "redis-secret",
}
SASL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "bethos",
}


def console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=200), out


@pytest.mark.parametrize(
    ("name", "job"),
    [("etl.yaml", "etl"), ("latest_merger.yaml", "latest_merger"), ("state_store.yaml", None)],
)
def test_check_accepts_the_shipped_configs(name: str, job: str | None) -> None:
    path = str(ROOT / "config" / name)
    term, out = console()
    assert config.check(path, None, {}, term) == 0
    line = out.getvalue()
    assert line.startswith(f"ok  {path} (") and line.count("\n") == 1
    if job is not None:
        assert config.job_of(path) == job
    assert "localhost:19091" in line and "(PLAINTEXT)" in line


def test_check_names_the_security_and_never_the_password() -> None:
    path = str(ROOT / "config" / "latest_merger.yaml")
    term, out = console()
    assert config.check(path, None, SECRETS | SASL, term) == 0
    assert "(SASL_SSL, SCRAM-SHA-512 as bethos)" in out.getvalue()
    assert "sasl-secret" not in out.getvalue()
    term, out = console()
    assert config.check(path, None, SASL, term) == 1
    assert (
        "kafka.security.password: required when protocol is SASL_SSL: set the environment "
        "variable KAFKA_SASL_PASSWORD" in out.getvalue()
    )


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("influxdb: {pods: []}\npoll_interval: 0\nlookback: 1h\nmax_window: 10m\n")
    term, out = console()
    assert config.check(str(path), None, {}, term) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{path} (etl): 3 problems"
    assert [line.split(": ")[1] for line in lines[1:]] == [
        "influxdb.pods",
        "poll_interval",
        "lookback",
    ]
    term, out = console(terminal=True)
    assert config.check(str(path), None, {}, term) == 1
    table = out.getvalue()
    assert "influxdb.pods" in table and "at least one pod" in table and "more than 0" in table


def test_check_for_another_job_and_for_a_missing_file(tmp_path: Path) -> None:
    merger = str(ROOT / "config" / "latest_merger.yaml")
    term, out = console()
    assert config.check(merger, "state_store_publisher", {}, term) == 1
    assert "publisher serves 'state_store', not 'log_compacted'" in out.getvalue()
    term, out = console()
    assert config.check(str(tmp_path / "absent.yaml"), None, {}, term) == 1
    assert "cannot read config" in out.getvalue()


def test_check_loads_the_resource_map_of_a_narrow_layout(tmp_path: Path) -> None:
    path = tmp_path / "etl.yaml"
    path.write_text(
        f"influxdb: {{pods: [a], layout: narrow}}\nresource_map_path: {tmp_path / 'none.yaml'}\n"
    )
    term, out = console()
    assert config.check(str(path), None, {}, term) == 1
    assert "resource_map_path: cannot read resource map" in out.getvalue()


def test_check_reads_the_environment_it_is_given(tmp_path: Path) -> None:
    etl = str(ROOT / "config" / "etl.yaml")
    term, out = console()
    assert config.check(etl, None, {"BETHOS_BACKFILL": "many", "KAFKA_BROKER_2": "b:2"}, term)
    text = out.getvalue()
    assert "3 problems" not in text and "2 problems" in text
    assert "backfill: " in text and "(from ${BETHOS_BACKFILL})" in text
    assert "KAFKA_BROKER_1..N must be numbered from 1" in text


@pytest.mark.parametrize("job", sorted(config.JOBS))
def test_show_masks_every_secret(job: str) -> None:
    term, out = console()
    assert config.show(job, None, SECRETS | SASL, "yaml", term) == 0
    text = out.getvalue()
    for secret in SECRETS.values():
        assert secret not in text
    values = yaml.safe_load(text)
    security = values["kafka"]["security"]
    assert security["password"] == "**********"
    assert (security["protocol"], security["username"]) == ("SASL_SSL", "bethos")
    if job == "etl":
        assert values["influxdb"]["password"] == "**********"
        assert values["poll_interval"] == "10s"
    if job == "state_store_publisher":
        assert values["latest_merger"]["state_store"]["password"] == "**********"
    term, out = console()
    assert config.show(job, None, SECRETS | SASL, "json", term) == 0
    assert json.loads(out.getvalue())["kafka"]["security"]["password"] == "**********"


def test_show_the_environment_applied_and_a_bad_file(tmp_path: Path) -> None:
    term, out = console()
    numbered = {"KAFKA_BROKER_1": "a:1", "KAFKA_BROKER_2": "b:2"}
    assert config.show("latest_merger", None, numbered, "json", term) == 0
    assert json.loads(out.getvalue())["kafka"]["brokers"] == "a:1,b:2"
    path = tmp_path / "m.yaml"
    path.write_text("latest_merger: {strategy: fastest}\n")
    term, out = console()
    assert config.show("latest_merger", str(path), {}, "yaml", term) == 1
    assert "unknown strategy 'fastest'" in out.getvalue()


def test_masked_hides_url_passwords_and_secret_keys() -> None:
    values = {"url": "redis://u:pw@h:6379/0", "properties": {"ssl.key.password": "k"}, "n": None}
    assert config.masked(values) == {
        "url": "redis://u:**********@h:6379/0",
        "properties": {"ssl.key.password": "**********"},
        "n": None,
    }


def test_the_verbs_through_main(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", "m:1")  # main() would ask the local stack otherwise
    monkeypatch.setenv("INFLUXDB_PASSWORD", "main-secret")
    assert main(["config", "check", str(ROOT / "config" / "etl.yaml")]) == 0
    assert capsys.readouterr().out.startswith("ok  ")
    bad = tmp_path / "bad.yaml"
    bad.write_text("consumer_group: ''\nconsumer_group: g\nflink: {parallelism: 0}\n")
    assert main(["config", "check", str(bad), "--job", "latest_merger"]) == 1
    assert "2 problems" in capsys.readouterr().out
    assert main(["config", "show", "etl"]) == 0
    shown = capsys.readouterr().out
    assert "m:1" in shown and "main-secret" not in shown and "**********" in shown
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "show", "nope"])
    assert exit_info.value.code == 2


def test_the_local_stacks_brokers_last_one_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stack started with one broker: commands talk to it, and later settings loaded in the
    # same process (a test suite calling main()) see the environment as it was.
    monkeypatch.delenv("KAFKA_BROKERS", raising=False)
    monkeypatch.delenv("KAFKA_BROKER_1", raising=False)
    monkeypatch.setattr(Stack, "bootstrap_servers", lambda self: "localhost:19091")
    assert main(["config", "show", "etl"]) == 0
    assert "brokers: localhost:19091\n" in capsys.readouterr().out
    assert "KAFKA_BROKERS" not in os.environ
    # The default three brokers are the settings' own default: nothing to set.
    monkeypatch.setattr(Stack, "bootstrap_servers", lambda self: DEFAULT_BROKERS)
    assert main(["config", "show", "etl"]) == 0
    assert f"brokers: {DEFAULT_BROKERS}\n" in capsys.readouterr().out
    assert "KAFKA_BROKERS" not in os.environ


def test_check_and_show_give_the_checkpoint_interval_the_job_runs_with(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", "m:1")
    merger = str(ROOT / "config" / "latest_merger.yaml")
    assert main(["config", "check", merger]) == 0
    assert "flush every 2m, checkpoint every 10s," in capsys.readouterr().out
    monkeypatch.setenv("BETHOS_FLUSH_INTERVAL", "30s")
    assert main(["config", "check", merger]) == 0
    assert "flush every 30s, checkpoint every 3s," in capsys.readouterr().out
    assert main(["config", "show", "latest_merger"]) == 0
    assert "  checkpoint_interval: 3s\n" in capsys.readouterr().out
    assert main(["config", "show", "etl"]) == 0
    assert "  checkpoint_interval: 10s\n" in capsys.readouterr().out
