"""Quick gain estimates from a characterisation file while it is being written (for the live view).

The real fits (:mod:`labctl.families.cmna.characterisation.analysis`) run once the raw phase is
over; the window wants something to show as the readings arrive. Here every
MON line (one neuron, one configuration, several drive levels) gets a
straight-line fit, vectorised over all lines at once:

- EXT_IN sweep lines give layer-0 gains directly (A per A of EXT_IN);
- in a chain configuration (seed 004, Fig. 6) a neuron's slope over its
  column's predicted input is its gain: the input is the family model's column
  sum (:func:`~labctl.families.cmna.training.die_model.nominal_column_input_a`)
  of its sources' slopes through the codes the latches held, every source of
  a fan-in chain included. Each recorded configuration's plan is rebuilt as
  characterisation rebuilds it (:mod:`labctl.families.cmna.characterisation.plans`),
  so the live gain of every deeper neuron is the final analysis' absolute
  gain (``a_plus * scale``), estimated from the readings so far (geometric
  mean over the configurations, as the analysis takes it);
- the residuals of all line fits, relative to the line's largest reading,
  show the readings' noise and any compression.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl.families.cmna.characterisation.plans import dark_held, held_codes, planned_codes
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.storage import RawTables, read_raw
from labctl.families.cmna.training.die_model import nominal_column_input_a

MIN_POINTS = 3


@dataclass
class LiveCharacterisation:
    configurations: int
    mon_readings: int
    c2f_gates: int
    gains: list[np.ndarray]
    """Per layer, per neuron: live gain estimate (NaN where no configuration reached the neuron yet)."""
    residual_pct: np.ndarray
    """Residual of every reading on a fitted line, % of the line's largest reading."""
    residual_current_a: np.ndarray
    residual_layer: np.ndarray


def live_characterisation(path: str | Path, chip: ChipDescription) -> LiveCharacterisation:
    """Estimates from the raw tables of ``path`` as they stand (read with SWMR)."""
    raw = read_raw(path, swmr=True)
    mon, configs = raw.mon, raw.configs
    kinds = {int(r["config"]): _text(r["kind"]) for r in configs}
    gains = [np.full(n, np.nan) for n in chip.layer_sizes]
    empty = np.zeros(0)
    if not len(mon):
        return LiveCharacterisation(len(raw.done), 0, len(raw.c2f), gains, empty, empty, empty.astype(int))
    ext = np.array([kinds.get(int(c), "") in ("ext_sweep", "reference") for c in mon["config"]])
    x = np.where(ext, mon["ext_in_a"], mon["drive"])
    y = mon["current_a"]
    keys = np.stack([mon["config"], mon["layer"], mon["neuron"]], axis=1)
    lines, index = np.unique(keys, axis=0, return_inverse=True)
    index = index.ravel()
    slope, intercept, points = _line_fits(x, y, index, len(lines))
    fitted = points[index] >= MIN_POINTS
    top = np.maximum(np.bincount(index, np.abs(y), len(lines)) / np.maximum(points, 1), 1e-15)
    peak = np.zeros(len(lines))
    np.maximum.at(peak, index, np.abs(y))
    residual = (y - (slope[index] * x + intercept[index])) / np.maximum(peak[index], top[index])

    slopes = {tuple(int(v) for v in key): s for key, s, n in zip(lines, slope, points) if n >= MIN_POINTS}
    samples: list[list[list[float]]] = [[[] for _ in range(n)] for n in chip.layer_sizes]
    for (config, layer, neuron), s in slopes.items():
        if kinds.get(config) == "ext_sweep" and layer == 0:
            samples[0][neuron].append(s)
    _chain_samples(chip, raw, kinds, slopes, {tuple(int(v) for v in key) for key in lines}, samples)
    gains = [np.array([_geometric_mean(v) for v in layer]) for layer in samples]
    return LiveCharacterisation(len(raw.done), len(mon), len(raw.c2f), gains,
                                100.0 * residual[fitted], y[fitted], mon["layer"][fitted].astype(int))


def _chain_samples(chip: ChipDescription, raw: RawTables, kinds: dict[int, str],
                   slopes: dict[tuple[int, int, int], float], seen: set[tuple[int, int, int]],
                   samples: list[list[list[float]]]) -> None:
    """Add every deeper neuron's gain in each chain configuration: its MON slope over the model's
    column input from its sources' MON slopes, through the codes the latches held.

    Rows that were not read carry no signal (undriven input channels); a column waits until every
    source that is being read has its line, and a column holding a negative code on a read row (a
    stuck sign bit mixes a- into it) is left out, as in the analysis.
    """
    dark = dark_held(chip, raw)
    for row, flat in zip(raw.configs, raw.config_codes):
        config = int(row["config"])
        if kinds[config] != "chain":
            continue
        plan = planned_codes(chip, kinds[config], json.loads(row["params"]), dark)
        for m, (planned, held) in enumerate(zip(plan, held_codes(chip, flat))):
            source = np.array([slopes.get((config, m, i), np.nan) for i in range(held.shape[0])])
            fitted = np.isfinite(source)
            pending = np.array([(config, m, i) in seen for i in range(held.shape[0])]) & ~fitted
            column = nominal_column_input_a(np.where(fitted[:, None], held, 0), np.where(fitted, source, 0.0))
            usable = np.any(planned > 0, axis=0) & (column > 0)
            usable &= ~np.any(fitted[:, None] & (held < 0), axis=0) & ~np.any(pending[:, None] & (held > 0), axis=0)
            for j in np.flatnonzero(usable):
                node = slopes.get((config, m + 1, int(j)))
                if node is not None:
                    samples[m + 1][j].append(node / column[j])


def _geometric_mean(values: list[float]) -> float:
    """Geometric mean of the positive values (NaN: none)."""
    good = np.asarray(values, np.float64)
    good = good[good > 0]
    return float(np.exp(np.mean(np.log(good)))) if len(good) else float("nan")


def _line_fits(x: np.ndarray, y: np.ndarray, index: np.ndarray, n: int):
    """Least-squares line per group (closed form): slope, intercept, number of points."""
    count = np.bincount(index, minlength=n).astype(float)
    sx, sy = np.bincount(index, x, n), np.bincount(index, y, n)
    sxx, sxy = np.bincount(index, x * x, n), np.bincount(index, x * y, n)
    det = count * sxx - sx ** 2
    ok = (count >= 2) & (np.abs(det) > 1e-300)
    slope = np.where(ok, (count * sxy - sx * sy) / np.where(ok, det, 1.0), 0.0)
    intercept = np.where(count > 0, (sy - slope * sx) / np.maximum(count, 1), 0.0)
    return slope, intercept, count


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
