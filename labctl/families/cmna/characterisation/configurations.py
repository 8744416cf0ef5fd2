"""Probing configurations: which synapses are set while a measurement runs.

The paper's scheme (seed 004, section 3.3 and Fig. 6): every neuron receives
input from exactly one neuron of the previous layer through a maximum
(unit-sign, magnitude 7) weight, all input channels get the same current, and
permuting the connectivity gives each neuron several different sources, so
synapse mismatch averages out. A *chain* configuration does this for every
weight matrix at once; its *negative* twin adds, for each neuron, a negative
connection from the source of its neighbour, so comparing the two gives the
negative unit weight of that source (a-/a+), as the paper does.

On a large die one source per neuron per configuration samples the synapse
mismatch too slowly (a code-7 synapse scatters by up to 5 %, so 1 % needs 25
sources), and a fan-in matrix such as 50 -> 10 gives each of its rows a
negative connection only every fifth configuration. A *fan-in* chain therefore
feeds every column from ``K`` rows at +7 and (in the twin) ``N`` rows at -3,
drawn at random per configuration: one configuration samples K synapses of
every column and N negative connections of every column. The analysis works
from the codes the latches held, so it needs no other description of the plan.

Pure functions: a configuration is data (signed codes per matrix plus the
source maps the analysis needs), built from the geometry alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labctl.families.cmna.chip import ChipDescription

UNIT_CODE = 7
"""Maximum magnitude: the source connection of every probed neuron."""
NEGATIVE_CODE = 3
"""Magnitude of the negative probe connection: well below 7 so the probed neuron stays on."""


@dataclass
class ChainConfig:
    """One chain configuration: signed codes per matrix and who feeds whom."""

    shifts: tuple[int, ...]
    codes: list[np.ndarray]
    sources: list[np.ndarray]
    """sources[m][j]: the layer-m neuron feeding neuron j of layer m+1 through +7 (-1: none)."""
    negatives: list[np.ndarray] = field(default_factory=list)
    """negatives[m][j]: the layer-m neuron feeding neuron j through -NEGATIVE_CODE (-1: none)."""
    forced: Forced = ()
    fan_in: tuple[int, ...] = ()
    """Positive (+7) rows per column, per matrix; empty: one (the paper's chain)."""
    neg_fan_in: tuple[int, ...] = ()
    """Negative (-3) rows per column in the negative twin, per matrix; empty: one."""

    @property
    def single_paths(self) -> bool:
        """Every neuron has exactly one positive source: output paths are unique (network method)."""
        return all(k <= 1 for k in self.fan_in)

    @property
    def kind(self) -> str:
        return "chain_negative" if self.negatives else "chain"

    def params(self) -> dict:
        return {"shifts": list(self.shifts), "negative_code": NEGATIVE_CODE if self.negatives else 0,
                "forced": [list(f) for f in self.forced], "fan_in": list(self.fan_in),
                "neg_fan_in": list(self.neg_fan_in)}

    def paths(self) -> np.ndarray:
        """(n_outputs, L) node per layer on the path ending at each output (-1 if broken)."""
        n_layers = len(self.sources) + 1
        n_out = len(self.sources[-1])
        out = np.full((n_out, n_layers), -1, dtype=np.int64)
        for k in range(n_out):
            node = k
            out[k, n_layers - 1] = node
            for m in range(n_layers - 2, -1, -1):
                node = int(self.sources[m][node])
                if node < 0:
                    break
                out[k, m] = node
        return out


Forced = tuple[tuple[int, int, int], ...]
"""(matrix, column, row): the column must take that row as its source (see :func:`stuck_sources`)."""


def chain_config(chip: ChipDescription, shifts: tuple[int, ...], with_negatives: bool = False,
                 forced: Forced = (), fan_in: tuple[int, ...] = (), neg_fan_in: tuple[int, ...] = ()) -> ChainConfig:
    """Neuron j of layer m+1 takes neuron (j + shift_m) mod n_m of layer m as its source,
    unless ``forced`` names another row for that column; with ``fan_in`` see :func:`fan_in_config`."""
    if len(shifts) != chip.n_matrices:
        raise ValueError(f"need one shift per weight matrix ({chip.n_matrices})")
    if any(k > 1 for k in fan_in):
        return fan_in_config(chip, shifts, with_negatives, tuple(fan_in), tuple(neg_fan_in) or (1,) * len(fan_in))
    codes, sources, negatives = [], [], []
    for m, shift in enumerate(shifts):
        rows, cols = chip.matrix_shape(m)
        c = np.zeros((rows, cols), np.int8)
        src = (np.arange(cols) + shift) % rows
        for fm, column, row in forced:
            if fm == m:
                src[column] = row
        c[src, np.arange(cols)] = UNIT_CODE
        neg = np.full(cols, -1, dtype=np.int64)
        if with_negatives and cols > 1:
            neg = negative_sources(src, rows, rotation=sum(shifts))
            ok = neg >= 0
            c[neg[ok], np.arange(cols)[ok]] = -NEGATIVE_CODE
        codes.append(c)
        sources.append(src.astype(np.int64))
        negatives.append(neg)
    return ChainConfig(tuple(shifts), codes, sources, negatives if with_negatives else [], tuple(forced))


def config_from_params(chip: ChipDescription, kind: str, params: dict) -> ChainConfig:
    """The plan of a recorded chain configuration, rebuilt from its stored parameters."""
    return chain_config(chip, tuple(params["shifts"]), with_negatives=kind == "chain_negative",
                        forced=tuple(tuple(f) for f in params.get("forced", [])),
                        fan_in=tuple(params.get("fan_in", ())), neg_fan_in=tuple(params.get("neg_fan_in", ())))


def fan_in_config(chip: ChipDescription, shifts: tuple[int, ...], with_negatives: bool,
                  fan_in: tuple[int, ...], neg_fan_in: tuple[int, ...]) -> ChainConfig:
    """Every column of matrix m fed by ``fan_in[m]`` rows at +7 (and ``neg_fan_in[m]`` others at -3).

    Rows are dealt from a random permutation drawn from the shifts, so a
    configuration and its twin agree and a resume redraws the same plan;
    successive configurations give every column fresh rows. ``sources`` keeps
    the first positive row of each column (the check and the pilot use it).
    Stuck latch bits need no rerouting here: the analysis models the codes the
    latches held.
    """
    codes, sources, negatives = [], [], []
    for m, shift in enumerate(shifts):
        rows, cols = chip.matrix_shape(m)
        rng = np.random.default_rng([int(v) for v in shifts] + [m])
        perm = rng.permutation(rows)
        k, n = min(fan_in[m], rows), min(neg_fan_in[m], rows - min(fan_in[m], rows))
        pos = perm[(np.arange(cols)[:, None] * k + np.arange(k)) % rows]
        c = np.zeros((rows, cols), np.int8)
        for j in range(cols):
            c[pos[j], j] = UNIT_CODE
        neg = np.full((cols, max(n, 1)), -1, dtype=np.int64)
        if with_negatives and n:
            start = cols * k
            for j in range(cols):
                pick = [r for r in np.roll(perm, -(start + j * n) % rows) if c[r, j] == 0][:n]
                c[pick, j] = -NEGATIVE_CODE
                neg[j, :len(pick)] = pick
        codes.append(c)
        sources.append(pos[:, 0].astype(np.int64))
        negatives.append(neg[:, 0])
    return ChainConfig(tuple(shifts), codes, sources, negatives if with_negatives else [], (), tuple(fan_in),
                       tuple(neg_fan_in))


def negative_sources(sources: np.ndarray, rows: int, rotation: int) -> np.ndarray:
    """The negative source of each column in a chain's negative twin.

    Rows that are nobody's source are active too (each has a source of its
    own upstream), so where the matrix has such rows they serve as negative
    sources, rotated from configuration to configuration so every soma gets
    its a-/a+ measured (a fan-in matrix such as 50 -> 10 has few source rows).
    In a square chain every row is a source: the neighbouring column's source
    serves, never the column's own.
    """
    cols = len(sources)
    spare = np.setdiff1d(np.arange(rows), sources)
    if len(spare):
        return spare[(np.arange(cols) + rotation * cols) % len(spare)].astype(np.int64)
    neighbour = np.roll(sources, -1)
    return np.where(neighbour != sources, neighbour, -1).astype(np.int64)


def chain_shift_plan(chip: ChipDescription, n_configs: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Shifts for ``n_configs`` chain configurations.

    Matrix 0's shift steps through its rows so every input neuron serves as a
    source; deeper shifts are drawn at random so paths through the network mix
    (the network method needs that to separate layers) while each neuron still
    sees distinct sources.
    """
    rng = np.random.default_rng(seed)
    plan = []
    per_matrix = []
    for m in range(chip.n_matrices):
        rows, _ = chip.matrix_shape(m)
        base = np.arange(n_configs) * max(1, rows // max(n_configs, 1)) if rows >= n_configs else np.arange(n_configs)
        perm = rng.permutation(n_configs) if m > 0 else np.arange(n_configs)
        per_matrix.append((base[perm] % rows).astype(int))
    for k in range(n_configs):
        plan.append(tuple(int(per_matrix[m][k]) for m in range(chip.n_matrices)))
    return plan


def stuck_sources(held_zero: list[np.ndarray]) -> Forced:
    """Columns whose latches cannot hold zero: make the stuck row their source.

    A magnitude bit stuck at 1 in a zero configuration connects its row to the
    column in every configuration. Writing +7 there is consistent with the stuck
    bit, so taking that row as the column's source keeps the column measurable
    instead of spoiling it in every configuration. Read from a configuration
    written as all zeros; columns with more than one such latch stay as they are.
    """
    forced = []
    for m, held in enumerate(held_zero):
        rows, cols = np.nonzero(held > 0)
        for column in np.unique(cols):
            hit = rows[cols == column]
            if len(hit) == 1:
                forced.append((m, int(column), int(hit[0])))
    return tuple(forced)


def zero_codes(chip: ChipDescription) -> list[np.ndarray]:
    return [np.zeros(chip.matrix_shape(m), np.int8) for m in range(chip.n_matrices)]
