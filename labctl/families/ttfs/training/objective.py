"""The loss on first-spike times: the right output first, by a margin the die's jitter cannot undo, inside W.

The class is the output that fires first (contract 1.1), so the scores are
negative spike times over a temperature (a softmax over ``-t / T``): cross
entropy then asks the target to lead the others by several T, far above the
few ns of jitter of one spike (1.8). A neuron that does not fire before W
gets a pseudo-time past W that still falls as its membrane at W nears the
threshold, so the gradient reaches outputs that are silent. A second term
keeps the target firing early (by ``target_ns``), well inside the window; a
third revives hidden neurons that fire for no pattern of the batch (a silent
neuron passes nothing on, 1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labctl.families.ttfs.model import Circuit, LayerSpikes


@dataclass(frozen=True)
class Objective:
    temperature_ns: float = 250.0
    target_ns: float = 6000.0
    early_weight: float = 1.0
    revive_weight: float = 1.0


def pseudo_times_ns(spikes: LayerSpikes, circuit: Circuit, m: int) -> torch.Tensor:
    """Spike times (D, P, N), with ``W (1 + (V(W) - V_th) / (V_0 - V_th))`` for a neuron that did not fire."""
    layer, w = circuit.layers[m], circuit.window_ns
    th, v0 = layer.threshold_v[:, None, :], layer.start_v[:, None, :]
    late = w * (1.0 + (spikes.v_end - th) / torch.clamp(v0 - th, min=1e-3))
    return torch.where(spikes.fired, spikes.edge_ns, late)


def spike_time_loss(layers: list[LayerSpikes], circuit: Circuit, labels: torch.Tensor, n_classes: int,
                    objective: Objective) -> torch.Tensor:
    """Mean over draws and patterns of the three terms above."""
    out = len(layers) - 1
    times = pseudo_times_ns(layers[out], circuit, out)[..., :n_classes]
    d = times.shape[0]
    target = labels.expand(d, -1)
    scores = -times / objective.temperature_ns
    loss = torch.nn.functional.cross_entropy(scores.reshape(-1, n_classes), target.reshape(-1))
    t_target = times.gather(-1, target[..., None])[..., 0]
    loss = loss + objective.early_weight * torch.relu(t_target - objective.target_ns).mean() / objective.target_ns
    for m, spikes in enumerate(layers[:out]):
        dead = ~spikes.fired.any(dim=1, keepdim=True)
        if dead.any():
            th = circuit.layers[m].threshold_v[:, None, :]
            gap = torch.relu(spikes.v_end - th) * dead
            loss = loss + objective.revive_weight * gap.mean()
    return loss
