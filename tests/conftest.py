"""Shared fixtures: simulated benches on free loopback ports, started in-process."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Pre-trained networks (labctl.families.cmna.training.population) go to a cache shared by the whole session (and its
# subprocesses), never the user's: the first test that fine-tunes Iris pays the pre-training once.
_CACHE = tempfile.mkdtemp(prefix="labctl-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
# Bench locks (labctl.bench_lock) of the session's simulated benches go to a folder of its own, removed at
# the end, so the tests leave no lock files behind and never meet another session's.
_LOCKS = tempfile.mkdtemp(prefix="labctl-test-locks-")
os.environ["LABCTL_LOCK_DIR"] = _LOCKS


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)
    shutil.rmtree(_LOCKS, ignore_errors=True)


@pytest.fixture
def panels(qtbot, parts) -> dict:
    """A family's GUI stage panels by title (``parts``: the test module's ``FamilyGui``), closed with the test."""
    made = {panel.title: panel for panel in parts.stage_panels()}
    for panel in made.values():
        qtbot.addWidget(panel)
    return made
