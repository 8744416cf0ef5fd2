"""One neuron at a time: the baseline the configuration planner is compared with (issue 5).

Every hidden neuron gets a configuration of its own: a path of +7 weights from
one input channel through one neuron per layer to its source and on to it. MON
reads the source and the neuron at a few drive levels; the slope of one against
the other is the neuron's gain through that one synapse (a+ times that
synapse's mirror gain, over the nominal 7/12).

Every neuron that drives signed synapses (all layers but the last) gets one
more configuration for a-/a+: a target neuron of the next layer fed at +7 by a
steady helper neuron and at -7 by the probed one, each on a path of its own, the
probed neuron's channel stepped while the helper's is held. The slope of the
target's MON against the probed neuron's, over the target's own unit response
(from its a+ configuration), is a-/a+ through that one negative synapse.

Layer-0 gains come from the same EXT_IN sweep the planner uses. The recorded
readings go to an HDF5 file like any characterisation's; the fit is this
module's own (slopes of MON against MON), as a lab would do it by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.analysis import ext_gains
from labctl.families.cmna.characterisation.configurations import UNIT_CODE, zero_codes
from labctl.families.cmna.characterisation.probing import ProbeSettings, Prober
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB, DieParameters, LayerGains
from labctl.families.cmna.storage import MON_DTYPE, CharacterisationFile

HELPER_SHARE = (0.0, 0.15, 0.3, 0.45)
"""Probed neuron's drive against the helper's in an a-/a+ configuration: the target stays on."""


def characterise_serially(bench: Bench, out: Path) -> tuple[DieParameters, int]:
    """Measure every neuron one at a time on ``bench``; returns the gains and the configurations used."""
    chip = bench.chip
    settings = ProbeSettings.for_geometry(chip.layer_sizes)
    store = CharacterisationFile.create(out, chip, bench.config.text, {"method": "serial"})
    try:
        bench.set_nplc(settings.nplc)
        bench.power_up()
        bench.bridge.reset()
        serial = _Serial(Prober(bench, store, settings))
        serial.prober.ext_in_sweep(0)
        store.mark_done(0, ["ext_sweep"])
        layer0 = ext_gains(chip, store.read_raw())
        unit = [layer0 / np.nanmean(layer0)] + [serial.unit_response(l) for l in range(1, chip.n_layers)]
        ratios = [serial.ratio(m, unit[m + 1]) for m in range(chip.n_layers - 1)]
    finally:
        store.close()
    layers = []
    for l, gain in enumerate(unit):
        a_plus = gain / np.nanmean(gain)
        ratio = ratios[l] if l < len(ratios) else np.full(len(gain), np.nan)
        layers.append(LayerGains(a_plus, np.zeros_like(a_plus), a_plus * ratio, np.zeros_like(a_plus)))
    nominal = DieParameters.nominal(chip)
    return DieParameters(chip, layers, nominal.bias_gain, nominal.bias_offset_a, nominal.c2f_gain_hz_per_a,
                         nominal.c2f_dark_hz, notes={"source": "serial"}), serial.config_id


class _Serial:
    def __init__(self, prober: Prober) -> None:
        self.prober = prober
        self.chip = prober.chip
        self.config_id = 1
        self.top_code = int(prober.settings.target_soma_input_a / (1.2 * self.chip.dac_lsb_a))
        self.levels = prober.settings.levels

    def unit_response(self, layer: int) -> np.ndarray:
        """MON of each neuron of ``layer`` per MON of its source, over 7/12, one configuration each."""
        out = np.full(self.chip.layer_sizes[layer], np.nan)
        for j in range(len(out)):
            path = _path(self.chip.layer_sizes, layer, j)
            codes = _path_codes(self.chip, path)
            drives = np.linspace(self.top_code / self.levels, self.top_code, self.levels).round().astype(int)
            readings = self._run(codes, [{path[0]: d} for d in drives], [(layer - 1, path[-2]), (layer, j)])
            out[j] = np.polyfit(readings[:, 0], readings[:, 1], 1)[0] / (UNIT_CODE * NOMINAL_W_LSB)
        return out

    def ratio(self, m: int, target_unit: np.ndarray) -> np.ndarray:
        """a-/a+ of each neuron of layer ``m``: its -7 synapse into a target held on by a +7 helper."""
        sizes = self.chip.layer_sizes
        out = np.full(sizes[m], np.nan)
        for i in range(sizes[m]):
            helper, target = (i + 1) % sizes[m], i % sizes[m + 1]
            probed_path, helper_path = _path(sizes, m, i), _path(sizes, m, helper, offset=1)
            codes = [np.maximum(a, b) for a, b in zip(_path_codes(self.chip, probed_path),
                                                      _path_codes(self.chip, helper_path))]
            codes[m][helper, target] = UNIT_CODE
            codes[m][i, target] = -UNIT_CODE
            steps = [{helper_path[0]: self.top_code, probed_path[0]: int(round(share * self.top_code))}
                     for share in HELPER_SHARE]
            readings = self._run(codes, steps, [(m, i), (m + 1, target)])
            response = np.polyfit(readings[:, 0], readings[:, 1], 1)[0]
            out[i] = -response / (target_unit[target] * UNIT_CODE * NOMINAL_W_LSB)
        return out

    def _run(self, codes: list[np.ndarray], steps: list[dict[int, int]], nodes: list[tuple[int, int]]) -> np.ndarray:
        """Program ``codes``, set each step's channel codes, read MON of ``nodes``; (steps, nodes) readings."""
        p = self.prober
        held = p.program(codes)
        p.store.append_config(self.config_id, "serial", {}, held)
        table = np.zeros((len(steps), len(nodes)))
        rows = []
        for level, step in enumerate(steps):
            inputs = np.zeros(self.chip.n_inputs, int)
            for channel, code in step.items():
                inputs[channel] = code
            p.bridge.set_inputs(inputs.tolist())
            for k, (layer, neuron) in enumerate(nodes):
                p.bridge.set_monitor(layer, neuron)
                table[level, k] = p.bench.read_mon()
                rows.append((0.0, self.config_id, level, layer, neuron, float(max(step.values())), 0.0, table[level, k]))
        p.bridge.set_inputs([0] * self.chip.n_inputs)
        p.store.append_mon(np.array(rows, MON_DTYPE))
        p.store.mark_done(self.config_id, ["serial", self.config_id])
        self.config_id += 1
        return table


def _path(sizes: tuple[int, ...], layer: int, neuron: int, offset: int = 0) -> list[int]:
    """One neuron per layer from an input channel up to ``neuron`` of ``layer``."""
    return [(neuron + offset) % n for n in sizes[:layer]] + [neuron]


def _path_codes(chip, path: list[int]) -> list[np.ndarray]:
    codes = zero_codes(chip)
    for m in range(len(path) - 1):
        codes[m][path[m], path[m + 1]] = UNIT_CODE
    return codes
