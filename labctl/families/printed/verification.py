"""Verify a printed network against its design: classify the test split on the sample, measure its power.

A printed circuit cannot be reprogrammed, so "evaluate" is the last step of
the loop (characterise the process, train, export, print, verify): the
sample's accuracy and power are measured through the bench (contract 8.2)
and set beside what the design predicted for printed samples of its run
(the predicted 90 % interval of the accuracy, the predicted power). The
design must be the one the sample was printed from: same process, same
layers (the bench file names the job; its ID code is checked on the sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl.errors import ConfigError
from labctl.families.printed.dataset import BUILTIN, SplitData, load_task
from labctl.families.printed.design import Design
from labctl.families.printed.design_network import encode_inputs
from labctl.families.seam import Progress


@dataclass(frozen=True)
class Verification:
    """What the printed sample did, next to what its design predicted (fractions; W)."""

    design: Path
    sample: str
    printed_accuracy: float
    n_samples: int
    predicted_accuracy: float
    predicted_interval: tuple[float, float]
    software_accuracy: float
    supply_power_w: float | None
    predicted_power_w: float
    confusion: np.ndarray
    outputs_v: np.ndarray
    power_w: np.ndarray | None

    @property
    def inside_interval(self) -> bool:
        lo, hi = self.predicted_interval
        return lo <= self.printed_accuracy <= hi

    def as_json(self) -> dict[str, object]:
        """The keys ``labctl evaluate --json`` adds for a printed sample (issue 13)."""
        return {"printed_accuracy": self.printed_accuracy, "predicted_accuracy": self.predicted_accuracy,
                "predicted_interval": list(self.predicted_interval), "supply_power_w": self.supply_power_w,
                "predicted_power_w": self.predicted_power_w, "sample": self.sample}

    def summary_lines(self) -> list[str]:
        lo, hi = self.predicted_interval
        lines = [f"printed sample {self.sample}: accuracy {self.printed_accuracy:.1%} on {self.n_samples} test rows; "
                 f"the design predicted {self.predicted_accuracy:.1%} (90 % of printed samples within "
                 f"{lo:.1%} to {hi:.1%}{'' if self.inside_interval else ': OUTSIDE'}); software (nominal circuit) "
                 f"{self.software_accuracy:.1%}"]
        if self.supply_power_w is not None:
            lines.append(f"power {self.supply_power_w * 1e3:.4g} mW measured (mean over patterns), "
                         f"{self.predicted_power_w * 1e3:.4g} mW predicted")
        return lines


def test_rows(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """The design's test split (raw features, labels) from its data file, split as in training."""
    source = design.provenance.dataset
    if source not in BUILTIN and not Path(source).exists():
        raise ConfigError(f"the design's data file {source} is missing: the test split cannot be rebuilt")
    data = load_task(source, label_column=design.provenance.label_column, seed=design.provenance.split_seed)
    split = design.split if design.split is not None else data.split
    _require_same_data(design, data, split)
    test = split == "test"
    return data.features[test], data.labels[test]


def test_inputs(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """The test split as the printed circuit sees it: (input pad volts, labels); also the SPICE netlist's rows."""
    features, labels = test_rows(design)
    return encode_inputs(design, features), labels


def _require_same_data(design: Design, data: SplitData, split: np.ndarray) -> None:
    if len(split) != len(data.labels) or data.feature_names != design.feature_names:
        raise ConfigError(f"{data.source} is not the data the design was trained on (columns or rows differ)")


def verify_printed(bench_file: Path, design_path: Path, *, power_patterns: int | None = None,
                   progress: Progress | None = None, bench_options: dict | None = None) -> Verification:
    """Classify the design's test split on the printed sample of ``bench_file`` (and measure its power)."""
    from labctl.families.printed.bench_file import load_printed_bench_file, require_same_process
    from labctl.families.printed.network_link import measure_patterns

    design = Design.read(design_path)
    config = load_printed_bench_file(bench_file)
    require_same_process(config, design.process, f"design {design_path}")
    if config.sample_kind != "network":
        raise ConfigError(f"bench file {bench_file}: the sample is {config.sample_kind}, not a printed network")
    volts, labels = test_inputs(design)
    n_power = len(volts) if power_patterns is None else min(power_patterns, len(volts))
    readings = measure_patterns(bench_file, volts, power_rows=n_power, progress=progress,
                                **(bench_options or {}))
    outputs = np.asarray(readings.outputs_v)
    if outputs.shape[1] != len(design.class_names):
        raise ConfigError(f"the printed sample has {outputs.shape[1]} class outputs, the design "
                          f"{len(design.class_names)}: it was not printed from this design")
    predicted = outputs.argmax(axis=1)
    confusion = np.zeros((len(design.class_names),) * 2, dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    power = None if readings.power_w is None else np.asarray(readings.power_w)
    p = design.prediction
    return Verification(design_path, config.sample_id, float(np.mean(predicted == labels)), len(labels),
                        p.test_mean, (p.test_q05, p.test_q95), p.software_accuracy,
                        float(power.mean()) if power is not None and power.size else None, p.power_w, confusion,
                        outputs, power)
