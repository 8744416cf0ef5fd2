"""Replay a recorded session offline against the die's digital twin (issue 7).

``labctl replay RUN_FOLDER`` takes the ``session.h5`` of a run and, without a
bench:

1. re-trains every weight set of the recipe from the recorded
   characterisation with the recorded parameters, and checks that the codes
   are the recorded ones (training is deterministic for a seed);
2. programs and evaluates them on the twin (for CMNA, :mod:`labctl.families.cmna.sim.twin`:
   a simulated die built from the recorded characterisation, answering with
   the recorded serial), and compares the on-chip accuracy and every test
   sample's decision with the recorded ones;
3. walks the recorded bridge transactions and SMU readings in time order,
   keeping track of what the die was set to (latches as read back, DAC codes,
   EXT_IN routing, MON selection), and compares every recorded MON reading,
   MEASURE and RUN_BATCH answer with what the measured model predicts for that
   state: the table says where the chip and its twin differ, in units of the
   expected difference (reading noise, C2F counting statistics, and the
   model's own uncertainty: the fit error of the neuron's gain and the synapse
   mismatch that no per-neuron characterisation sees, contract section 1).
   That comparison is the family's (:mod:`labctl.families.cmna.replay_readings`);
   this module orchestrates.

The work itself is the family's (:attr:`DeviceFamily.replayer`, the session
names the family); this module finds it, and holds the report's types.
"""

from __future__ import annotations

import math
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from labctl import families
from labctl.errors import ConfigError
from labctl.recipes import Stopped, parse_recipe
from labctl.session import RecordedSession, load_session

Progress = Callable[[str, int, int], None]


@dataclass
class WeightsCheck:
    name: str
    same_codes: bool
    differing_codes: int
    total_codes: int


@dataclass
class AccuracyCheck:
    name: str
    n_samples: int
    recorded: float | None
    twin: float
    agreement: float | None
    """Fraction of test samples the twin classified as the chip did."""
    recorded_stuck: int | None
    """What the recorded programming found stuck (CMNA: latch bits, TTFS: synapse cells); None: not recorded."""
    twin_stuck: int


@dataclass
class Comparison:
    """One group of recorded readings against the twin's (any family; the columns of ``labctl replay``'s
    readings table): means, the rms difference relative to the twin's values and in units of the expected
    difference (``sigma``), and the worst reading in those units."""

    quantity: str
    unit: str
    n: int
    recorded: float
    twin: float
    rms_relative: float
    rms_sigma: float
    worst_sigma: float
    worst_at: str

    @classmethod
    def of(cls, quantity: str, unit: str, recorded, twin, sigma, where: list[str],
           scale: float = 1.0) -> "Comparison":
        """The summary of paired values (SI units; ``scale`` converts them to ``unit``): ``sigma`` is each
        pair's expected difference, ``where`` names each pair."""
        rec, tw, sig = (np.ravel(np.asarray(v, dtype=np.float64)) for v in (recorded, twin, sigma))
        z = (rec - tw) / sig
        worst = int(np.argmax(np.abs(z)))
        rms_relative = np.sqrt(np.mean((rec - tw) ** 2) / max(float(np.mean(tw ** 2)), 1e-300))
        return cls(quantity, unit, len(rec), float(rec.mean() * scale), float(tw.mean() * scale),
                   float(rms_relative), float(np.sqrt(np.mean(z ** 2))), float(z[worst]), where[worst])


@dataclass
class ReplayReport:
    session: Path
    serial: str
    recipe: str
    weights: list[WeightsCheck] = field(default_factory=list)
    accuracy: list[AccuracyCheck] = field(default_factory=list)
    sigma_note: str = ""
    """What the readings' sigma is made of, in the family's words (printed under the readings table)."""
    readings: list[Any] = field(default_factory=list)
    """The family's reading comparisons (:class:`Comparison`; CMNA: its own
    :class:`labctl.families.cmna.replay_readings.Comparison`, the same columns)."""

    @property
    def reproduced(self) -> bool:
        return all(w.same_codes for w in self.weights)


def step_windows(session: RecordedSession) -> dict[int, tuple[float, float]]:
    """Step index -> (start, end) time of its run (end inf: a step the recording left open)."""
    return {s.index: (s.start_s, s.end_s if math.isfinite(s.end_s) else math.inf) for s in session.steps}


def replay_session(path: str | Path, *, work_dir: str | Path | None = None, progress: Progress | None = None,
                   stop_event: threading.Event | None = None) -> ReplayReport:
    """Replay a session (run folder or ``session.h5``) against the device's twin; nothing touches a bench."""
    session = load_session(path)
    family = families.named(session.family)
    if not family.replayer:
        raise ConfigError(f"{session.path}: device family {family.name} cannot replay sessions")
    loaded = parse_recipe(session.recipe_text, source=session.path).bound_to(family)

    def tick(stage: str, done: int, total: int) -> None:
        if stop_event is not None and stop_event.is_set():
            raise Stopped("replay stopped by the user")
        if progress:
            progress(stage, done, total)

    replay = families.load_object(family.replayer, f"replayer of family {family.name}")
    with tempfile.TemporaryDirectory(prefix="labctl-replay-") as tmp:
        work = Path(work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        return replay(session, loaded, work, tick)
