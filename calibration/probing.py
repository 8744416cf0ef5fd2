"""Measurement runs on a bench: what is set, in which order, and what is read.

Probing only measures and records (every reading goes to the HDF5 file the
moment it is taken); :mod:`labctl.calibration.analysis` turns the records into
gains. The runs:

* dark: every soma off, C2F counts with the longest gate: dark rate plus the
  output somas' leakage.
* EXT_IN sweep (direct probing): a known current into each input channel in
  turn, read on MON: layer-0 gains, absolute up to the die-wide MON gain.
* bias sweep: the same DAC code on every input channel, each read on MON: bias
  generator gain and offset per channel.
* reference: a short EXT_IN measurement of a few channels, repeated during a
  long run, to see the die drift (with the temperature from STATUS).
* chain configurations (seed 004, Fig. 6): every neuron fed by one source
  through a unit weight, the chain's inputs at one code, swept over a few
  levels kept inside the linear range; MON reads every neuron on the chain
  (direct method) and the C2F counters read the outputs (network method).

Each run is given its configuration id by the caller, who marks it done in
the file when it has finished, so an interrupted characterisation can resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from labctl.bench import Bench
from labctl.calibration.configurations import ChainConfig, zero_codes
from labctl.die_parameters import NOMINAL_W_LSB
from labctl.hdf5_store import MON_DTYPE, CharacterisationFile, c2f_dtype
from labctl.latch_codes import signed_to_nibbles

Progress = Callable[[str, int, int], None]

PILOT_LEVEL = -1
"""Level index of the pilot readings that choose a chain's drive range (low code: also data)."""
REFERENCE_CHANNELS = 3


@dataclass
class ProbeSettings:
    """How much to measure. Defaults follow the paper: about 10 points per unit."""

    ext_points: int = 10
    bias_points: int = 8
    levels: int = 6
    gate_ms: int = 200
    nplc: float = 1.0
    target_soma_input_a: float = 200e-9
    pilot_code: int = 400
    read_mon: bool = True
    read_c2f: bool = True

    @classmethod
    def for_geometry(cls, layer_sizes: tuple[int, ...]) -> "ProbeSettings":
        """Defaults by die size: few, fast readings per configuration on a large die.

        On a large die the error of a neuron's gain is dominated by which source
        synapses were sampled (synapse mismatch), not by reading noise, so many
        configurations with few short readings beat few long ones (issue 5).
        """
        if sum(layer_sizes) <= 64:
            return cls()
        return cls(levels=4, nplc=0.5, gate_ms=100)

    def reading_s(self) -> float:
        """Bench time of one SMU reading: the integration plus about 1 ms of overhead."""
        return self.nplc / 50.0 + 1e-3


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

    def _mon_row(self, config: int, level: int, layer: int, neuron: int, drive: float, ext_a: float) -> tuple:
        """One MON reading, stamped with the bench time of the last clock reading."""
        self.bridge.set_monitor(layer, neuron)
        current = self.bench.read_mon()
        return (self._bench_time_s, config, level, layer, neuron, drive, ext_a, current)

    def _set_all_inputs(self, code: int) -> None:
        self.bridge.set_inputs([int(code)] * self.chip.n_inputs)

    def drive_chain(self, config: ChainConfig, code: int) -> None:
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
        chip = self.chip
        channels = list(range(chip.n_inputs)) if channels is None else channels
        currents = np.linspace(0.0, s.target_soma_input_a, points or s.ext_points)
        self.store.append_config(config_id, kind, {"currents_a": currents.tolist(), "channels": channels},
                                 self.program(zero_codes(chip)))
        self._set_all_inputs(0)
        for i, ch in enumerate(channels):
            self.bench.route_ext_in(ch)
            self._clock()
            rows = []
            for level, current in enumerate(currents):
                self.bench.set_ext_in(float(current))
                rows.append(self._mon_row(config_id, level, 0, ch, float(current), float(current)))
            self.bench.set_ext_in(0.0)
            self.store.append_mon(np.array(rows, MON_DTYPE))
            if kind == "ext_sweep":
                self.progress("EXT_IN sweep", i + 1, len(channels))
        self.bench.route_ext_in(None)
        if kind == "reference":
            self._c2f_row(config_id, 0, 0.0)  # records the die temperature beside the reference

    def reference(self, config_id: int) -> None:
        """A short, repeatable EXT_IN measurement: the drift monitor of a long run."""
        self.ext_in_sweep(config_id, list(range(min(REFERENCE_CHANNELS, self.chip.n_inputs))), points=3,
                          kind="reference")

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

    def _top_code(self, config_id: int, config: ChainConfig, nodes: list[tuple[int, int]]) -> int:
        """Largest common input code that keeps every soma input below the target.

        A pilot at a low code reads the chain on MON; a soma's input is its
        source's output times the nominal unit weight 7/12 (section 1), so the
        pilot predicts every input at any code (the chain is linear there).
        """
        s = self.settings
        chip = self.chip
        if not s.read_mon:
            # without MON the inputs cannot be seen: stay at a conservative nominal level
            return min(chip.max_dac_code, int(0.6 * s.target_soma_input_a / chip.dac_lsb_a))
        self.drive_chain(config, s.pilot_code)
        self._clock()
        rows = [self._mon_row(config_id, PILOT_LEVEL, l, n, float(s.pilot_code), 0.0) for l, n in nodes]
        self.store.append_mon(np.array(rows, MON_DTYPE))
        mon = {(int(r[3]), int(r[4])): r[7] for r in rows}
        self._set_all_inputs(0)
        worst = s.pilot_code * chip.dac_lsb_a * 1.2  # layer-0 input, with margin for bias gain
        for m, src in enumerate(config.sources):
            for srcn in src:
                if srcn >= 0:
                    worst = max(worst, unit_weight_input(mon.get((m, int(srcn)), 0.0)))
        top = int(s.pilot_code * s.target_soma_input_a / worst)
        return int(np.clip(top, s.pilot_code, chip.max_dac_code))


def chain_nodes(config: ChainConfig) -> list[tuple[int, int]]:
    """Every (layer, neuron) that carries signal in a chain configuration."""
    nodes = set()
    for m, src in enumerate(config.sources):
        for j, s in enumerate(src):
            if s >= 0:
                nodes.add((m, int(s)))
                nodes.add((m + 1, j))
    for m, neg in enumerate(config.negatives):
        for s in neg:
            if s >= 0:
                nodes.add((m, int(s)))
    return sorted(nodes)


def driven_channels(config: ChainConfig) -> np.ndarray:
    """Input channels that feed matrix 0 of a chain (as sources or negative sources)."""
    used = [config.sources[0]] + ([config.negatives[0]] if config.negatives else [])
    channels = np.concatenate(used)
    return np.unique(channels[channels >= 0])


def unit_weight_input(source_output_a: float) -> float:
    """Soma input through one unit-weight synapse from a source sinking ``source_output_a``."""
    return 7 * NOMINAL_W_LSB * source_output_a * 1.15  # 15 % allowance for synapse mismatch
