"""What every simulated bridge bench shares: its servers' lifecycle, its bench file, and its served wrapper.

A simulated bench of a bridge family (CMNA, TTFS) is a die behind a loopback
bridge server plus instrument emulators behind loopback instrument servers.
Starting and stopping them, and writing the bench file that names their
addresses (``labctl.bench_file``'s layout: name, family, ``[bridge]``,
``[instruments.*]``, ``[roles]``), are the same for every family; a family's
bench gives only its ``family``, its ``label`` and its ``role_lines``.
:class:`ServedBench` is the object ``labctl sim serve`` and ``labctl demo``
hold (docs/families.md, the simulator's ``start``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from labctl.sim.bridge_server import LoopbackBridgeServer
from labctl.sim.instrument_server import InstrumentServer


class LoopbackBench:
    """Base of a simulated bridge bench: subclasses set the attributes below in ``__init__``."""

    family: str
    bridge_server: LoopbackBridgeServer
    instrument_servers: dict[str, InstrumentServer]
    bridge_timeout_s: float

    @property
    def label(self) -> str:
        """The bench file's ``name`` (e.g. "simulated RCS-S RCS-S-000003")."""
        raise NotImplementedError

    def role_lines(self) -> list[str]:
        """The ``[roles]`` entries, ``role = "instrument:channel"``."""
        raise NotImplementedError

    def start(self) -> Self:
        self.bridge_server.start()
        for server in self.instrument_servers.values():
            server.start()
        return self

    def stop(self) -> None:
        for server in self.instrument_servers.values():
            server.stop()
        self.bridge_server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def bench_text(self) -> str:
        lines = [f'name = "{self.label}"', f'family = "{self.family}"', "",
                 "[bridge]", f'port = "{self.bridge_server.url}"', f"timeout_s = {self.bridge_timeout_s}", ""]
        for name, server in self.instrument_servers.items():
            lines += [f"[instruments.{name}]", f'resource = "{server.resource}"', ""]
        return "\n".join(lines + ["[roles]", *self.role_lines()]) + "\n"

    def write_bench_file(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.bench_text)
        return p


class ServedBench:
    """A simulated bench as the generic commands see it: ``sim`` gives ``bench_seconds`` and ``save_truth``."""

    def __init__(self, sim, label: str) -> None:
        self.sim = sim
        self.label = label

    def start(self) -> Self:
        self.sim.start()
        return self

    def stop(self) -> None:
        self.sim.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_bench_file(self, path: Path) -> Path:
        return self.sim.write_bench_file(path)

    def bench_seconds(self) -> float:
        """Bench time real hardware would have spent (the virtual clock's accounting)."""
        return self.sim.bench_seconds

    def save_truth(self, path: Path) -> None:
        """The device's hidden truth, for tests and benchmarks only."""
        self.sim.save_truth(path)
