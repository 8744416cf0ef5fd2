"""A simulated printed bench as ``labctl sim serve``, ``labctl sim print`` and tests see it.

It owns the bench (:mod:`.bench`) and knows the sample's companion file (the
PNC-TS layout of 2.4 or the print job of 3.1), which it writes next to the
bench file so that the bench file's relative path resolves (4.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl.families.printed.sim.bench import SimulatedPrintedBench
from labctl.sim.clock import VirtualClock


@dataclass(frozen=True)
class SampleFile:
    """The bench file's ``[sample]`` (4.6) and the text of the layout or job file it names."""

    kind: str
    """"test-structures" or "network"."""
    file_name: str
    text: str
    process: str
    sample_id: str

    def sample_lines(self) -> list[str]:
        key = "layout" if self.kind == "test-structures" else "job"
        return [f'kind = "{self.kind}"', f'{key} = "{self.file_name}"', f'process = "{self.process}"',
                f'id = "{self.sample_id}"']


class ServedPrintedBench:
    """Start, stop, write the bench file, report bench time and save the truth (the simulator interface)."""

    def __init__(self, bench: SimulatedPrintedBench, sample_file: SampleFile, label: str) -> None:
        self.bench = bench
        self.sample = bench.sample
        self.sample_file = sample_file
        self.label = label

    @property
    def clock(self) -> VirtualClock:
        return self.bench.clock

    @property
    def truth(self):
        """The print run (sheet resistances, material): what tests compare a characterisation with."""
        return self.sample.run

    def start(self) -> "ServedPrintedBench":
        self.bench.start()
        return self

    def stop(self) -> None:
        self.bench.stop()

    def __enter__(self) -> "ServedPrintedBench":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_bench_file(self, path: str | Path) -> Path:
        """The bench file (4.6) at ``path`` and the layout or job it names, next to it."""
        path = Path(path)
        self.bench.write_text(path.parent / self.sample_file.file_name, self.sample_file.text)
        text = self.bench.bench_text(self.label, self.sample_file.sample_lines())
        return self.bench.write_text(path, text)

    def bench_seconds(self) -> float:
        """Bench time real hardware would have spent (the virtual clock's accounting)."""
        return self.bench.clock.accounted_s

    def save_truth(self, path: str | Path) -> Path:
        from labctl.families.printed.sim.truth import save_truth

        return save_truth(Path(path), self.sample)
