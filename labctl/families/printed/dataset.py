"""Data for printed designs: a CSV with features, a label and an optional split column, or a small
built-in set (``BUILTIN``: scikit-learn's, installed with labctl, as ``labctl train --dataset iris`` is for CMNA).

The benchmark sets (seeds 000/001) come with the authors' fixed splits in a
``split`` column (train/valid/test), which is kept: seeds, restarts and
hyperparameters are chosen on ``valid`` only, never on ``test`` (the issue).
A CSV without one gets a seeded stratified 60/20/20 split, recorded in the
design. Features become input voltages by min-max scaling with the training
split's statistics, clipped to [0, 1] V (the authors' sets are already scaled;
the bench drives -1.5 to 1.5 V, contract 4.4).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from labctl.errors import ConfigError

BUILTIN = ("iris", "wine")
"""Built-in sets a printed design takes by name: at most 22 inputs, what a PF-144 sample takes (contract
2.5; breast_cancer has 30)."""
SPLITS = ("train", "valid", "test")
SPLIT_COLUMN = "split"


@dataclass(frozen=True)
class SplitData:
    """Features (raw), integer labels and the split of every row."""

    features: np.ndarray
    labels: np.ndarray
    split: np.ndarray            # str per row: train | valid | test
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: str = ""
    label_column: str = "label"
    split_generated: bool = False
    split_seed: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) of the input encoding from the training split (1 for constant features)."""
        train = self.features[self.split == "train"]
        low, span = train.min(axis=0), np.ptp(train, axis=0)
        return low, np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 1.0)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(input voltages, labels) of one split."""
        offset, scale = self.scaling()
        rows = self.split == name
        return encode(self.features[rows], offset, scale), self.labels[rows]


def encode(features: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Input voltages (V) of raw features: min-max scaled, clipped to [0, 1]."""
    return np.clip((np.asarray(features, dtype=np.float64) - offset) * scale, 0.0, 1.0)


def stratified_split(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 60/20/20 train/valid/test split, stratified by class."""
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype=object)
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_train, n_valid = round(0.6 * len(rows)), round(0.2 * len(rows))
        split[rows[:n_train]] = "train"
        split[rows[n_train:n_train + n_valid]] = "valid"
        split[rows[n_train + n_valid:]] = "test"
    return split.astype(str)


def from_arrays(features: np.ndarray, labels: np.ndarray, split: np.ndarray | None = None, *, seed: int = 0,
                source: str = "arrays") -> SplitData:
    """A SplitData from arrays (labels 0..C-1); without ``split`` a seeded stratified 60/20/20 one."""
    labels = np.asarray(labels, dtype=np.int64)
    generated = split is None
    split = stratified_split(labels, seed) if generated else np.asarray(split).astype(str)
    bad = sorted(set(split) - set(SPLITS))
    if bad:
        raise ConfigError(f"{source}: split value {bad[0]!r} is not train, valid or test")
    for name in ("train", "valid"):
        if not np.any(split == name):
            raise ConfigError(f"{source}: the split has no {name} rows")
    features = np.asarray(features, dtype=np.float64)
    names = tuple(f"f{i}" for i in range(features.shape[1]))
    classes = tuple(str(c) for c in range(int(labels.max()) + 1))
    return SplitData(features, labels, split, names, classes, source, "label", generated, seed)


def load_csv(path: str | Path, *, label_column: str = "label", seed: int = 0) -> SplitData:
    """Read ``f0..fn, <label_column>[, split]``; one-line ConfigError naming the file and what is wrong."""
    p = Path(path)
    try:
        with p.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except OSError as exc:
        raise ConfigError(f"data file {p}: cannot read it ({exc.strerror or exc})") from None
    if len(rows) < 2:
        raise ConfigError(f"{p}: needs a header row and at least one sample")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise ConfigError(f"{p}: no column {label_column!r} (columns: {', '.join(header)}); use --label-column")
    body = rows[1:]
    if any(len(r) != len(header) for r in body):
        raise ConfigError(f"{p}: every row needs {len(header)} values like the header")
    feature_cols = [i for i, h in enumerate(header) if h not in (label_column, SPLIT_COLUMN)]
    try:
        features = np.array([[float(r[i]) for i in feature_cols] for r in body])
    except ValueError as exc:
        raise ConfigError(f"{p}: features must be numeric ({exc})") from None
    if not np.all(np.isfinite(features)):
        raise ConfigError(f"{p}: features must be finite numbers")
    class_names, labels = np.unique([r[header.index(label_column)].strip() for r in body], return_inverse=True)
    split = None
    if SPLIT_COLUMN in header:
        split = np.array([r[header.index(SPLIT_COLUMN)].strip() for r in body])
    data = from_arrays(features, labels, split, seed=seed, source=str(p))
    return SplitData(data.features, data.labels, data.split, tuple(header[i] for i in feature_cols),
                     tuple(str(c) for c in class_names), str(p), label_column, data.split_generated, seed)


def task_name_problem(name: str) -> str | None:
    """Why ``name`` names no task a printed design trains on (neither built in nor a .csv); None if it does."""
    if name in BUILTIN or name.lower().endswith(".csv"):
        return None
    return f"a printed design is trained on a .csv file or one of {', '.join(BUILTIN)}, not {name!r}"


def load_task(source: str | Path, *, label_column: str = "label", seed: int = 0) -> SplitData:
    """A built-in set by name (seeded stratified 60/20/20 split) or a CSV by path (``load_csv``)."""
    name = str(source)
    if name not in BUILTIN:
        problem = task_name_problem(name)
        if problem:
            raise ConfigError(problem)
        return load_csv(source, label_column=label_column, seed=seed)
    from labctl.train.datasets import builtin_arrays

    features, labels, class_names, feature_names, _ = builtin_arrays(name)
    data = from_arrays(features, labels, seed=seed, source=name)
    return replace(data, feature_names=tuple(feature_names), class_names=tuple(class_names))
