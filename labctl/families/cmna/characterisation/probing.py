"""Measurement runs on a bench: what is set, in which order, and what is read.

Probing only measures and records (every reading goes to the HDF5 file the
moment it is taken); :mod:`labctl.families.cmna.characterisation.analysis` turns the records into
gains. The runs:

* dark: every soma off, C2F counts with the longest gate: dark rate plus the
  output somas' leakage.
* EXT_IN sweep (direct probing): a known current into each input channel in
  turn, read on MON: layer-0 gains, absolute up to the die-wide MON gain.
* bias sweep: the same DAC code on every input channel, each read on MON: bias
  generator gain and offset per channel.
* linear range: EXT_IN beyond the linear range on each input channel, and
  (opt-in on a large die) each deeper layer fed through synapses beyond it: the
  runs that compress somas on purpose, to find where each soma's compression
  sets in (:mod:`labctl.families.cmna.characterisation.linear_range`).
* reference: a short EXT_IN measurement of a few channels, repeated during a
  long run, to see the die drift (with the temperature from STATUS).
* chain configurations (seed 004, Fig. 6): every neuron fed by one source
  through a unit weight, the chain's inputs at one code, swept over a few
  levels kept inside the linear range; MON reads every neuron on the chain
  (direct method) and the C2F counters read the outputs (network method).
* negative-weight probes (:mod:`labctl.families.cmna.characterisation.negative_probe`): each
  input channel at its own code per level, negative rows switched on and off.

Each run is given its configuration id by the caller, who marks it done in
the file when it has finished, so an interrupted characterisation can resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.configurations import ChainConfig, zero_codes
from labctl.families.cmna.characterisation.linear_range import LAYER_KNEE_LEVELS, LAYER_KNEE_TOP_A, LINEAR_RANGE_KIND, LayerKnee, layer_knee
from labctl.families.cmna.characterisation.negative_probe import CALIBRATION_LEVELS, NegativeProbe
from labctl.families.cmna import ratings
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB
from labctl.families.cmna.storage import MON_DTYPE, CharacterisationFile, MonReading, c2f_dtype
from labctl.families.cmna.training.die_model import nominal_column_input_a
from labctl.families.cmna.latch_codes import nibbles_to_signed, signed_to_nibbles

Progress = Callable[[str, int, int], None]

PILOT_LEVEL = -1
"""Level index of the pilot readings that choose a chain's drive range (low code: also data)."""
REFERENCE_CHANNELS = 3
KNEE_RANGE_A = (240e-9, 480e-9)
"""EXT_IN currents of the linear-range run: from inside the linear range to well beyond the
contract's onset (about 300 nA), inside the pad's 500 nA rating."""
KNEE_MIN_TOP_A = 350e-9
"""A linear-range run must reach this far beyond the onset to see the knee."""
MON_SAFE_A = 470e-9
"""Largest MON copy the linear-range run plans for (rating 500 nA): planned on the linear gain,
so the compressed soma really sends less."""


@dataclass
class ProbeSettings:
    """How much to measure. Defaults follow the paper: about 10 points per unit."""

    ext_points: int = 10
    bias_points: int = 8
    levels: int = 6
    gate_ms: int = 200
    nplc: float = 1.0
    ext_nplc: float | None = None
    """Integration of the EXT_IN sweep (layer-0 gains rest on it alone); None: ``nplc``."""
    target_soma_input_a: float = ratings.TARGET_SOMA_INPUT_A
    pilot_code: int = 400
    read_mon: bool = True
    read_c2f: bool = True
    fan_in: tuple[int, ...] = ()
    """Positive rows per column and matrix in chain configurations (empty: one, the paper's chain)."""
    neg_fan_in: tuple[int, ...] = ()
    """Negative rows per column and matrix in the negative twins (empty: one)."""
    knee_points: int = 6
    """EXT_IN points above the linear range per input channel (compression onset); 0: none."""
    layer_knees: bool = False
    """Also find the onsets of the deeper layers' somas: one linear-range run per layer, fed through synapses."""
    probe_rounds: tuple[int, ...] = ()
    """Negative-weight probes of each weight matrix (:mod:`..negative_probe`); empty: negative twins instead.
    A fan-in matrix (50 -> 10) has few columns to sample its rows with and gets more."""
    probe_negatives: tuple[int, ...] = ()
    """Switched negative rows per column in a probe, per matrix."""

    @classmethod
    def for_geometry(cls, layer_sizes: tuple[int, ...]) -> "ProbeSettings":
        """Defaults by die size: few, fast readings per configuration on a large die.

        On a large die the error of a neuron's gain is dominated by which source
        synapses were sampled (synapse mismatch), not by reading noise, so many
        configurations with few short readings, each feeding every column from
        several rows at once, beat few long ones (issue 5). The layer-0 gains
        rest on the EXT_IN sweep alone and get a longer integration. The deeper
        layers' linear-range runs cost one configuration each, which the
        40-configuration budget of a large die has no room for: opt-in there.
        """
        if sum(layer_sizes) <= 64:
            return cls(layer_knees=True)
        pairs = list(zip(layer_sizes, layer_sizes[1:]))
        return cls(levels=4, nplc=0.2, ext_nplc=1.0, gate_ms=100, layer_knees=False,
                   fan_in=tuple(5 if rows >= 5 * cols else 4 for rows, cols in pairs),
                   probe_rounds=tuple(6 if cols > 20 else 12 for _, cols in pairs),
                   probe_negatives=(8,) * len(pairs))

    def reading_s(self, nplc: float | None = None) -> float:
        """Bench time of one SMU reading: the integration plus about 1 ms of overhead."""
        return (nplc or self.nplc) / 50.0 + 1e-3


class Prober:
    """Runs probing configurations on an open, powered bench and records every reading."""

    def __init__(self, bench: Bench, store: CharacterisationFile | None, settings: ProbeSettings,
                 progress: Progress | None = None) -> None:
        self.bench = bench
        self.bridge = bench.bridge
        self.chip = bench.chip
        self.store = store
        self.settings = settings
        self.progress = progress or (lambda stage, done, total: None)
        self._bench_time_s = 0.0

    # -- helpers ----------------------------------------------------------

    def program(self, codes: list[np.ndarray]) -> list[np.ndarray]:
        """Write a configuration and return what the latches really hold (stuck bits show here)."""
        held = []
        for m, c in enumerate(codes):
            self.bridge.write_weights(m, signed_to_nibbles(c))
            held.append(self.bridge.read_weights(m))
        return held

    def _clock(self) -> float:
        """Bench time from the bridge's uptime (STATUS): the die's own clock, real or simulated."""
        self._bench_time_s = self.bridge.status().uptime_ms / 1000.0
        return self._bench_time_s

    def _mon_row(self, config: int, level: int, layer: int, neuron: int, drive: float, ext_a: float) -> MonReading:
        """One MON reading, stamped with the bench time of the last clock reading."""
        self.bridge.set_monitor(layer, neuron)
        current = self.bench.read_mon()
        return MonReading(self._bench_time_s, config, level, layer, neuron, drive, ext_a, current)

    def _set_all_inputs(self, code: int) -> None:
        self.bridge.set_inputs([int(code)] * self.chip.n_inputs)

    def drive_chain(self, config: ChainConfig | NegativeProbe | LayerKnee, code: int) -> None:
        """Drive only the input channels the chain uses; the rest stay at 0.

        A stuck latch bit elsewhere in matrix 0 then connects a silent channel
        (leakage only) instead of a driven one, so it does not spoil the column.
        """
        codes = np.zeros(self.chip.n_inputs, dtype=int)
        codes[driven_channels(config)] = int(code)
        self.bridge.set_inputs(codes.tolist())

    def _c2f_row(self, config_id: int, level: int, drive: float, gate_ms: int | None = None) -> None:
        m = self.bridge.measure(gate_ms or self.settings.gate_ms)
        status = self.bridge.status()
        row = np.zeros(1, c2f_dtype(self.chip.n_outputs))
        row[0] = (status.uptime_ms / 1000.0, config_id, level, drive, m.actual_gate_s, status.temperature_c, m.counts)
        self.store.append_c2f(row)

    # -- runs -------------------------------------------------------------

    def dark(self, config_id: int, gates: int = 3) -> None:
        """C2F rates with every soma off (zero weights, zero input): dark rate plus output leakage."""
        chip = self.chip
        self.store.append_config(config_id, "dark", {"gates": gates}, self.program(zero_codes(chip)))
        self.bench.route_ext_in(None)
        self._set_all_inputs(0)
        for level in range(gates):
            self._c2f_row(config_id, level, 0.0, gate_ms=chip.max_gate_ms)

    def ext_in_sweep(self, config_id: int, channels: list[int] | None = None, points: int | None = None,
                     kind: str = "ext_sweep") -> None:
        """Known EXT_IN currents into each input channel in turn, read on MON."""
        s = self.settings
        channels = list(range(self.chip.n_inputs)) if channels is None else channels
        currents = np.linspace(0.0, s.target_soma_input_a, points or s.ext_points)
        self._ext_in_run(config_id, kind, {ch: currents for ch in channels})
        if kind == "reference":
            self._c2f_row(config_id, 0, 0.0)  # records the die temperature beside the reference

    def reference(self, config_id: int) -> None:
        """A short, repeatable EXT_IN measurement: the drift monitor of a long run."""
        self.ext_in_sweep(config_id, list(range(min(REFERENCE_CHANNELS, self.chip.n_inputs))), points=3,
                          kind="reference")

    def linear_range(self, config_id: int, gains: np.ndarray) -> None:
        """EXT_IN currents beyond the linear range on each input channel: where its soma compresses.

        The only run that leaves the linear range, on purpose and on layer 0
        alone (every weight is zero, so nothing downstream sees it). ``gains``
        (MON per A of EXT_IN, from the EXT_IN sweep) keep the MON copy under
        its 500 nA rating; a channel whose gain allows no point well beyond
        the contract's onset is left out (its onset stays unmeasured).
        """
        s = self.settings
        low = KNEE_RANGE_A[0]
        plan = {}
        for ch, gain in enumerate(gains):
            high = min(KNEE_RANGE_A[1], MON_SAFE_A / gain) if gain > 0 else 0.0
            if high >= KNEE_MIN_TOP_A:
                plan[ch] = np.linspace(low, high, s.knee_points)
        self._ext_in_run(config_id, "linear_range", plan)

    def layer_linear_range(self, config_id: int, layer: int) -> None:
        """A deeper layer's somas driven beyond the linear range through synapses: where each compresses.

        One common input code steps every soma of ``layer`` (:func:`layer_knee`).
        A pilot reading of every node predicts each soma input at any code (the
        chain is linear there) and sets the top code: the layer's median soma
        input reaches ``LAYER_KNEE_TOP_A`` while no feeding soma passes the
        planned target. At every level MON reads the feeders of the layer (the
        probed somas' inputs) and each probed soma while its next reading stays
        under ``MON_SAFE_A``: a compressive response is concave, so the line
        through a soma's last two readings bounds its next one from above.
        """
        s = self.settings
        chip = self.chip
        plan = layer_knee(chip, layer)
        held_nibbles = self.program(plan.codes)
        held = LayerKnee(layer, [nibbles_to_signed(h) for h in held_nibbles])
        nodes = chain_nodes(held)  # every node the latches really connect
        feeders = [(l, n) for l, n in nodes if l == layer - 1]
        self.bench.route_ext_in(None)
        pilot, outputs = self._pilot(config_id, plan, nodes)
        top = self._knee_top_code(held, pilot, outputs)
        codes = np.unique(np.linspace(0.2 * top, top, LAYER_KNEE_LEVELS).round().astype(int))
        self.store.append_config(config_id, LINEAR_RANGE_KIND, {"layer": layer, "pilot_code": pilot,
                                                                "codes": codes.tolist()}, held_nibbles)
        history = {n: [(float(pilot), float(outputs[l][n]))] for l, n in nodes if l == layer}
        self.bench.set_nplc(s.ext_nplc or s.nplc)  # a knee is a few per cent of a reading: integrate long
        try:
            for level, code in enumerate(codes):
                self.drive_chain(plan, int(code))
                self._clock()
                rows = [self._mon_row(config_id, level, l, n, float(code), 0.0) for l, n in feeders]
                for n, seen in history.items():
                    if _next_reading_bound(seen, float(code)) <= MON_SAFE_A:
                        rows.append(self._mon_row(config_id, level, layer, n, float(code), 0.0))
                        seen.append((float(code), rows[-1].current_a))
                self.store.append_mon(np.array(rows, MON_DTYPE))
                self.progress(f"linear range, layer {layer}", level + 1, len(codes))
        finally:
            self._set_all_inputs(0)
            self.bench.set_nplc(s.nplc)

    def _knee_top_code(self, held: LayerKnee, pilot: int, outputs: list[np.ndarray]) -> int:
        """Top code of a deeper layer's linear-range run, from its pilot readings (see there)."""
        chip = self.chip
        target = self.settings.target_soma_input_a
        caps = [target / (1.2 * chip.dac_lsb_a), chip.max_dac_code]
        for m in range(held.layer - 1):  # relays and feeders stay inside the target
            inputs = column_inputs(held.codes[m], outputs[m])
            if inputs.max() > 0:
                caps.append(pilot * target / inputs.max())
        probed = column_sums(held.codes[held.layer - 1], outputs[held.layer - 1])
        if np.any(probed > 0):
            caps.append(pilot * LAYER_KNEE_TOP_A / float(np.median(probed[probed > 0])))
        return int(max(pilot, min(caps)))

    def _ext_in_run(self, config_id: int, kind: str, plan: dict[int, np.ndarray]) -> None:
        """Route EXT_IN to each channel of ``plan`` in turn, step its currents, read MON."""
        s = self.settings
        self.store.append_config(config_id, kind, {"currents_a": {str(ch): c.tolist() for ch, c in plan.items()},
                                                   "channels": [int(ch) for ch in plan]},
                                 self.program(zero_codes(self.chip)))
        self._set_all_inputs(0)
        self.bench.set_nplc(s.ext_nplc or s.nplc)
        try:
            for i, (ch, currents) in enumerate(plan.items()):
                self.bench.route_ext_in(int(ch))
                self._clock()
                rows = []
                for level, current in enumerate(currents):
                    self.bench.set_ext_in(float(current))
                    rows.append(self._mon_row(config_id, level, 0, int(ch), float(current), float(current)))
                self.bench.set_ext_in(0.0)
                self.store.append_mon(np.array(rows, MON_DTYPE))
                if kind != "reference":
                    self.progress("EXT_IN sweep" if kind == "ext_sweep" else "linear range", i + 1, len(plan))
        finally:
            self.bench.set_ext_in(0.0)
            self.bench.route_ext_in(None)
            self.bench.set_nplc(s.nplc)

    def bias_sweep(self, config_id: int) -> None:
        """The same DAC code on every channel, each channel read on MON.

        Codes are spaced geometrically: readings are noisy in proportion to
        their size, so low codes pin the offset and high codes the gain.
        """
        s = self.settings
        chip = self.chip
        top = min(chip.max_dac_code, int(s.target_soma_input_a / chip.dac_lsb_a))
        codes = np.unique(np.concatenate([[0], np.geomspace(10, top, s.bias_points - 1)]).round().astype(int))
        self.store.append_config(config_id, "bias_sweep", {"codes": codes.tolist()}, self.program(zero_codes(chip)))
        self.bench.route_ext_in(None)
        for level, code in enumerate(codes):
            self._set_all_inputs(int(code))
            self._clock()
            rows = [self._mon_row(config_id, level, 0, ch, float(code), 0.0) for ch in range(chip.n_inputs)]
            self.store.append_mon(np.array(rows, MON_DTYPE))
            self.progress("bias sweep", level + 1, len(codes))
        self._set_all_inputs(0)

    def chain(self, config_id: int, config: ChainConfig, top_code: int | None = None) -> int:
        """Run one chain configuration over its drive levels; returns the top code used."""
        s = self.settings
        held = self.program(config.codes)
        nodes = chain_nodes(config)
        if top_code is None:
            top_code = self._top_code(config_id, config, nodes)
        # the file keeps what the latches really hold; the analysis compares it with the plan
        self.store.append_config(config_id, config.kind, config.params() | {"top_code": top_code}, held)
        codes = np.unique(np.linspace(top_code / s.levels, top_code, s.levels).round().astype(int))
        for level, code in enumerate(codes):
            self.drive_chain(config, int(code))
            self._clock()
            if s.read_mon:
                rows = [self._mon_row(config_id, level, l, n, float(code), 0.0) for l, n in nodes]
                self.store.append_mon(np.array(rows, MON_DTYPE))
            if s.read_c2f:
                self._c2f_row(config_id, level, float(code))
        self._set_all_inputs(0)
        return top_code

    def negative_probe(self, config_id: int, probe: NegativeProbe) -> None:
        """Run a negative-weight probe: every level sets each channel to its own code; MON reads the
        probed matrix's rows at the calibration levels and its columns at the switched levels."""
        held = self.program(probe.codes)
        nodes = chain_nodes(probe)
        rows = [(l, n) for l, n in nodes if l == probe.matrix]
        columns = [(l, n) for l, n in nodes if l == probe.matrix + 1]
        top = self._top_code(config_id, probe, rows)
        self.store.append_config(config_id, probe.kind, probe.params(top), held)
        for level in range(len(probe.pattern)):
            self.bridge.set_inputs(probe.level_codes(level, top).tolist())
            self._clock()
            read = rows if level < CALIBRATION_LEVELS else columns
            drive = float(probe.pattern[level].max() * top)
            self.store.append_mon(np.array([self._mon_row(config_id, level, l, n, drive, 0.0) for l, n in read],
                                           MON_DTYPE))
        self._set_all_inputs(0)

    def _top_code(self, config_id: int, config: ChainConfig | NegativeProbe, nodes: list[tuple[int, int]]) -> int:
        """Largest common input code that keeps every soma input below the target.

        A pilot at a low code reads the chain on MON; a soma's input is its
        source's output times the nominal unit weight 7/12 (section 1), so the
        pilot predicts every input at any code (the chain is linear there).
        """
        s = self.settings
        chip = self.chip
        if not s.read_mon:
            # without MON the inputs cannot be seen: stay at a conservative nominal level
            return min(chip.max_dac_code, int(0.6 * s.target_soma_input_a / chip.dac_lsb_a),
                       3 * pilot_code(chip, config, s))
        pilot, outputs = self._pilot(config_id, config, nodes)
        worst = max([pilot * chip.dac_lsb_a * 1.2]  # layer-0 input, with margin for bias gain
                    + [float(np.max(column_inputs(c, outputs[m]))) for m, c in enumerate(config.codes)])
        top = int(pilot * s.target_soma_input_a / worst)
        return int(np.clip(top, pilot, chip.max_dac_code))

    def _pilot(self, config_id: int, config: ChainConfig | NegativeProbe | LayerKnee,
               nodes: list[tuple[int, int]]) -> tuple[int, list[np.ndarray]]:
        """Drive ``config`` at its pilot code and read ``nodes`` on MON (recorded at level -1: data like
        any other level); returns the code and, per layer, each neuron's output (0 where not read)."""
        pilot = pilot_code(self.chip, config, self.settings)
        self.drive_chain(config, pilot)
        self._clock()
        rows = [self._mon_row(config_id, PILOT_LEVEL, l, n, float(pilot), 0.0) for l, n in nodes]
        self.store.append_mon(np.array(rows, MON_DTYPE))
        self._set_all_inputs(0)
        outputs = [np.zeros(n) for n in self.chip.layer_sizes]
        for r in rows:
            outputs[r.layer][int(r.neuron)] = r.current_a
        return pilot, outputs


def _next_reading_bound(seen: list[tuple[float, float]], code: float) -> float:
    """Upper bound on a soma's MON reading at ``code`` from its readings so far (code, MON): the line
    through the last two (a concave response stays below it), or through the origin and the only one."""
    c1, y1 = seen[-1]
    if len(seen) < 2 or seen[-2][0] == c1:
        return y1 * code / c1
    c0, y0 = seen[-2]
    return y1 + (y1 - y0) * (code - c1) / (c1 - c0)


def chain_nodes(config: ChainConfig | NegativeProbe | LayerKnee) -> list[tuple[int, int]]:
    """Every (layer, neuron) that carries signal in a chain configuration: the rows with a
    connection (sources, negative sources) and the columns they feed."""
    nodes = set()
    for m, c in enumerate(config.codes):
        nodes.update((m, int(i)) for i in np.flatnonzero(np.any(c != 0, axis=1)))
        nodes.update((m + 1, int(j)) for j in np.flatnonzero(np.any(c != 0, axis=0)))
    return sorted(nodes)


def driven_channels(config: ChainConfig | NegativeProbe | LayerKnee) -> np.ndarray:
    """Input channels that feed matrix 0 of a chain (as sources or negative sources)."""
    return np.flatnonzero(np.any(config.codes[0] != 0, axis=1))


def column_sums(codes: np.ndarray, source_output_a: np.ndarray) -> np.ndarray:
    """Nominal input of each column from its positive connections (negatives only lower it): the
    model's column input (:func:`~labctl.families.cmna.training.die_model.nominal_column_input_a`)."""
    return nominal_column_input_a(codes, source_output_a)


def column_inputs(codes: np.ndarray, source_output_a: np.ndarray) -> np.ndarray:
    """Largest soma input of each column: :func:`column_sums` with a 15 % allowance for synapse mismatch."""
    return column_sums(codes, source_output_a) * 1.15


def pilot_code(chip: ChipDescription, config: ChainConfig | NegativeProbe | LayerKnee, settings: "ProbeSettings") -> int:
    """The pilot's common input code: low enough that even a fan-in chain, whose nominal gain per
    layer is 7 K / 12, stays far inside the linear range with gains well above nominal."""
    gain, worst = 1.0, 1.0
    for c in config.codes:
        gain *= float(np.max(np.maximum(c, 0).sum(axis=0))) * NOMINAL_W_LSB
        worst = max(worst, gain)
    limit = settings.target_soma_input_a / (3.0 * worst * chip.dac_lsb_a)
    return int(max(1, min(settings.pilot_code, limit)))
