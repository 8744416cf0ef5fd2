"""The toy family's seam object: description, characteriser, model, and stage operations."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
import torch
from pydantic import Field

from labctl.bench_file import load_bench_file
from labctl.errors import ConfigError
from labctl.families.seam import (
    CharacterisationOutcome,
    DeviceDescription,
    OnChipOutcome,
    StepContext,
    StepOptions,
    TrainingOutcome,
)
from labctl.train.datasets import load_dataset
from labctl.train.loop import LoopSettings, nearest_level, train_device_model
from toy_family.device import COLUMNS, G_UNIT_S, LEVELS, ROWS, ToyLink

NAME = "toy"


class CharacteriseOptions(StepOptions):
    repeats: int = Field(default=5, ge=2, le=100, description="toy: readings per input and column")


class TrainOptions(StepOptions):
    dataset: str = Field(description="data set (a built-in name)")
    epochs: int = Field(default=150, ge=1, description="training epochs")
    seed: int = Field(default=0, ge=0, description="split and initialisation seed")


class ProgramOptions(StepOptions):
    pass


class EvaluateOptions(StepOptions):
    pass


def volts(data, features: np.ndarray) -> np.ndarray:
    """Input voltages: the features scaled to 0..1 V, and the bias row at 1 V."""
    unit = data.unit(features)
    return np.hstack([unit, np.ones((len(unit), 1))])


class ToyModel(torch.nn.Module):
    """The one model of the toy device: currents = inputs @ (gain * level * G_UNIT), gains drawn around the fit."""

    def __init__(self, gain: np.ndarray, gain_std: np.ndarray, seed: int) -> None:
        super().__init__()
        self.gain = torch.as_tensor(gain)
        self.gain_std = torch.as_tensor(gain_std)
        start = torch.randn(ROWS, COLUMNS, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        self.latent = torch.nn.Parameter(start)

    def codes(self) -> np.ndarray:
        return nearest_level(self.latent, LEVELS).detach().round().to(torch.int64).numpy()

    def forward(self, features: torch.Tensor, device: torch.Tensor) -> torch.Tensor:
        return features @ (device * nearest_level(self.latent, LEVELS)) * (G_UNIT_S * 1e6)

    def sample_devices(self, count: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [self.gain + self.gain_std * torch.randn(self.gain.shape, generator=generator, dtype=torch.float64)
                for _ in range(count)]

    def nominal_device(self) -> torch.Tensor:
        return self.gain


class ToyFamily:
    name = NAME
    summary = "test-only resistor array (5 x 3 conductances, levels -3..3)"
    parts = ("TOY-4x3",)
    bench_roles = ("meter",)
    step_options: Mapping[str, type[StepOptions]] = {"characterise": CharacteriseOptions, "train": TrainOptions,
                                                      "program": ProgramOptions, "evaluate": EvaluateOptions}
    simulator = None
    commands = None
    reporter = None
    replayer = None
    gui = None
    shipped_recipes: Mapping[str, Path] = {}

    def recognises(self, identify_payload: bytes) -> bool:
        return False  # the toy has no bridge: its bench files name the family

    def owns_file(self, attrs: Mapping[str, Any]) -> bool:
        return attrs.get("family") == NAME

    def _link(self, bench_file: Path) -> ToyLink:
        return ToyLink(load_bench_file(bench_file).bridge_port)

    def describe(self, bench_file: Path, context: StepContext) -> tuple[DeviceDescription, dict[str, str]]:
        part, serial = self._link(bench_file).identify()
        return DeviceDescription(NAME, part, serial, (ROWS, COLUMNS), tuple(map(float, LEVELS)), (0.0, 1.0), "V",
                                 attrs={"part": part, "serial": serial}), {}

    def characterise(self, out: Path, options: CharacteriseOptions, context: StepContext) -> CharacterisationOutcome:
        link = self._link(context.bench_file)
        description, _ = self.describe(context.bench_file, context)
        link.write_codes(np.ones((ROWS, COLUMNS), int))
        readings = np.stack([link.apply(np.eye(ROWS)) / G_UNIT_S for _ in range(options.repeats)])
        gain, gain_std = readings.mean(axis=0), readings.std(axis=0, ddof=1) / np.sqrt(options.repeats)
        with h5py.File(out, "w") as f:
            f.attrs.update({"family": NAME, "serial": description.serial, "part": description.part})
            f["raw/readings"] = readings
            f["calibration/gain"], f["calibration/gain_std"] = gain, gain_std
        return CharacterisationOutcome(out, description, (f"toy characterisation written to {out}",),
                                       {"gain_spread": float(gain.std())})

    def train(self, calibration: Path, out: Path, options: TrainOptions, context: StepContext) -> TrainingOutcome:
        with h5py.File(calibration, "r") as f:
            gain, gain_std, serial = f["calibration/gain"][()], f["calibration/gain_std"][()], f.attrs["serial"]
        data = load_dataset(options.dataset, seed=options.seed)
        if data.n_features != ROWS - 1 or data.n_classes != COLUMNS:
            raise ConfigError(f"the toy array takes {ROWS - 1} inputs to {COLUMNS}; {options.dataset} has {data.n_features} "
                              f"features and {data.n_classes} classes")
        model = ToyModel(gain, gain_std, options.seed)
        result = train_device_model(model, volts(data, data.X_train), data.y_train,
                                    LoopSettings(epochs=options.epochs, seed=options.seed), context.on_epoch)
        with torch.no_grad():
            test_scores = model.forward(torch.as_tensor(volts(data, data.X_test)), model.nominal_device())
        software = float((test_scores.argmax(1).numpy() == data.y_test).mean())
        with h5py.File(out, "w") as f:
            f.attrs.update({"family": NAME, "serial": serial, "dataset": options.dataset, "seed": options.seed,
                            "software_accuracy": software})
            f["codes"] = model.codes()
        return TrainingOutcome(out, options.dataset, software, f"toy weights -> {out} (software {software:.1%})",
                               {"best_epoch": result.best_epoch})

    def program(self, weights: Path, options: StepOptions, context: StepContext, *, evaluate: bool) -> OnChipOutcome:
        with h5py.File(weights, "r") as f:
            codes, attrs = f["codes"][()], dict(f.attrs)
        link = self._link(context.bench_file)
        if link.identify()[1] != attrs["serial"]:
            raise ConfigError(f"{weights} was trained for {attrs['serial']}, the bench holds {link.identify()[1]}")
        link.write_codes(codes)
        verified = bool(np.array_equal(link.read_codes(), codes))
        if not evaluate:
            return OnChipOutcome(verified, ("programmed and verified" if verified else "read-back differs",))
        data = load_dataset(str(attrs["dataset"]), seed=int(attrs["seed"]))
        predicted = link.apply(volts(data, data.X_test)).argmax(axis=1)
        accuracy = float((predicted == data.y_test).mean())
        return OnChipOutcome(verified, (f"on-chip accuracy {accuracy:.1%}",), accuracy,
                             float(attrs["software_accuracy"]), len(data.y_test))

    def write_records(self, run_dir: Path, weights_name: str, outcome: OnChipOutcome) -> list[Path]:
        path = run_dir / f"evaluation_{weights_name}.json"
        path.write_text(str(outcome.as_json()))
        return [path]


FAMILY = ToyFamily()
