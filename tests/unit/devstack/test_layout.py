"""The tooling's arrows: the CLI sits on top; the stack, the jobs wrapper and bench below it."""

from __future__ import annotations

from tests.unit.test_boundaries import offenders


def test_only_the_cli_imports_the_cli() -> None:
    # `bethos bench` imports bench; bench and the rest of the tooling never import the CLI.
    assert offenders("devstack", ("devstack.cli",), skip="cli") == []


def test_the_stack_imports_no_other_tooling() -> None:
    others = ("devstack.bench", "devstack.generate", "devstack.verify", "devstack.ground_truth")
    assert offenders("devstack/stack", others) == []
