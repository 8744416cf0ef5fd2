"""A simulated die's true model parameters, FOR TESTS AND BENCHMARKS ONLY.

The pipeline learns a die's parameters by characterisation; this shortcut
reads them off the hidden truth (:mod:`.mismatch`) so that the model can be
checked against the simulator's physics and training tried before a
characterisation exists. Standard errors are zero. What the record cannot
hold stays out: per-site lambda (the record keeps the die mean and the 5 %
spread), code-0 currents, the row capacitance's voltage dependence and the
per-line row delays (their mean is d_in): the contract's residual (1.6).
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.die_parameters import Measured, NeuronLayer, Polarity, TtfsDieParameters
from labctl.families.ttfs.sim.mismatch import Die
from labctl.families.ttfs.sim.parts import ROP, OperatingPoint


def _exact(value) -> Measured:
    value = np.asarray(value, dtype=np.float64)
    return Measured(value if value.ndim else float(value), np.zeros_like(value) if value.ndim else 0.0)


def _polarity(die: Die, pol: int, pad_v: float, per_site: bool) -> Polarity:
    lam = die.lambda_n_mean if pol == 0 else die.lambda_p_mean
    sites = tuple(_exact(m.lambda_n if pol == 0 else m.lambda_p) for m in die.matrices) if per_site else None
    return Polarity(i_lsb_a=_exact(die.i_lsb[pol]), bit_weights=_exact(die.bit_weights[pol]),
                    lam_per_v=_exact(lam), lam_site_sd=0.05, reversal_v=_exact(pad_v + die.e_offsets[pol]),
                    pad_v=pad_v, site_lam_per_v=sites)


def parameters_of(die: Die, op: OperatingPoint = ROP, *, per_site_lambda: bool = True) -> TtfsDieParameters:
    """The die's true parameters at ``op`` (the rails at the write are taken to be ``op``'s), zero errors.

    ``per_site_lambda=False``: only the die means of lambda, as a characterisation that does not measure
    every site would report (the 5 % spread per site then shows as model error, up to about 2 % of a time)."""
    leak_scale = 2.0 ** ((op.temperature_c - 25.0) / 10.0)
    layers = tuple(
        NeuronLayer(capacitance_f=_exact(n.c_fixed + n.c_row), start_v=_exact(die.v_rest - n.pedestal),
                    threshold_v=_exact(op.vth + n.offset), delay_ns=_exact(n.delay_ns),
                    column_gain=_exact(n.gain), leak_a=_exact(n.leak * leak_scale))
        for n in die.neurons)
    return TtfsDieParameters(
        part=die.part.name, serial=f"{die.part.name}-{die.seed:06d}", layer_sizes=tuple(die.part.layers),
        v_rest_v=_exact(die.v_rest), vth_pad_v=op.vth, v_k_v=_exact(op.v_k), kappa_v=_exact(die.kappa),
        excitatory=_polarity(die, 0, op.e_exc, per_site_lambda),
        inhibitory=_polarity(die, 1, op.e_inh, per_site_lambda), layers=layers,
        input_delay_ns=float(np.mean(die.matrices[0].row_delay_ns)), window_ns=op.window_ns)
