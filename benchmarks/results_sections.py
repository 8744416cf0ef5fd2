"""Results files with one section per task, each rewritten by its own benchmark run.

A benchmark run measures one task (Iris or MNIST) and must not lose the other
task's figures, written by an earlier run: each section sits between
``<!-- task:NAME -->`` markers and only that section is replaced.
"""

from __future__ import annotations

import re
from pathlib import Path


def write_task_section(path: Path, head: str, section: str, name: str) -> None:
    """Replace task ``name``'s section of ``path`` (``head`` starts a new file), keeping the other tasks'."""
    text = path.read_text() if path.is_file() else head
    pattern = re.compile(rf"<!-- task:{name} -->.*?<!-- /task:{name} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
