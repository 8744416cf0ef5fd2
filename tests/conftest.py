"""Shared fixtures: simulated benches on free loopback ports, started in-process."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
