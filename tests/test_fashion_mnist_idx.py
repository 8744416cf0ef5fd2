"""Fashion-MNIST's IDX reader on small files made here (the real set is not needed in CI)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from labctl.errors import ConfigError, DataFileError
from labctl.train.fashion_mnist import load_fashion_mnist, read_idx


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_set(folder, n_train=5, n_test=3, gz=True):
    rng = np.random.default_rng(1)
    parts = {"train": n_train, "t10k": n_test}
    for part, n in parts.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for stem, array in ((f"{part}-images-idx3-ubyte", images), (f"{part}-labels-idx1-ubyte", labels)):
            data = _idx(array)
            (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return rng


@pytest.mark.parametrize("gz", [True, False])
def test_a_folder_of_idx_files_reads_as_the_official_split(tmp_path, gz):
    _write_set(tmp_path, gz=gz)
    data = load_fashion_mnist(tmp_path)
    assert data.X_train.shape == (5, 784) and data.X_test.shape == (3, 784)
    raw = read_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    assert np.array_equal(data.X_train[2], raw[2].reshape(-1).astype(float))
    assert data.unit(np.full((1, 784), 255.0)).max() == pytest.approx(1.0)
    assert data.n_classes == 10


def test_a_truncated_file_and_a_missing_folder_are_named(tmp_path):
    _write_set(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataFileError, match="header says"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(ConfigError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
