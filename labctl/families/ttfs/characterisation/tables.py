"""Row layouts of the raw tables a TTFS characterisation records (HDF5 ``/raw``), and how TDC repeats are summed.

Every DC reading and every batch of spike times is kept as read, so a fit
can be redone from the file alone.
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.patterns import NO_SPIKE

DC_DTYPE = np.dtype([("step", "S8"), ("polarity", "i1"), ("matrix", "u1"), ("row", "u2"), ("column", "i2"),
                     ("code", "i1"), ("rail_v", "f8"), ("held_a", "f8"), ("released_a", "f8"),
                     ("synaptic_a", "f8")])
"""A held row's rail reading: ``column`` -1 when every column carries the code."""
TDC_DTYPE = np.dtype([("step", "S8"), ("matrix", "u1"), ("row", "i2"), ("column", "u2"), ("code", "i1"),
                      ("probe", "?"), ("mean_ns", "f8"), ("se_ns", "f8"), ("fired", "u2"), ("n", "u2")])
"""Spike times of one column under one drive: the mean TDC code of the repeats that fired and its error.
``row`` -1: every row of the matrix drives the column."""
TRACE_DTYPE = np.dtype([("t_s", "f8"), ("v", "f8")])
UNITS = {"dc": "rail_v: V, *_a: A (readings positive into the die; synaptic_a: the held row's current)",
         "tdc": "mean_ns, se_ns: TDC codes (ns from t = 0 to the spike edge, code k = [k, k+1) ns)",
         "traces": "t_s: s from SYNC, v: V at the membrane (the MON chain's calibration applied)"}


def tdc_summary(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of (repeats x columns) TDC codes: mean and standard error of those that fired, count fired."""
    codes = np.asarray(codes)
    fired = codes != NO_SPIKE
    count = fired.sum(axis=0)
    values = np.where(fired, codes.astype(float), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0) if fired.any() else np.full(codes.shape[1], np.nan)
        sd = np.nanstd(values, axis=0, ddof=1) if (count >= 2).any() else np.full(codes.shape[1], np.nan)
    # the TDC's quantisation (1 ns) is the floor of a repeat's scatter
    se = np.sqrt(np.maximum(np.nan_to_num(sd, nan=np.inf) ** 2, 1.0 / 12.0) / np.maximum(count, 1))
    return np.where(count > 0, mean, np.nan), np.where(count >= 2, se, np.nan), count


def trace_rows(t_s: np.ndarray, v: np.ndarray) -> np.ndarray:
    rows = np.empty(len(t_s), TRACE_DTYPE)
    rows["t_s"], rows["v"] = t_s, v
    return rows
