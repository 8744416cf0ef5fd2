"""Signed 3-bit weights trained with a high-precision store and a low-precision forward pass.

Seed 004 section 3.4 (its "dual-copy rounding", refs [48, 10]): the weights
live as floats (in units of one magnitude code) and are rounded to the 15
levels -7..7 for every forward pass; the gradient with respect to the rounded
weights updates the float copy, which accumulates the small updates that a
3-bit weight could not hold. With deterministic rounding this is exactly the
straight-through estimator (identity gradient through the rounding), so the
two are one option here (``"ste"``). The other option, ``"stochastic"``, is
ref [10]'s stochastic variant: each forward pass rounds up with probability
equal to the fractional part, so the expected code equals the float copy. The
trainer runs both as restarts and keeps whichever works best (deterministic
rounding gives the codes in the end either way).

An L1 penalty on negative weights (paper: 1e-6) reduces negative currents,
which slow the circuit down.

Stuck latch bits (contract section 1) are modelled by :class:`LatchDefects`:
a synapse with a stuck bit can only hold some of the 15 values, and the
forward pass uses the value the latch really holds for the code training
would write there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from labctl.families.cmna.latch_codes import nibbles_to_signed, signed_to_nibbles

ROUNDINGS = ("ste", "stochastic")


def round_ste(latent: torch.Tensor, max_code: int) -> torch.Tensor:
    """Nearest code in -max_code..max_code in the forward pass, identity gradient in the backward pass."""
    codes = torch.round(latent.clamp(-max_code, max_code))
    return latent + (codes - latent).detach()


def round_stochastic(latent: torch.Tensor, max_code: int, generator: torch.Generator) -> torch.Tensor:
    """Round up with probability equal to the fractional part (expected code = latent), identity gradient."""
    clipped = latent.clamp(-max_code, max_code)
    low = torch.floor(clipped)
    up = torch.rand(latent.shape, generator=generator, dtype=latent.dtype) < (clipped - low)
    codes = (low + up.to(latent.dtype)).clamp(-max_code, max_code)
    return latent + (codes - latent).detach()


@dataclass
class LatchDefects:
    """Known stuck latch bits: per (matrix, row, column) the bits stuck and the values they hold."""

    stuck: dict[tuple[int, int, int], tuple[int, int]] = field(default_factory=dict)
    """(matrix, row, column) -> (mask of stuck bits, their values), nibble bit order (bit 3 = sign)."""

    @classmethod
    def from_bits(cls, bits: Iterable) -> "LatchDefects":
        """From objects with ``matrix, row, column, bit, held`` (e.g. ``ProgramReport.stuck``)."""
        defects = cls()
        defects.add(bits)
        return defects

    def add(self, bits: Iterable) -> int:
        """Merge more stuck bits; returns how many were new."""
        new = 0
        for b in bits:
            key = (int(b.matrix), int(b.row), int(b.column))
            mask, values = self.stuck.get(key, (0, 0))
            bit = 1 << int(b.bit)
            if not mask & bit:
                new += 1
            self.stuck[key] = (mask | bit, (values & ~bit) | (bit if int(b.held) else 0))
        return new

    def __len__(self) -> int:
        return sum(bin(mask).count("1") for mask, _ in self.stuck.values())

    def held(self, matrix: int, codes: np.ndarray) -> np.ndarray:
        """Signed codes the latches of ``matrix`` hold after ``codes`` (signed, full matrix) are written."""
        out = np.asarray(codes).astype(np.int8).copy()
        for (m, r, c), (mask, values) in self.stuck.items():
            if m == matrix:
                nibble = (int(signed_to_nibbles(np.array(out[r, c]))) & ~mask) | values
                out[r, c] = nibbles_to_signed(np.array(nibble, dtype=np.uint8))
        return out

    def tables(self, matrix: int, max_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and a (k, 2 max_code + 1) table: held value for each code -max..max written there."""
        keys = sorted(k for k in self.stuck if k[0] == matrix)
        values = np.arange(-max_code, max_code + 1)
        table = np.zeros((len(keys), len(values)), dtype=np.int64)
        for i, (m, r, c) in enumerate(keys):
            mask, held = self.stuck[(m, r, c)]
            table[i] = nibbles_to_signed(((signed_to_nibbles(values) & (0xF & ~mask)) | held).astype(np.uint8))
        rows = np.array([k[1] for k in keys], dtype=np.int64)
        cols = np.array([k[2] for k in keys], dtype=np.int64)
        return rows, cols, table


class QuantisedWeights(torch.nn.Module):
    """Float latent weights (code units) of every matrix of the die, with masks for unused synapses."""

    def __init__(self, masks: Sequence[np.ndarray], max_code: int, init_std: Sequence[float], dtype: torch.dtype,
                 *, rounding: str = "ste", defects: LatchDefects | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}")
        self.max_code = max_code
        self.rounding = rounding
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.latent = torch.nn.ParameterList()
        self._stuck: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = []
        for m, (mask, std) in enumerate(zip(masks, init_std)):
            self.register_buffer(f"mask_{m}", torch.as_tensor(mask, dtype=dtype))
            w = torch.randn(mask.shape, dtype=dtype, generator=self.generator) * std * getattr(self, f"mask_{m}")
            self.latent.append(torch.nn.Parameter(w))
            rows, cols, table = (defects or LatchDefects()).tables(m, max_code)
            self._stuck.append((torch.as_tensor(rows), torch.as_tensor(cols), torch.as_tensor(table, dtype=dtype))
                               if len(rows) else None)

    def masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask_{m}") for m in range(len(self.latent))]

    @torch.no_grad()
    def set_latent(self, values: Sequence[np.ndarray]) -> None:
        """Start from given weights (code units, e.g. codes of an earlier training), inside the masks."""
        for w, v, mask in zip(self.latent, values, self.masks()):
            w.copy_(torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=w.dtype) * mask)

    def codes(self, *, deterministic: bool = False) -> list[torch.Tensor]:
        """Codes the latches will hold (float tensors holding integers) with straight-through gradients.

        Training rounds as ``rounding`` says; ``deterministic`` rounds to the
        nearest code (what is programmed). Stuck synapses hold what their
        latches can hold, also outside the masks.
        """
        out = []
        for w, mask, stuck in zip(self.latent, self.masks(), self._stuck):
            if self.rounding == "stochastic" and not deterministic and self.training:
                q = round_stochastic(w, self.max_code, self.generator) * mask
            else:
                q = round_ste(w, self.max_code) * mask
            if stuck is not None:
                rows, cols, table = stuck
                index = (q[rows, cols].detach().round().to(torch.int64) + self.max_code)[:, None]
                held = table.gather(1, index)[:, 0]
                q = q.index_put((rows, cols), q[rows, cols] + (held - q[rows, cols]).detach())
            out.append(q)
        return out

    def integer_codes(self) -> list[np.ndarray]:
        """Codes to program (int8, full die geometry, zeros outside the masks except stuck synapses)."""
        with torch.no_grad():
            return [q.round().to(torch.int64).numpy().astype(np.int8) for q in self.codes(deterministic=True)]

    def latent_arrays(self) -> list[np.ndarray]:
        """The float store (code units), for caching a pre-trained network."""
        with torch.no_grad():
            return [(w * mask).numpy().astype(np.float32) for w, mask in zip(self.latent, self.masks())]

    def negative_l1(self) -> torch.Tensor:
        """Sum of the magnitudes of the negative latent weights (code units)."""
        return sum(torch.relu(-w.clamp(-self.max_code, self.max_code) * mask).sum()
                   for w, mask in zip(self.latent, self.masks()))

    @torch.no_grad()
    def clip_(self) -> None:
        """Keep the store within half a code of the range, so a weight can always come back."""
        for w in self.latent:
            w.clamp_(-self.max_code - 0.5, self.max_code + 0.5)
