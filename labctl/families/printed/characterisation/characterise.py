"""``labctl characterise`` for a PNC-TS sample: the entry point of the printed process characterisation.

The run (printed-bench.md 6.3 and 7): identification and D-pad proof before
any rail; the resistor structures (no rails); every circuit structure on its
own rail group, forward and back; power-down. Raw rows go into the partial
file as they are read (:mod:`.storage`); a structure whose input pad, rails
or output does not answer is skipped and flagged, never fatal (6.2). Then the
fits (:mod:`.analysis`) and the :class:`ProcessCalibration` are written and
the file takes its final name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl import __version__, files
from labctl.errors import ConfigError
from labctl.families.printed.bench import PrintedBench, StartReport
from labctl.families.printed.characterisation.analysis import ProcessAnalysis, analyse, fit_tables
from labctl.families.printed.characterisation.plan import SweepPlan
from labctl.families.printed.characterisation.storage import ProcessFile
from labctl.families.printed.characterisation.sweeps import measure_resistor_structure, sweep_cell
from labctl.families.printed.characterisation.tables import CONTACT_DTYPE, DONE_DTYPE
from labctl.families.printed.layout import Layout
from labctl.families.printed.process_calibration import ProcessCalibration
from labctl.families.seam import Announce, Progress


@dataclass(frozen=True)
class ProcessOutcome:
    """What one characterisation produced, in SI units (``dw_um`` in um)."""

    path: Path
    process: str
    sample: str
    eps: float
    eps_se: float
    rh_ohm_sq: float
    rh_ohm_sq_se: float
    rl_ohm_sq: float
    rl_ohm_sq_se: float
    dw_um: float
    dw_um_se: float
    structures_fitted: int
    flagged: tuple[tuple[str, str], ...]
    """(structure id, flags) of every structure skipped or flagged."""
    wall_s: float
    host_wait_s: float
    calibration: ProcessCalibration | None
    analysis: ProcessAnalysis

    @property
    def summary(self) -> dict[str, float | int | str]:
        """Figures for the run's summary.json."""
        return {"process": self.process, "sample": self.sample, "eps": self.eps, "eps_se": self.eps_se,
                "rh_ohm_sq": self.rh_ohm_sq, "rl_ohm_sq": self.rl_ohm_sq, "dw_um": self.dw_um,
                "structures_fitted": self.structures_fitted, "flagged": len(self.flagged),
                "wall_s": self.wall_s, "host_wait_s": self.host_wait_s}

    @property
    def summary_lines(self) -> tuple[str, ...]:
        lines = [f"process {self.process}, sample {self.sample}: {self.structures_fitted} of "
                 f"{len(self.analysis.cells)} circuit structures fitted",
                 f"eps {self.eps:.4f} +- {self.eps_se:.4f}; R_s RH {self.rh_ohm_sq:.5g} +- {self.rh_ohm_sq_se:.2g} "
                 f"ohm/sq, RL {self.rl_ohm_sq:.5g} +- {self.rl_ohm_sq_se:.2g} ohm/sq, dW {self.dw_um:+.2f} um",
                 f"wrote {self.path}"]
        lines[2:2] = self._spread_lines()
        lines += [f"flagged {sid}: {why}" for sid, why in self.flagged]
        return tuple(lines)

    def _spread_lines(self) -> list[str]:
        """Which data eps rests on, and each cell kind's spread beyond it (variation module)."""
        est = self.analysis.eps
        sources = ", ".join(f"{name} {e:.3f} +- {se:.3f}" for name, (e, se) in est.by_source.items())
        lines = [f"  eps by source: {sources}" + (f"; left out of eps: {', '.join(est.excluded)} (spreads "
                                                  f"beyond what eps on its designable parts explains)"
                                                  if est.excluded else "")]
        for kind, cell_map in self.analysis.maps.items():
            if cell_map.excess_sd and any(cell_map.excess_sd):
                e1, e2, e3, e4 = cell_map.excess_sd
                lines.append(f"  {kind} spread beyond eps (sd): eta1 {e1 * 1e3:.0f} mV, eta2 {e2 * 1e3:.0f} mV, "
                             f"eta3 {e3 * 1e3:.0f} mV, eta4 {e4:.1%}; the model adds it to every printed {kind}")
        return lines


def characterise_process(bench_file: Path, out: Path, *, progress: Progress | None = None,
                         announce: Announce | None = None, plan: SweepPlan | None = None, force: bool = False,
                         pause=None) -> ProcessOutcome:
    """Characterise the PNC-TS sample on ``bench_file`` into ``out`` (module docstring).

    ``plan``: the reference plan of section 7 unless given (:meth:`SweepPlan.quick`
    trades points for time); ``pause``: the bench's host wait (``time.sleep``;
    a simulator may pass its clock's ``advance``). Every bad input (bench file,
    layout, another process, an existing ``out`` without ``force``) is refused
    before anything is opened.
    """
    out = Path(out)
    files.refuse_existing(out, force=force, what="a process calibration")
    bench = PrintedBench.from_file(bench_file, **({"pause": pause} if pause is not None else {}))
    layout = bench.plan.layout
    if layout is None:
        raise ConfigError(f"{bench.config.where}: sample.kind is {bench.config.sample_kind!r}; characterisation "
                          "needs a test-structure sample (kind = \"test-structures\")")
    plan = plan or SweepPlan.reference()
    report = progress or (lambda stage, done, total: None)
    started = time.monotonic()
    store: ProcessFile | None = None
    try:
        with bench:  # opened: instruments connected, nothing switched yet
            store = ProcessFile.create(out, {"process": layout.process, "sample": bench.config.sample_id,
                                             "layout": layout.layout},
                                       {"bench_file": bench.config.text, "layout_file": layout.text})
            if announce:
                announce(f"characterising {bench.config.sample_id}: {len(layout.cells)} circuit structures, "
                         f"{plan.points_per_structure} points each")
            start = _identify(bench, store, report)
            skipped = _measure(bench, layout, plan, store, start, report)
        report("fit", 0, 1)
        analysis = analyse(layout, store.raw(), start.identification.resistances_ohm, skipped)
        calibration = _calibration(analysis, layout, bench.config.sample_id)
        wall_s = time.monotonic() - started
        path = store.finish(fit_tables(analysis), calibration,
                            {"bench_seconds": wall_s, "host_wait_seconds": bench.waited_s,
                             "eps": analysis.eps.eps, "eps_se": analysis.eps.se,
                             "eps_by_source": {k: list(v) for k, v in analysis.eps.by_source.items()},
                             "eps_excluded_sources": list(analysis.eps.excluded)})
        report("fit", 1, 1)
    except BaseException:
        if store is not None:
            store.abandon()  # the partial file keeps every reading
        raise
    return _outcome(path, layout, bench, analysis, calibration, wall_s)


def _identify(bench: PrintedBench, store: ProcessFile, report: Progress) -> StartReport:
    report("identify", 0, 1)
    start = bench.start()
    ident = start.identification
    store.record_identification({"code": ident.code, "digits": list(ident.digits), "current_a": ident.current_a,
                                 "resistances_ohm": list(ident.resistances_ohm)},
                                [start.shunt_offsets_v[k] for k in range(1, 25)])
    proof = start.drive_proof
    store.append("contact", np.array([(pad, current, pad not in proof.failed)
                                      for pad, current in proof.currents_a.items()], CONTACT_DTYPE))
    report("identify", 1, 1)
    return start


def _measure(bench: PrintedBench, layout: Layout, plan: SweepPlan, store: ProcessFile, start: StartReport,
             report: Progress) -> dict[str, str]:
    """Resistor structures, then every circuit structure; returns id -> flag of those cut short."""
    failed = set(start.drive_proof.failed)
    skipped: dict[str, str] = {}
    chains = [c for c in layout.resistor_structures if c.kind != "ID"]
    for i, chain in enumerate(chains):
        report("resistors", i, len(chains))
        if chain.drive_pad in failed:
            skipped[chain.id] = "no_input"
        else:
            measure_resistor_structure(bench, chain, plan, store.append)
        store.append("done", np.array([(chain.id, skipped.get(chain.id, "measured"))], DONE_DTYPE))
    report("resistors", len(chains), len(chains))
    for i, cell in enumerate(layout.cells):
        report("structures", i, len(layout.cells))
        if cell.input_pad in failed:
            skipped[cell.id] = "no_input"
        else:
            sweep = sweep_cell(bench, cell, plan, store.append)
            if sweep.flag:
                skipped[cell.id] = sweep.flag
        store.append("done", np.array([(cell.id, skipped.get(cell.id, "measured"))], DONE_DTYPE))
    report("structures", len(layout.cells), len(layout.cells))
    return skipped


def _calibration(analysis: ProcessAnalysis, layout: Layout, sample: str) -> ProcessCalibration | None:
    if set(analysis.maps) != {"ACT", "NEG"}:
        return None
    sheet = analysis.sheet
    return ProcessCalibration(
        process=layout.process, sample=sample, eps=analysis.eps.eps, eps_se=analysis.eps.se,
        rh_ohm_sq=sheet.rh_ohm_sq, rl_ohm_sq=sheet.rl_ohm_sq, act=analysis.maps["ACT"], neg=analysis.maps["NEG"],
        rh_ohm_sq_se=sheet.rh_se, rl_ohm_sq_se=sheet.rl_se, dw_um=sheet.dw_um, dw_um_se=sheet.dw_se,
        layout=layout.layout, source="labctl characterise (PNC-TS)",
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), software=f"labctl {__version__}")


def _outcome(path: Path, layout: Layout, bench: PrintedBench, analysis: ProcessAnalysis,
             calibration: ProcessCalibration | None, wall_s: float) -> ProcessOutcome:
    sheet = analysis.sheet
    flagged = tuple((r.cell.id, ",".join(r.flags)) for r in analysis.cells if r.flags)
    return ProcessOutcome(path, layout.process, bench.config.sample_id, analysis.eps.eps, analysis.eps.se,
                          sheet.rh_ohm_sq, sheet.rh_se, sheet.rl_ohm_sq, sheet.rl_se, sheet.dw_um, sheet.dw_se,
                          sum(r.used for r in analysis.cells), flagged, wall_s, bench.waited_s, calibration,
                          analysis)
