"""The state directory's marker and the guard of `bethos down --purge`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devstack import paths
from devstack.cli.main import main
from devstack.stack import Stack, StackError
from devstack.stack import state as state_module
from devstack.stack.state import MARKER, check_purgeable, claim, protected


def test_up_claims_a_new_directory_and_purge_deletes_it(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    claim(state)
    assert (state / MARKER).is_file()
    claim(state)  # again: nothing changes
    (state / "logs").mkdir()
    Stack(state=state).down(progress=lambda line: None, purge=True)
    assert not state.exists()


@pytest.mark.parametrize("made", ["kafka/cluster-id", "flink-conf/config.yaml"])
def test_the_state_of_a_stack_from_before_the_marker_is_claimed(tmp_path: Path, made: str) -> None:
    for sub in ("kafka/broker-1", "logs", "run", "flink-conf", "other"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / made).write_text("")
    claim(tmp_path)
    assert (tmp_path / MARKER).is_file()


def test_an_empty_directory_is_claimed(tmp_path: Path) -> None:
    claim(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [MARKER]


def test_a_directory_holding_other_things_is_not_claimed(tmp_path: Path) -> None:
    for sub in ("run", "logs", "kafka"):
        (tmp_path / sub).mkdir()
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(StackError, match="it holds files but no bethos stack's"):
        claim(tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_purge_refuses_a_directory_without_the_marker_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    (state / "data.csv").write_text("1,2,3")
    monkeypatch.setenv("BETHOS_STATE", str(state))
    assert main(["down", "--purge"]) == 2
    assert f"refusing to delete {state}: it has no {MARKER} file" in capsys.readouterr().err
    assert (state / "data.csv").read_text() == "1,2,3"
    assert main(["down"]) == 0  # without --purge, nothing is deleted either way
    assert (state / "data.csv").exists()


def test_purge_refuses_the_home_directory_even_with_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / MARKER).write_text("")  # placed by mistake, or by a hostile script
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("BETHOS_STATE", str(home))
    assert main(["down", "--purge"]) == 2
    assert "it is or holds the root, the home directory or the project" in capsys.readouterr().err
    assert home.is_dir()
    with pytest.raises(StackError, match="refusing to keep a stack's state in"):
        claim(home)
    monkeypatch.setenv("BETHOS_STATE", str(tmp_path))  # above home: refused too
    assert main(["down", "--purge"]) == 2
    assert home.is_dir()


@pytest.mark.parametrize(
    "directory",
    [
        Path("/"),
        Path.home(),
        paths.PROJECT_ROOT,
        paths.PROJECT_ROOT.parent,
        paths.PROJECT_ROOT / ".",
    ],
)
def test_the_root_home_and_project_are_never_purged(directory: Path) -> None:
    assert protected(directory)
    with pytest.raises(StackError, match="refusing to delete"):
        check_purgeable(directory)


def test_a_state_directory_inside_the_project_may_be_purged(tmp_path: Path) -> None:
    assert not protected(paths.PROJECT_ROOT / ".bethos")
    assert not protected(tmp_path / "state")


def test_a_symbolic_link_to_a_stack_state_is_not_purged(tmp_path: Path) -> None:
    claim(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(StackError, match="symbolic link"):
        check_purgeable(tmp_path / "link")
    assert (tmp_path / "real" / MARKER).exists()


def test_up_refuses_a_nearly_full_disk_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def usage(path: Path) -> shutil._ntuple_diskusage:
        assert path == tmp_path  # the nearest existing directory of the state
        return shutil._ntuple_diskusage(100 * 1024**3, 99 * 1024**3, 1024**3)

    monkeypatch.setattr(state_module.shutil, "disk_usage", usage)
    state = tmp_path / "new" / "state"
    with pytest.raises(StackError, match=r"only 1\.0 GiB free on the disk of .*at least 2 GiB"):
        Stack(state=state).up(progress=lambda line: None)
    assert not state.exists()
