"""Signed 3-bit weights trained with a high-precision store and a low-precision forward pass.

Seed 004 section 3.4: the weights live as floats (in units of one magnitude
code) and are rounded to the 15 levels -7..7 for every forward pass; the
gradient of the rounding is taken as 1 (straight-through estimator), so the
float copy accumulates the small updates that a 3-bit weight could not hold.
An L1 penalty on negative weights (paper: 1e-6) reduces negative currents,
which slow the circuit down.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def round_ste(latent: torch.Tensor, max_code: int) -> torch.Tensor:
    """Nearest code in -max_code..max_code in the forward pass, identity gradient in the backward pass."""
    codes = torch.round(latent.clamp(-max_code, max_code))
    return latent + (codes - latent).detach()


class QuantisedWeights(torch.nn.Module):
    """Float latent weights (code units) of every matrix of the die, with masks for unused synapses."""

    def __init__(self, masks: Sequence[np.ndarray], max_code: int, init_std: Sequence[float], dtype: torch.dtype) -> None:
        super().__init__()
        self.max_code = max_code
        self.latent = torch.nn.ParameterList()
        for m, (mask, std) in enumerate(zip(masks, init_std)):
            self.register_buffer(f"mask_{m}", torch.as_tensor(mask, dtype=dtype))
            w = torch.randn(mask.shape, dtype=dtype) * std * getattr(self, f"mask_{m}")
            self.latent.append(torch.nn.Parameter(w))

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask_{m}") for m in range(len(self.latent))]

    def codes(self) -> list[torch.Tensor]:
        """Quantised codes (float tensors holding integers) with straight-through gradients."""
        return [round_ste(w, self.max_code) * mask for w, mask in zip(self.latent, self.masks())]

    def floats(self) -> list[torch.Tensor]:
        """The high-precision store, clipped to the code range: the network with ideal weight resolution."""
        return [w.clamp(-self.max_code, self.max_code) * mask for w, mask in zip(self.latent, self.masks())]

    def integer_codes(self) -> list[np.ndarray]:
        """Codes to program (int8, full die geometry, zeros outside the masks)."""
        with torch.no_grad():
            return [q.round().to(torch.int64).numpy().astype(np.int8) for q in self.codes()]

    def negative_l1(self) -> torch.Tensor:
        """Sum of the magnitudes of the negative latent weights (code units)."""
        return sum(torch.relu(-w).sum() for w in self.floats())

    @torch.no_grad()
    def clip_(self) -> None:
        """Keep the store within half a code of the range, so a weight can always come back."""
        for w in self.latent:
            w.clamp_(-self.max_code - 0.5, self.max_code + 0.5)
