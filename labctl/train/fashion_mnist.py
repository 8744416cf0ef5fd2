"""Fashion-MNIST from its IDX files: the Debian package ``dataset-fashion-mnist``, or a folder the user names.

Nothing is downloaded: the four files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, gzipped or not) are read where the package
installs them or from ``data_dir``. The split is the set's own (60 000 / 10 000),
as in seed 003's Fashion-MNIST figures. Pixels keep their 0..255 values; the
scaling to [0, 1] is the dataset's fixed ``feature_scale`` of 1/255, the same
for every split, so 8-bit pixels map one to one onto 8-bit time codes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from labctl.errors import ConfigError, DataFileError
from labctl.train.datasets import Dataset

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (magic 0x00 0x00 type ndim, big-endian u32 sizes, data), gzipped or not."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataFileError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", ndim, 4))
    data = np.frombuffer(raw, _IDX_TYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataFileError(f"{path}: header says {shape}, the file holds {data.size} values")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"fashion-mnist: {stem}[.gz] not found in {folder} (install the Debian package "
                      f"dataset-fashion-mnist, or give --data-dir with the four IDX files)")


def load_fashion_mnist(data_dir: Path | None = None) -> Dataset:
    """The 60 000 training and 10 000 test images (784 pixels each) with their labels."""
    folder = Path(data_dir) if data_dir is not None else DEBIAN_DIR
    images = {part: read_idx(_find(folder, f"{part}-images-idx3-ubyte")) for part in ("train", "t10k")}
    labels = {part: read_idx(_find(folder, f"{part}-labels-idx1-ubyte")) for part in ("train", "t10k")}
    for part in images:
        if images[part].shape[0] != labels[part].shape[0]:
            raise DataFileError(f"fashion-mnist {part}: {images[part].shape[0]} images but "
                                f"{labels[part].shape[0]} labels")
    flat = {part: images[part].reshape(images[part].shape[0], -1).astype(np.float64) for part in images}
    pixels = flat["train"].shape[1]
    return Dataset("fashion-mnist", flat["train"], labels["train"].astype(np.int64), flat["t10k"],
                   labels["t10k"].astype(np.int64), list(CLASS_NAMES), [f"px{i}" for i in range(pixels)],
                   np.zeros(pixels), np.full(pixels, 1.0 / 255.0), "fashion-mnist")
