"""Between the torch model and the design record: a network's printed values, and a design's network.

Replay, live views and export rebuild the very model training used from a
design (``network_from_design``); training stores the model's nominal printed
values in the design (``design_layers``), including the etas, power
coefficients and port values (output and NEG input resistances, contract
1.3/1.5) the calibration predicts for each cell, so the exporter needs no
calibration to write the SPICE netlist.
"""

from __future__ import annotations

import numpy as np
import torch

from labctl.families.printed.dataset import encode
from labctl.families.printed.design import Design, DesignLayer
from labctl.families.printed.network import PrintedNetwork
from labctl.families.printed.process_calibration import ProcessCalibration, require_process
from labctl.families.printed.process_map import TARGETS


@torch.no_grad()
def design_layers(network: PrintedNetwork) -> tuple[DesignLayer, ...]:
    """The nominal printed values of every layer, as arrays."""
    out = []
    for values in network.printed():
        act = network.act_map.targets_and_ports(values.act).numpy()
        neg = network.neg_map.targets_and_ports(values.neg).numpy()
        n = len(TARGETS)
        out.append(DesignLayer(theta=values.theta.numpy().copy(), g_s=values.g_s.numpy().copy(),
                               negated=values.negated.numpy().copy(), neg_present=values.neg_present.numpy().copy(),
                               act_components=values.act.numpy().copy(), neg_components=values.neg.numpy().copy(),
                               act_etas=act[:, :n].copy(), neg_etas=neg[:, :n].copy(),
                               act_ports=act[:, n:].copy(), neg_ports=neg[:, n:].copy()))
    return tuple(out)


def network_from_design(design: Design, calibration: ProcessCalibration) -> PrintedNetwork:
    """The model of a stored design with its components held fixed (the calibration must be its run's)."""
    require_process(calibration, design.process)
    network = PrintedNetwork(design.layers, calibration.act, calibration.neg, fixed_circuits=True,
                             rh_ohm_sq=design.rh_ohm_sq)
    with torch.no_grad():
        for layer, values in zip(network.layers, design.layer_values):
            layer.theta.copy_(torch.as_tensor(values.theta))
            layer.act.set_components(torch.as_tensor(values.act_components))
            layer.neg.set_components(torch.as_tensor(values.neg_components))
    return network


def encode_inputs(design: Design, features: np.ndarray) -> np.ndarray:
    """Input voltages of raw features with the design's encoding (dataset.encode)."""
    return encode(features, design.input_offset, design.input_scale)
