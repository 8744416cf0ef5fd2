"""Signed 3-bit weights <-> 4-bit latch codes <-> packed bytes (contract section 1, 2).

Pure functions, one step each (weights -> latch codes -> packed rows), so that
each step can be tested alone and the bridge client only moves bytes.

A latch code is a nibble: bit 3 is the sign (1 = negative), bits 2..0 the
magnitude. Rows are packed two codes per byte, even column in the low nibble,
each row starting on a new byte.
"""

from __future__ import annotations

import numpy as np

SIGN_BIT = 0x8
"""Bit 3 of a latch nibble: the sign (1 = negative)."""
MAGNITUDE_MASK = 0x7
"""Bits 2..0: the magnitude; also the largest magnitude a latch holds (signed codes -7..7)."""


def signed_to_nibbles(weights: np.ndarray) -> np.ndarray:
    """Signed magnitudes (-7..7) to latch nibbles (uint8 0..15); zero is code 0."""
    w = np.asarray(weights)
    if w.size and (w.min() < -MAGNITUDE_MASK or w.max() > MAGNITUDE_MASK):
        raise ValueError("signed weight codes must lie in -7..7")
    w = w.astype(np.int16)
    return (np.abs(w) | np.where(w < 0, SIGN_BIT, 0)).astype(np.uint8)


def nibbles_to_signed(nibbles: np.ndarray) -> np.ndarray:
    """Latch nibbles to signed magnitudes (int8); a set sign bit on magnitude 0 reads as 0."""
    n = np.asarray(nibbles, dtype=np.uint8)
    mag = (n & MAGNITUDE_MASK).astype(np.int8)
    return np.where(n & SIGN_BIT, -mag, mag).astype(np.int8)


def row_bytes(columns: int) -> int:
    """Bytes one packed row takes: ceil(columns / 2)."""
    return (columns + 1) // 2


def pack_rows(nibbles: np.ndarray) -> bytes:
    """Pack a (rows, columns) array of nibbles; an odd row's spare high nibble is 0."""
    n = np.asarray(nibbles, dtype=np.uint8)
    if n.ndim != 2:
        raise ValueError("pack_rows needs a 2-D (rows, columns) array")
    if n.size and n.max() > 0xF:
        raise ValueError("latch codes are 4-bit (0..15)")
    rows, cols = n.shape
    if cols % 2:
        n = np.concatenate([n, np.zeros((rows, 1), np.uint8)], axis=1)
    return (n[:, 0::2] | (n[:, 1::2] << 4)).astype(np.uint8).tobytes()


def unpack_rows(data: bytes, rows: int, columns: int) -> np.ndarray:
    """Inverse of :func:`pack_rows`: (rows, columns) nibbles; the spare nibble is dropped."""
    per_row = row_bytes(columns)
    if len(data) != rows * per_row:
        raise ValueError(f"expected {rows * per_row} packed bytes for {rows}x{columns}, got {len(data)}")
    b = np.frombuffer(data, dtype=np.uint8).reshape(rows, per_row)
    out = np.empty((rows, per_row * 2), np.uint8)
    out[:, 0::2] = b & 0xF
    out[:, 1::2] = b >> 4
    return out[:, :columns]
