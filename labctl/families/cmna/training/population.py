"""Pre-training once per part and data set, on dies drawn from the contract's spreads, cached on disk.

Seed 004's discussion asks how per-die training could be shortened and
proposes to start from a pre-trained network and fine-tune it for each die.
Pre-training makes two networks, both from the contract alone (nothing here
looks at a simulator):

- the *reference*: the network for a perfect die (nominal gains, trained
  with the contract's typical synapse spread as noise). It is what every die
  should compute: its accuracy on a perfect die is the ideal software
  accuracy, and programmed as it is, it is the naive baseline;
- the *population network*: the reference's function trained for the
  population of dies that contract section 1 describes
  (:class:`labctl.families.cmna.training.variation.ContractPopulation`: soma gains 10 to 25 %,
  a-/a+ 5 to 15 %, synapse bits 2 to 8 %, bias and C2F spreads, leakage),
  distilled from the reference's decisions. It already works on a typical die
  and is where fine-tuning (:func:`labctl.families.cmna.training.trainer.finetune`) starts:
  fine-tuning then only adapts it to the gains one characterisation measured,
  again with the reference's decisions as targets.

The result is a :class:`labctl.families.cmna.training.networks.PretrainedNetwork`
(defined beside the trainer's types, so that this module imports the trainer
and the trainer never imports this one). Both networks are cached as ``.npz``
(codes and float stores in code units, plus what they were trained for) under
``~/.cache/labctl/pretrained`` (or ``$XDG_CACHE_HOME/labctl``, or the
``cache_dir`` argument); the file name holds a hash of everything that
determines them, so a changed data set, geometry or recipe trains afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.train.datasets import Dataset
from labctl.families.cmna.training.networks import PretrainedNetwork, Progress, Teacher
from labctl.families.cmna.training.trainer import train_weights

RECIPE_VERSION = 2
"""Bump when the training recipe changes, so that caches are not reused across recipes."""
DEFAULT_RESTARTS = 4


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labctl"


def pretrain_population(
    chip_like: ChipDescription,
    dataset: Dataset,
    *,
    hidden: tuple[int, ...] | None = None,
    seed: int = 0,
    epochs: int | None = None,
    restarts: int = DEFAULT_RESTARTS,
    cache_dir: str | Path | None = None,
    refresh: bool = False,
    progress: Progress | None = None,
) -> PretrainedNetwork:
    """Train (or load from the cache) the reference and population networks for dies like ``chip_like``.

    Only the geometry and the DAC and C2F constants of ``chip_like`` matter.
    ``restarts`` applies to each of the two trainings.
    """
    path, recipe, key = _cache_entry(chip_like, dataset, hidden, seed, epochs, restarts, cache_dir)
    if path.is_file() and not refresh:
        return _load(path, key, dataset)
    started = time.perf_counter()
    nominal = DieParameters.nominal(chip_like)
    reference, _ = train_weights(nominal, dataset, hidden=hidden, naive=True, seed=seed, epochs=epochs,
                                 restarts=restarts, progress=progress)
    _, report = train_weights(nominal, dataset, hidden=hidden, seed=seed, epochs=epochs, restarts=restarts,
                              population=True, teacher=Teacher(reference, nominal), progress=progress)
    seconds = time.perf_counter() - started
    meta = {"layer_sizes": list(chip_like.layer_sizes), "layer_sizes_used": list(report.layer_sizes_used),
            "starts": len(report.stores), "seconds": seconds, "recipe": recipe,
            "reference_accuracy": reference.software_accuracy}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    arrays = {f"start_{i}_matrix_{m}": a for i, store in enumerate(report.stores) for m, a in enumerate(store)}
    arrays |= {f"reference_matrix_{m}": c for m, c in enumerate(reference.codes)}
    with partial.open("wb") as f:
        np.savez(f, meta=json.dumps(meta), **arrays)
    os.replace(partial, path)
    return PretrainedNetwork(tuple(chip_like.layer_sizes), tuple(report.layer_sizes_used), dataset.name,
                             report.stores, list(reference.codes), key, seconds, path=path)


def cached_pretraining(chip_like: ChipDescription, dataset: Dataset, *, hidden: tuple[int, ...] | None = None,
                       seed: int = 0, epochs: int | None = None, restarts: int = DEFAULT_RESTARTS,
                       cache_dir: str | Path | None = None) -> PretrainedNetwork | None:
    """The cached pre-training for these arguments, or None if :func:`pretrain_population` would have to train."""
    path, _, key = _cache_entry(chip_like, dataset, hidden, seed, epochs, restarts, cache_dir)
    return _load(path, key, dataset) if path.is_file() else None


def _cache_entry(chip_like: ChipDescription, dataset: Dataset, hidden: tuple[int, ...] | None, seed: int,
                 epochs: int | None, restarts: int, cache_dir: str | Path | None) -> tuple[Path, dict, str]:
    """Cache file, recipe and key: the key hashes everything that determines the pre-trained networks."""
    recipe = {
        "version": RECIPE_VERSION, "layer_sizes": list(chip_like.layer_sizes),
        "dac_lsb_a": chip_like.dac_lsb_a, "dac_bits": chip_like.dac_bits,
        "magnitude_bits": chip_like.magnitude_bits, "c2f_gain_hz_per_a": chip_like.c2f_gain_hz_per_a,
        "dataset": dataset.name, "data": _data_hash(dataset), "hidden": list(hidden) if hidden else None,
        "seed": seed, "epochs": epochs, "restarts": restarts,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    geometry = "-".join(str(n) for n in chip_like.layer_sizes)
    return Path(cache_dir or default_cache_dir()) / "pretrained" / f"{dataset.name}-{geometry}-{key}.npz", recipe, key


def _load(path: Path, key: str, dataset: Dataset) -> PretrainedNetwork:
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        n_matrices = len(meta["layer_sizes"]) - 1
        stores = [[f[f"start_{i}_matrix_{m}"] for m in range(n_matrices)] for i in range(meta["starts"])]
        reference = [f[f"reference_matrix_{m}"] for m in range(n_matrices)]
    return PretrainedNetwork(tuple(meta["layer_sizes"]), tuple(meta["layer_sizes_used"]), dataset.name,
                             stores, reference, key, float(meta["seconds"]), from_cache=True, path=path)


def _data_hash(dataset: Dataset) -> str:
    h = hashlib.sha256()
    for a in (dataset.X_train, dataset.y_train, dataset.feature_offset, dataset.feature_scale):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
