"""The printed design record: what training decided and predicts, in one HDF5 file (issue 13).

A design is for one print run (its ``process``): its printed values (thetas,
conductances, every cell's components, and the etas and power coefficients
the calibration predicts for them), the input encoding, the predicted test
accuracy distribution over sampled printed circuits (contract 1.6: 100
samples; mean, sd, 5 % / 95 % quantiles = the predicted 90 % interval), the
software accuracy of the nominal circuit, the predicted power and the
training provenance. Written atomically (temp file in the same folder, then
``os.replace``); layout:

    /            attrs family="printed", kind="design", process, format
    /layers/<l>  theta, g_s, negated, neg_present, act_components, neg_components, act_etas, neg_etas,
                 act_ports, neg_ports (absent in designs made before the loaded model)
    /input       offset, scale (feature -> V); attrs feature_names, class_names
    /prediction  attrs (accuracies as fractions, power in W)
    /provenance  attrs; dataset ``split`` when the split was generated
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import h5py
import numpy as np

from labctl.errors import DataFileError
from labctl.files import atomic_output, open_hdf5

DESIGN_FORMAT = "pnc-design/1"


@dataclass(frozen=True)
class DesignLayer:
    """One crossbar layer's nominal printed values (network.LayerValues as arrays; the cells' etas, ports)."""

    theta: np.ndarray           # (n_in + 2, n_out): inputs, bias, GND
    g_s: np.ndarray             # conductance (S), 0 where not printed
    negated: np.ndarray         # bool: on the input's negated line
    neg_present: np.ndarray     # (n_in + 1,) bool: NEG of each input (and the bias) printed
    act_components: np.ndarray  # (n_out, 6) R1, R2 (ohm), W1, L1, W2, L2 (um)
    neg_components: np.ndarray  # (n_in + 1, 7) R1..R5 (ohm), W, L (um)
    act_etas: np.ndarray        # (n_out, 7) process_map.TARGETS at the nominal components
    neg_etas: np.ndarray        # (n_in + 1, 7)
    act_ports: np.ndarray | None = None
    """(n_out, 3) process_map.PORT_TARGETS the model used (r_out ohm, r_in ohm, i_in0 A; contract 1.3,
    1.5): 0 ohm / inf / 0 A where the calibration did not measure them. None in older designs."""
    neg_ports: np.ndarray | None = None
    """(n_in + 1, 3) as ``act_ports``, for the NEG cells."""


@dataclass(frozen=True)
class Prediction:
    """Predicted behaviour of printed samples (fractions; W)."""

    test_mean: float
    test_sd: float
    test_q05: float
    test_q95: float
    n_samples: int
    eps: float
    software_accuracy: float
    valid_mean: float
    power_w: float
    power_blind_power_w: float


@dataclass(frozen=True)
class Provenance:
    """How the design was made (choices on valid only)."""

    dataset: str
    label_column: str
    split_generated: bool
    split_seed: int
    train_eps: float
    nominal: bool
    fixed_circuits: bool
    power_weight: float
    hidden: int
    seed: int
    restarts: int
    chosen_restart: int
    epochs: int
    learning_rate: float
    train_samples: int
    train_seconds: float
    created_utc: str
    software: str
    cell_bounds: str = ""
    """Where training kept the cells (cell_region.cell_bounds): "fixed" (the references), "measured" (every
    cell inside the calibration's measured region), "printable" (some cell only within the ranges: the
    calibration records no region, or a constraint held a cell outside it); "" in designs made before this
    was recorded."""
    task_loss: str = "hinge"
    """The task loss chosen on valid (objective.task_losses): "hinge" (the authors') or "softmax"."""


@dataclass(frozen=True)
class Design:
    process: str
    sample: str
    rh_ohm_sq: float
    rl_ohm_sq: float
    layers: tuple[int, ...]
    layer_values: tuple[DesignLayer, ...]
    input_offset: np.ndarray
    input_scale: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    prediction: Prediction
    provenance: Provenance
    split: np.ndarray | None = None

    def write(self, path: str | Path) -> Path:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        path = Path(path)
        with atomic_output(path) as tmp:
            with h5py.File(tmp, "w") as fh:
                self._fill(fh)
        return path

    def _fill(self, fh: h5py.File) -> None:
        fh.attrs.update({"family": "printed", "kind": "design", "process": self.process, "format": DESIGN_FORMAT,
                         "sample": self.sample, "rh_ohm_sq": self.rh_ohm_sq, "rl_ohm_sq": self.rl_ohm_sq,
                         "layers": np.array(self.layers, dtype=np.int64)})
        for index, layer in enumerate(self.layer_values, start=1):
            group = fh.create_group(f"layers/{index}")
            for f in fields(DesignLayer):
                if getattr(layer, f.name) is not None:
                    group[f.name] = getattr(layer, f.name)
        inputs = fh.create_group("input")
        inputs["offset"], inputs["scale"] = self.input_offset, self.input_scale
        inputs.attrs["feature_names"] = list(self.feature_names)
        inputs.attrs["class_names"] = list(self.class_names)
        fh.create_group("prediction").attrs.update(asdict(self.prediction))
        prov = fh.create_group("provenance")
        prov.attrs.update(asdict(self.provenance))
        if self.split is not None:
            prov["split"] = np.asarray(self.split, dtype=h5py.string_dtype())

    @classmethod
    def read(cls, path: str | Path) -> "Design":
        """The design in ``path``; one-line DataFileError if it is not a printed design."""
        p = Path(path)
        with open_hdf5(p, "a printed design from `labctl train`") as fh:
            if fh.attrs.get("family") != "printed" or fh.attrs.get("kind") != "design":
                raise DataFileError(f"{p}: not a printed design (family={fh.attrs.get('family')!r}, "
                                    f"kind={fh.attrs.get('kind')!r})")
            try:
                return cls._from_file(fh)
            except KeyError as exc:
                raise DataFileError(f"{p}: a printed design lacking {exc}") from None

    @classmethod
    def _from_file(cls, fh: h5py.File) -> "Design":
        layers = tuple(int(n) for n in fh.attrs["layers"])
        values = tuple(_design_layer(fh[f"layers/{i}"]) for i in range(1, len(layers)))
        prov_group = fh["provenance"]
        prov = {f.name: _plain(prov_group.attrs[f.name]) for f in fields(Provenance)
                if f.name in prov_group.attrs or f.default is MISSING}
        pred = {f.name: _plain(fh["prediction"].attrs[f.name]) for f in fields(Prediction)}
        split = prov_group["split"].asstr()[()] if "split" in prov_group else None
        return cls(process=str(fh.attrs["process"]), sample=str(fh.attrs["sample"]),
                   rh_ohm_sq=float(fh.attrs["rh_ohm_sq"]), rl_ohm_sq=float(fh.attrs["rl_ohm_sq"]), layers=layers,
                   layer_values=values, input_offset=fh["input/offset"][()], input_scale=fh["input/scale"][()],
                   feature_names=tuple(str(s) for s in fh["input"].attrs["feature_names"]),
                   class_names=tuple(str(s) for s in fh["input"].attrs["class_names"]),
                   prediction=Prediction(**pred), provenance=Provenance(**prov), split=split)


def _design_layer(group: h5py.Group) -> DesignLayer:
    """One stored layer; the optional fields (defaults) may be absent, the others raise KeyError."""
    return DesignLayer(**{f.name: group[f.name][()] for f in fields(DesignLayer)
                          if f.name in group or f.default is MISSING})


def _plain(value):
    """h5py attribute -> Python scalar (numpy bool/int/float, bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value
