"""Progress bars for long steps (rich), behind the plain callback the pipeline uses.

Pipeline code reports ``progress(stage, done, total)`` and knows nothing of
terminals; the CLI turns that into one bar per stage, the GUI into its own
widgets.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator:
    """Yield a ``progress(stage, done, total)`` callback drawing one bar per stage."""
    if not enabled:
        yield lambda stage, done, total: None
        return
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield report
