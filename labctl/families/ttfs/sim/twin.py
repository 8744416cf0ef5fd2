"""The digital twin of a characterised RC-Spike die: a simulated die built from what was measured.

A TTFS characterisation file holds what the pipeline learned about one die
(:func:`labctl.families.ttfs.storage.read_parameters`); :func:`twin_die` turns
that record into the simulator's hidden truth (:class:`.mismatch.Die`), so the
simulator can stand in for that die offline (``labctl replay``, ``labctl sim
serve --from die.h5``) instead of a die drawn from a seed. What the twin takes
from the measurement, and what it has to assume (contract 1.5 to 1.8, 1.10):

- per neuron, as measured: the membrane capacitance (all of it fixed
  capacitance but the nominal row parasitics, which only matter through their
  voltage dependence), the start level (as the release pedestal below the
  measured V_REST), the threshold (as the comparator offset from the
  characterisation's VTH pad), the spike delay, the leakage (at the
  characterisation's temperature, taken as the ROP's 25 degC) and the column's
  verify gain;
- per polarity, as measured: I_LSB, the ladder's bit weights, the die mean of
  lambda, and the reversal potential's offset from its pad;
- lambda per site: as measured where the characterisation measured every site;
  elsewhere the die mean on every site (the best estimate: drawing the 5 %
  spread would add a mismatch that is not the chip's);
- V_REST, kappa and d_in (every row's input delay; the +-0.25 ns per line is
  not measured) as measured; V_K follows the die temperature (kT/q) as it does
  in the simulator;
- the MON chain's gain and offset as measured (:data:`MON_CHAIN_GAIN`,
  :data:`MON_CHAIN_OFFSET` of the record's extras) where present, else the
  contract's typical 0.990 and +5 mV; the probe buffer's bandwidth nominal
  (15 MHz);
- nominal where nothing is measured: an ideal TDC (no DNL or INL), no
  voltage dependence of the row capacitance, code-0 sites passing 0.1 pA (the
  middle of 1.6's 0 to 0.2 pA);
- stuck cells: none but those given (e.g. what a recorded programming read back
  short of its target, :func:`twin_bench`).

The die's noise (write residual, reset, comparator and edge jitter, the
instruments' readings) is not a measured property; the twin draws its own from
``seed``. The twin answers IDENTIFY with the recorded die's serial, so codes
trained for that die are accepted by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from labctl.errors import DataFileError
from labctl.families.ttfs.die_parameters import Measured, NeuronLayer, Polarity, TtfsDieParameters
from labctl.families.ttfs.sim.bench import SimulatedTtfsBench
from labctl.families.ttfs.sim.mismatch import Die, MatrixSpreads, NeuronSpreads
from labctl.families.ttfs.sim.parts import C_ROW_F, MAX_MAGNITUDE, PARTS, Part
from labctl.families.ttfs.storage import read_parameters

MON_CHAIN_GAIN = "mon_chain_gain"
MON_CHAIN_OFFSET = "mon_chain_offset_v"
NOMINAL_MON_GAIN = 0.990  # 1.10 (T)
NOMINAL_MON_OFFSET_V = 5e-3  # 1.10 (T)
NOMINAL_MON_BANDWIDTH_HZ = 15e6  # 1.10 (T)
NOMINAL_I_ZERO_A = 0.1e-12  # 1.6: a code-0 site with its row on passes at most 0.2 pA (T)

StuckCell = tuple[int, int, int, int]
"""(matrix, row, column, the magnitude the cell can reach)."""


def _value(m: Measured) -> np.ndarray:
    return np.asarray(m.value, dtype=np.float64)


def _neurons(part: Part, layer: int, measured: NeuronLayer, params: TtfsDieParameters) -> NeuronSpreads:
    c_row = np.full(part.layers[layer], C_ROW_F * (part.layers[layer - 1] + 1))
    return NeuronSpreads(
        c_fixed=_value(measured.capacitance_f) - c_row, c_row=c_row,
        offset=_value(measured.threshold_v) - params.vth_pad_v,
        pedestal=float(_value(params.v_rest_v)) - _value(measured.start_v),
        delay_ns=_value(measured.delay_ns), leak=_value(measured.leak_a), gain=_value(measured.column_gain))


def _site_lambda(polarity: Polarity, m: int, shape: tuple[int, int]) -> np.ndarray:
    """Each site's lambda: measured per site, else the measured die mean everywhere."""
    if polarity.site_lam_per_v is not None:
        return _value(polarity.site_lam_per_v[m]).copy()
    return np.full(shape, float(_value(polarity.lam_per_v)))


def _matrix(part: Part, m: int, params: TtfsDieParameters, stuck: list[StuckCell]) -> MatrixSpreads:
    shape = part.matrix_shape(m)
    stuck_max = np.full(shape, MAX_MAGNITUDE, np.int8)
    for matrix, row, column, reach in stuck:
        if matrix == m:
            stuck_max[row, column] = reach
    return MatrixSpreads(
        lambda_n=_site_lambda(params.excitatory, m, shape), lambda_p=_site_lambda(params.inhibitory, m, shape),
        i_zero=np.full(shape, NOMINAL_I_ZERO_A), stuck_max=stuck_max,
        row_delay_ns=np.full(shape[0], params.input_delay_ns))


def _extra(params: TtfsDieParameters, name: str, nominal: float) -> float:
    return float(_value(params.extras[name])) if name in params.extras else nominal


def twin_die(params: TtfsDieParameters, *, seed: int = 0, stuck_cells: Iterable[StuckCell] = ()) -> Die:
    """The hidden truth of a simulated die that behaves as ``params`` measured (module docstring);
    ``stuck_cells`` can reach only the magnitude given."""
    part = PARTS.get(params.part)
    if part is None or tuple(part.layers) != tuple(params.layer_sizes):
        raise DataFileError(f"die {params.serial} is a {params.part} {'-'.join(map(str, params.layer_sizes))}; "
                            f"the simulator knows {', '.join(PARTS)}")
    stuck = list(stuck_cells)
    exc, inh = params.excitatory, params.inhibitory
    return Die(
        part=part, seed=seed, v_rest=float(_value(params.v_rest_v)), kappa=float(_value(params.kappa_v)),
        lambda_n_mean=float(_value(exc.lam_per_v)), lambda_p_mean=float(_value(inh.lam_per_v)),
        e_offsets=(float(_value(exc.reversal_v)) - exc.pad_v, float(_value(inh.reversal_v)) - inh.pad_v),
        i_lsb=(float(_value(exc.i_lsb_a)), float(_value(inh.i_lsb_a))),
        bit_weights=np.stack([_value(exc.bit_weights), _value(inh.bit_weights)]),
        cap_voltage_coeff=0.0, tdc_dnl_ns=np.zeros(4), tdc_inl_ns=0.0,
        mon_gain=_extra(params, MON_CHAIN_GAIN, NOMINAL_MON_GAIN),
        mon_offset=_extra(params, MON_CHAIN_OFFSET, NOMINAL_MON_OFFSET_V),
        mon_bandwidth_hz=NOMINAL_MON_BANDWIDTH_HZ,
        neurons=tuple(_neurons(part, layer, measured, params) for layer, measured in enumerate(params.layers, 1)),
        matrices=tuple(_matrix(part, m, params, stuck) for m in range(part.n_matrices)))


def twin_bench(characterisation: str | Path, *, stuck_cells: Iterable[StuckCell] = (), seed: int = 0,
               realtime: bool = False, served: bool = False, wiring: str = "default") -> SimulatedTtfsBench:
    """A simulated bench whose die is the twin of the characterised one (same serial; ``seed``: its noise
    streams). Not started."""
    params = read_parameters(characterisation)
    return SimulatedTtfsBench(params.part, seed, realtime=realtime, served=served, wiring=wiring,
                              truth=twin_die(params, seed=seed, stuck_cells=stuck_cells), serial=params.serial)
