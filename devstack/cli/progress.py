"""How the CLI shows long work: a spinner with the running step and its elapsed time, the
finished steps printed above it; a bar where the amount of work is known. Library code only
calls back with text (`Progress`) or counts; rendering lives here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

console = Console()


@contextlib.contextmanager
def steps(indent: str = "") -> Iterator[Callable[[str], None]]:
    """A `Progress` callback: each line becomes the running step; the one before it is
    printed as done."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        current: list[TaskID] = []

        def say(line: str) -> None:
            if current:
                progress.remove_task(current.pop())
            progress.console.print(indent + line, highlight=False)
            current.append(progress.add_task(indent + line.strip(), total=None))

        yield say


def bars(transient: bool = False) -> Progress:
    """A display of bars: what runs, how far, since when."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


@contextlib.contextmanager
def bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """An `(done, total)` callback drawing a bar."""
    with bars(transient=True) as progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance
