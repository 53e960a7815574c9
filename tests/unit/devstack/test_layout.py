"""The tooling's arrows: the CLI sits on top; the stack, the jobs wrapper and bench below it."""

from __future__ import annotations

from tests.unit.test_boundaries import ROOT, imports_of, offenders


def test_only_the_cli_imports_the_cli() -> None:
    # `bethos bench` imports bench; bench and the rest of the tooling never import the CLI.
    assert offenders("devstack", ("devstack.cli",), skip="cli") == []


def test_the_stack_imports_no_other_tooling() -> None:
    others = ("devstack.bench", "devstack.generate", "devstack.verify", "devstack.ground_truth")
    assert offenders("devstack/stack", others) == []


def test_the_ground_truth_does_not_read_influxdb_the_way_the_etl_does() -> None:
    # verify must be able to catch a bug in the ETL's reader and parser, so it shares neither.
    etl_reading = ("connectors.influxdb.client", "bethos.fetch_result", "bethos.source")
    found = imports_of(ROOT / "devstack" / "ground_truth.py")
    assert sorted(n for n in found if n.startswith(etl_reading)) == []
