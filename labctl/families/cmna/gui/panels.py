"""What only CMNA knows for the GUI shell (``labctl.gui``), named by ``CmnaFamily.gui`` (docs/families.md).

- watching an idle bench: the bench opened without powering anything, STATUS
  (in words, with the die temperature) and the pad readings once per poll;
- the status and identity in a recorded bridge transaction (the live readings
  while a recipe runs);
- the live characterisation estimate (:mod:`labctl.families.cmna.live_view`);
- the confusion matrix of an on-chip evaluation;
- the stage panels: characterisation (gains, residuals) and programming (latch map).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from labctl.drivers.bridge import Transaction
from labctl.drivers.bridge_protocol import Status
from labctl.families.seam import DeviceDescription, DeviceStatus, OnChipOutcome

READINGS = (
    (("supply", "voltage"), "VDD (supply voltage)", "V"),
    (("supply", "current"), "VDD supply current", "A"),
    (("source", "voltage"), "EXT_IN pad voltage", "V"),
    (("monitor", "current"), "MON current (sunk by the die)", "A"),
)
"""The role readings the bench panel shows, as (role, quantity), title and unit (contract section 3)."""
PLOTTED_READING = (("monitor", "current"), "MON current", "A")
"""The reading whose recent history the bench panel plots."""


class _IdleWatch:
    """An open CMNA bench, nothing powered: its die and, per poll, STATUS and the pad readings."""

    def __init__(self, bench) -> None:
        from labctl.families.cmna.family import describe_chip

        self.bench = bench
        self.name = bench.config.name
        self.description = describe_chip(bench.chip)

    def poll(self) -> DeviceStatus:
        status = self.bench.bridge.status()
        for (role, quantity), _, _ in READINGS:
            self.bench.read(role, quantity)  # reported through the watch's on_reading
        return _status(status)


@contextmanager
def watch_bench(bench_file: Path, on_reading: Callable) -> Iterator[_IdleWatch]:
    """Open the bench without powering anything (as ``labctl identify`` does) for the idle poller."""
    from labctl.families.cmna.bench import Bench

    bench = Bench.from_file(bench_file, on_reading=on_reading)
    try:
        bench.open()
        yield _IdleWatch(bench)
    finally:
        bench.disconnect()


def transaction_status(tx: Transaction) -> DeviceStatus | None:
    """A STATUS answer's flags in words and die temperature (contract section 2); None for other transactions."""
    from labctl.families.cmna.protocol import Opcode, parse_status

    if tx.status != Status.OK or tx.op != Opcode.STATUS:
        return None
    return _status(parse_status(tx.response))


def transaction_description(tx: Transaction) -> DeviceDescription | None:
    """The die an IDENTIFY answer names; None for other transactions."""
    from labctl.families.cmna.family import describe_chip
    from labctl.families.cmna.protocol import Opcode, parse_identify

    if tx.status != Status.OK or tx.op != Opcode.IDENTIFY:
        return None
    return describe_chip(parse_identify(tx.response))


def live_estimate(path: Path, description: DeviceDescription):
    """Quick gain estimates from the raw readings of a characterisation file being written."""
    from labctl.families.cmna.chip import ChipDescription
    from labctl.families.cmna.live_view import live_characterisation

    return live_characterisation(path, ChipDescription.from_attrs(dict(description.attrs)))


def confusion_matrix(outcome: OnChipOutcome):
    """The on-chip confusion matrix (true class by predicted class) of an evaluation, None without one."""
    evaluation = getattr(outcome.result, "evaluation", None)
    return None if evaluation is None else evaluation.confusion


def stage_panels() -> list:
    """CMNA's stage panels, in pipeline order (each has ``title``, ``stages``, ``clear``, ``step_done``)."""
    from labctl.families.cmna.gui.characterisation_panel import CharacterisationPanel
    from labctl.families.cmna.gui.programming_panel import ProgrammingPanel

    return [CharacterisationPanel(), ProgrammingPanel()]


def _status(status) -> DeviceStatus:
    from labctl.families.cmna.protocol import StatusFlag, status_words

    return DeviceStatus(status_words(StatusFlag(status.flags)), status.temperature_c)
