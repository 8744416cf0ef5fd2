"""Characterise a die end to end: probe, record, fit, store.

The order matters for the data, not for safety (the bench owns safety): raw
readings are appended as they are taken, the file is closed before any fit is
attempted, so an interrupted or failed run keeps every reading; fits are
written afterwards and can be redone from the file alone
(:func:`refit`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from labctl.bench import Bench
from labctl.calibration.analysis import METHODS, AnalysisResult, analyse
from labctl.calibration.configurations import chain_config, chain_shift_plan
from labctl.calibration.probing import FIRST_CHAIN, ProbeSettings, Progress, Prober
from labctl.errors import ConfigError
from labctl.hdf5_store import CharacterisationFile, read_chip, read_raw, write_calibration


def default_config_count(layer_sizes: tuple[int, ...]) -> int:
    """Enough chain configurations that every neuron sees several sources (7 on CMNA-777)."""
    return int(min(max(layer_sizes[0], 4), 8))


def characterise(bench: Bench, out_path: str | Path, *, method: str = "both",
                 settings: ProbeSettings | None = None, n_configs: int | None = None,
                 seed: int = 0, progress: Progress | None = None) -> AnalysisResult:
    """Measure every neuron of the die on ``bench`` and write ``out_path``."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    settings = settings or ProbeSettings()
    if method == "network":
        settings.read_mon = False
    chip = bench.chip
    n_configs = n_configs or default_config_count(chip.layer_sizes)
    parameters = {"method": method, "n_configs": n_configs, "seed": seed, "settings": asdict(settings)}
    store = CharacterisationFile.create(out_path, chip, bench.config.text, parameters)
    try:
        bench.power_up()
        bench.bridge.reset()
        prober = Prober(bench, store, settings, progress)
        prober.dark()
        if method != "network":
            prober.ext_in_sweep()
            prober.bias_sweep()
        plan = chain_shift_plan(chip, n_configs, seed=seed)
        config_id = FIRST_CHAIN
        for k, shifts in enumerate(plan):
            top = prober.chain(config_id, chain_config(chip, shifts))
            config_id += 1
            if method != "network":
                prober.chain(config_id, chain_config(chip, shifts, with_negatives=True), top_code=top)
                config_id += 1
            if progress:
                progress("chain configurations", k + 1, len(plan))
    finally:
        store.close()
    return refit(out_path, method)


def refit(path: str | Path, method: str = "both") -> AnalysisResult:
    """Fit (again) from the raw records of a characterisation file and store the fits."""
    chip = read_chip(path)
    result = analyse(chip, read_raw(path), method)
    write_calibration(path, result.params, result.methods, result.flags, result.summary)
    return result
