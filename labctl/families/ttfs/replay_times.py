"""How far a twin's first-spike times may lie from the chip's for the same patterns (the spike-time half of
TTFS replay).

The twin (the family simulator's die built from the characterisation) holds
the measured parameters; the chip is the die they were measured on. For one
pattern and output their TDC readings differ by

- the chip's distance from its measurement: the fits' standard errors and,
  where lambda was not measured per site, the per-site spread the record
  states (1.6): the chip is one die drawn around the measurement;
- each die's own write residual (1.7: drawn anew at every write, within the
  record's half width);
- each reading's noise: reset noise 0.2 mV on the start level and comparator
  noise 0.5 mV on the threshold (1.5, T), 0.25 ns of edge jitter and the TDC's
  1 ns bins (1.8, T).

The level noise, the residuals and the parameter draws reach a spike time
through the circuit, so they are propagated by the family's model
(:mod:`labctl.families.ttfs.model`): :data:`DRAWS` dies drawn around the
measurement (the chip's side) and as many at the measured values (the twin's
side), each with its own residuals and level noise; the variance of the
difference is the sum of the two sides' variances and the edge noise of both.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from labctl.families.ttfs.die_parameters import TtfsDieParameters
from labctl.families.ttfs.model import DTYPE, build_circuit, network, site_currents_na

DRAWS = 32
RESET_NOISE_V = 0.2e-3  # 1.5 (T)
COMPARATOR_NOISE_V = 0.5e-3  # 1.5 (T)
EDGE_JITTER_NS = 0.25  # 1.8 (T)
TDC_BIN_NS = 1.0  # 1.8


def _drawn_times(params: TtfsDieParameters, codes: list[np.ndarray], bias_codes: np.ndarray,
                 time_codes: np.ndarray, sample: bool, generator: torch.Generator) -> np.ndarray:
    """Output spike edges (DRAWS, P, N; inf: no spike before W) of dies drawn around the measurement
    (``sample``) or at it, each with its own write residuals and level noise."""
    circuit = build_circuit(params, draws=DRAWS, generator=generator, sample=sample)

    def noisy(layer):
        shape = layer.threshold_v.shape
        return dataclasses.replace(
            layer, start_v=layer.start_v + RESET_NOISE_V * torch.randn(shape, generator=generator, dtype=DTYPE),
            threshold_v=layer.threshold_v + COMPARATOR_NOISE_V * torch.randn(shape, generator=generator, dtype=DTYPE))

    circuit = dataclasses.replace(circuit, layers=tuple(noisy(layer) for layer in circuit.layers))
    half_width = params.write_residual_half_width
    with torch.no_grad():
        currents = []
        for m, c in enumerate(codes):
            c = torch.as_tensor(np.asarray(c, np.float64), dtype=DTYPE)
            eps = (2.0 * torch.rand((DRAWS, *c.shape), generator=generator, dtype=DTYPE) - 1.0) * half_width
            currents.append(site_currents_na(circuit, m, c, eps))
        patterns = torch.as_tensor(np.asarray(time_codes, np.float64), dtype=DTYPE).expand(DRAWS, -1, -1)
        bias = torch.as_tensor(np.asarray(bias_codes, np.float64), dtype=DTYPE)
        return network(circuit, currents, patterns, bias)[-1].times_ns().numpy()


def spike_time_sigma_ns(params: TtfsDieParameters, codes: list[np.ndarray], bias_codes: np.ndarray,
                        time_codes: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """The expected difference (ns, one sigma) between the chip's and the twin's first-spike time of every
    output (P, N) for input time codes (P, n_in) with the synapse ``codes`` both hold; NaN where the model
    has the output firing in fewer than two draws of a side."""
    generator = torch.Generator().manual_seed(seed)
    variance = sum(_variance(_drawn_times(params, codes, bias_codes, time_codes, sample, generator))
                   for sample in (True, False))
    edge = 2.0 * (EDGE_JITTER_NS ** 2 + TDC_BIN_NS ** 2 / 12.0)
    return np.sqrt(variance + edge)


def _variance(times: np.ndarray) -> np.ndarray:
    """Variance over draws (axis 0) of the finite times; NaN where fewer than two are finite."""
    fired = np.isfinite(times)
    n = fired.sum(axis=0)
    mean = np.where(fired, times, 0.0).sum(axis=0) / np.maximum(n, 1)
    squares = np.where(fired, (np.where(fired, times, 0.0) - mean) ** 2, 0.0).sum(axis=0)
    return np.where(n >= 2, squares / np.maximum(n - 1, 1), np.nan)
