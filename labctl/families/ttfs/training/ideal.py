"""The mapped baseline's network: an ideal TTFS die without the circuit's physics (seed 003, ANN-to-IMC).

The seed's baseline trains in software, blind to the circuit, and maps the
weights onto it afterwards. Its software network here is the die's geometry
with the contract's nominal values (1.4, 1.5, 1.7) and none of 1.6's
physics: ideal current sources (lambda 0, so currents do not change with the
membrane), no coupling, no leakage, exact ladders and column gains, every
neuron alike. Its weights are continuous (one ladder step per unit) and are
rounded to codes only once trained.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from labctl.families.ttfs.die_parameters import MAGNITUDE_BITS, Measured, NeuronLayer, Polarity, TtfsDieParameters

I_LSB_A = 2.00e-9  # 1.4 (T)
C_MIM_F, C_NODE_F, C_ROW_F = 103.3e-15, 4.0e-15, 0.40e-15  # 1.5 (T)
V_REST_V = 1.300  # 1.5 (T)
DELAY_NS = 6.0  # 1.7 (T)


def _nominal(value) -> Measured:
    value = np.asarray(value, dtype=np.float64)
    return Measured(value, np.zeros_like(value))


def ideal_parameters(params: TtfsDieParameters) -> TtfsDieParameters:
    """``params``' geometry, pads and window with the contract's nominal, physics-free circuit."""

    def polarity(pol: Polarity) -> Polarity:
        return replace(pol, i_lsb_a=_nominal(I_LSB_A), bit_weights=_nominal(2.0 ** np.arange(MAGNITUDE_BITS)),
                       lam_per_v=_nominal(0.0), lam_site_sd=0.0, site_lam_per_v=None)

    layers = []
    for m, layer in enumerate(params.layers):
        n = params.layer_sizes[m + 1]
        cap = C_MIM_F + C_NODE_F + C_ROW_F * (params.layer_sizes[m] + 1)
        layers.append(NeuronLayer(
            capacitance_f=_nominal(np.full(n, cap)), start_v=_nominal(np.full(n, V_REST_V)),
            threshold_v=_nominal(np.full(n, params.vth_pad_v)), delay_ns=_nominal(np.full(n, DELAY_NS)),
            column_gain=_nominal(np.ones(n)), leak_a=_nominal(np.zeros(n))))
    return replace(params, v_rest_v=_nominal(V_REST_V), kappa_v=_nominal(0.0), excitatory=polarity(params.excitatory),
                   inhibitory=polarity(params.inhibitory), layers=tuple(layers), write_residual_half_width=0.0)
