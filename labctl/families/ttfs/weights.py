"""A trained TTFS network for one die: signed synapse codes, bias time codes and the input encoding (HDF5).

What training hands to programming and evaluation. The file is written
under a temporary name and moved over the target once complete
(:func:`labctl.files.atomic_output`), so a crash never leaves half a file
under the real name. Layout: root attributes ``kind="weights"``,
``family="ttfs"``, part, serial, method, dataset, split seed, software
accuracy, window, calibration file, seconds, and where the data set was
read (``label_column``, ``data_dir``: evaluation loads the same split); ``codes/matrix_<m>`` (int8,
-15..+15, rows: layer m's neurons then the bias row; columns: layer m+1),
``bias_time_codes`` (uint8, one per matrix) and ``encoding/{offset,scale}`` with the attributes
``max_code`` and ``larger_earlier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from labctl import __version__, files
from labctl.errors import DataFileError
from labctl.families.ttfs.die_parameters import MAX_CODE
from labctl.families.ttfs.encoding import TimeEncoding

FAMILY = "ttfs"


@dataclass(frozen=True)
class TtfsWeights:
    """Codes for the full die geometry and what made them."""

    part: str
    serial: str
    layer_sizes: tuple[int, ...]
    codes: tuple[np.ndarray, ...]
    bias_time_codes: np.ndarray
    encoding: TimeEncoding
    window_ns: float
    method: str
    dataset: str
    split_seed: int
    software_accuracy: float
    """The model's test accuracy with these codes at the nominal write (eps = 0)."""
    calibration_file: str = ""
    seconds: float = float("nan")
    label_column: str = ""
    """A CSV's class column ("": the last column)."""
    data_dir: str = ""
    """Where fashion-mnist's IDX files were read ("": the Debian package's folder)."""

    def __post_init__(self) -> None:
        for m, c in enumerate(self.codes):
            expected = (self.layer_sizes[m] + 1, self.layer_sizes[m + 1])
            if c.shape != expected:
                raise ValueError(f"matrix {m} has shape {c.shape}, the die's geometry needs {expected}")
            if c.size and np.abs(c).max() > MAX_CODE:
                raise ValueError(f"matrix {m} holds codes outside -{MAX_CODE}..+{MAX_CODE} (contract 1.4)")
        if len(self.bias_time_codes) != len(self.codes):
            raise ValueError("one bias time code per matrix")


def write_weights(path: str | Path, weights: TtfsWeights) -> Path:
    """Write the weights file crash-safe (temporary name, then one rename)."""
    with files.atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        a = f.attrs
        a["kind"], a["family"], a["labctl_version"] = "weights", FAMILY, __version__
        a["part"], a["serial"] = weights.part, weights.serial
        a["method"], a["dataset"] = weights.method, weights.dataset
        a["layer_sizes"] = list(weights.layer_sizes)
        a["split_seed"] = int(weights.split_seed)
        a["software_accuracy"] = float(weights.software_accuracy)
        a["window_ns"] = float(weights.window_ns)
        a["calibration_file"] = weights.calibration_file
        a["seconds"] = float(weights.seconds)
        a["label_column"], a["data_dir"] = weights.label_column, weights.data_dir
        for m, c in enumerate(weights.codes):
            ds = f.create_dataset(f"codes/matrix_{m}", data=np.asarray(c, np.int8))
            ds.attrs["units"] = "signed code -15..+15 (rows: layer m then the bias row; columns: layer m+1)"
        f.create_dataset("bias_time_codes", data=np.asarray(weights.bias_time_codes, np.uint8)).attrs["units"] = \
            "10 ns steps after d_in (255: never)"
        enc = f.create_group("encoding")
        enc.create_dataset("offset", data=np.asarray(weights.encoding.offset, np.float64))
        enc.create_dataset("scale", data=np.asarray(weights.encoding.scale, np.float64))
        enc.attrs["max_code"] = int(weights.encoding.max_code)
        enc.attrs["larger_earlier"] = bool(weights.encoding.larger_earlier)
    return Path(path)


def read_weights(path: str | Path) -> TtfsWeights:
    """Load a TTFS weights file; a missing, malformed or other-family file raises one :class:`DataFileError`."""
    p = Path(path)
    try:
        with files.open_hdf5(p, "a TTFS weights file from `labctl train`") as f:
            a = f.attrs
            if a.get("kind") != "weights" or a.get("family") != FAMILY:
                raise DataFileError(f"{p}: not a TTFS weights file "
                                    f"(kind={a.get('kind')!r}, family={a.get('family')!r})")
            sizes = tuple(int(v) for v in a["layer_sizes"])
            return TtfsWeights(
                part=str(a["part"]), serial=str(a["serial"]), layer_sizes=sizes,
                codes=tuple(f[f"codes/matrix_{m}"][()].astype(np.int8) for m in range(len(sizes) - 1)),
                bias_time_codes=f["bias_time_codes"][()].astype(np.uint8),
                encoding=TimeEncoding(f["encoding/offset"][()], f["encoding/scale"][()],
                                      int(f["encoding"].attrs["max_code"]),
                                      bool(f["encoding"].attrs["larger_earlier"])),
                window_ns=float(a["window_ns"]), method=str(a["method"]), dataset=str(a["dataset"]),
                split_seed=int(a["split_seed"]), software_accuracy=float(a["software_accuracy"]),
                calibration_file=str(a.get("calibration_file", "")), seconds=float(a.get("seconds", np.nan)),
                label_column=str(a.get("label_column", "")), data_dir=str(a.get("data_dir", "")))
    except DataFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataFileError(f"{p}: malformed TTFS weights file ({exc})") from None
