"""Typed records between the CMNA stages, and the files they are stored in (layouts unchanged).

- ``read_raw`` gives :class:`RawTables`; a file written before the ``done`` table existed still reads.
- The characterisation flags are one :class:`NeuronFlags` per layer, stored as
  ``/flags/layer_{l}/{name}`` as before.
- A weight set's :class:`TrainingProvenance` is typed (ints, bools, tuples) and stored as the JSON
  attribute ``metadata`` of strings it always was: old files load, and the old reader's sense of a new
  file (``json.loads`` and ``int(...)``) is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl.errors import DataFileError
from labctl.families.cmna.characterisation.flags import NeuronFlags
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.storage import (
    CharacterisationFile,
    RawTables,
    load_flags,
    load_weights,
    read_raw,
    save_weights,
    write_calibration,
)
from labctl.families.cmna.weights import InputEncoding, TrainingProvenance, WeightSet

CHIP = ChipDescription(
    serial="TEST", protocol=1, firmware=(1, 0), layer_sizes=(7, 7, 7), magnitude_bits=3, dac_bits=12,
    dac_lsb_a=1e-10, c2f_gain_hz_per_a=1e12, max_gate_ms=1000, max_payload=1024,
)
OLD_METADATA = {"trainer": "labctl.train", "loss": "margin", "seed": "3", "model": "measured",
                "layer_sizes_used": "4,7,3", "rounding": "ste", "fine_tuned": "True", "distilled": "False",
                "dataset_source": "data/toy.csv", "label_column": "kind", "split_seed": "5",
                "training_method": "finetune", "stuck_bits": "2", "in_situ_rounds": "1"}
"""A weights file's ``metadata`` as labctl wrote it before the typed record."""


def characterisation(path: Path, configs: int = 2) -> Path:
    store = CharacterisationFile.create(path, CHIP, "bench", {}, swmr=False)
    nibbles = [np.zeros(CHIP.matrix_shape(m), np.uint8) for m in range(CHIP.n_matrices)]
    for config in range(configs):
        store.append_config(config, "dark", {}, nibbles)
    store.mark_done(0, ["dark", 0])
    store.close()
    return path


def test_raw_tables_are_named_and_done_is_optional(tmp_path: Path) -> None:
    raw = read_raw(characterisation(tmp_path / "die.h5"))
    assert isinstance(raw, RawTables) and len(raw.configs) == len(raw.config_codes) == 2
    assert len(raw.mon) == len(raw.c2f) == 0 and raw.finished_configs() == {0}
    with h5py.File(tmp_path / "die.h5", "r+") as f:  # a file from before resume existed
        del f["raw/done"]
    old = read_raw(tmp_path / "die.h5")
    assert old.done is None and old.finished_configs() == {0, 1}
    with h5py.File(tmp_path / "die.h5", "r+") as f:
        del f["raw/mon"]
    with pytest.raises(DataFileError, match=r"/raw lacks mon"):
        read_raw(tmp_path / "die.h5")


def test_flags_keep_their_file_layout(tmp_path: Path) -> None:
    path = characterisation(tmp_path / "die.h5")
    both = [NeuronFlags(methods_disagree=np.arange(7) == l, poor_fit=np.zeros(7, bool), unmeasured=np.arange(7) <= l)
            for l in range(3)]
    write_calibration(path, DieParameters.nominal(CHIP), flags=both)
    with h5py.File(path, "r") as f:
        assert sorted(f["flags"]) == ["layer_0", "layer_1", "layer_2"]
        assert sorted(f["flags/layer_1"]) == ["methods_disagree", "poor_fit", "unmeasured"]
        assert f["flags/layer_1/methods_disagree"].dtype == bool
        np.testing.assert_array_equal(f["flags/layer_2/unmeasured"][()], np.arange(7) <= 2)
    loaded = load_flags(path)
    assert [f.count() for f in loaded] == [2, 3, 4] and loaded[2].names_at(2) == ["methods_disagree", "unmeasured"]
    assert loaded[2].names_at(1) == ["unmeasured"] and loaded[2].any(7).sum() == 3
    one_method = [NeuronFlags(poor_fit=np.ones(7, bool), unmeasured=np.zeros(7, bool)) for _ in range(3)]
    write_calibration(path, DieParameters.nominal(CHIP), flags=one_method)
    loaded = load_flags(path)
    assert loaded[0].methods_disagree is None and list(loaded[0].present()) == ["poor_fit", "unmeasured"]
    assert loaded[0].any(7).all() and loaded[0].count() == 7
    with h5py.File(path, "r+") as f:  # fits missing: nothing flagged
        del f["flags"]
    assert all(f.present() == {} and not f.any(7).any() for f in load_flags(path))


def weights_of(provenance: TrainingProvenance) -> WeightSet:
    encoding = InputEncoding(np.zeros(4), np.ones(4), np.arange(4), np.zeros(7, np.int64), np.arange(3))
    codes = [np.zeros(CHIP.matrix_shape(m), np.int8) for m in range(CHIP.n_matrices)]
    return WeightSet("TEST", CHIP.layer_sizes, codes, encoding, "toy", 0.5, provenance=provenance)


def test_provenance_of_an_old_weights_file_is_typed(tmp_path: Path) -> None:
    path = tmp_path / "weights.h5"
    save_weights(path, weights_of(TrainingProvenance()))
    with h5py.File(path, "r+") as f:
        f.attrs["metadata"] = json.dumps(OLD_METADATA | {"from_the_future": "x"})
    p = load_weights(path).provenance
    assert (p.seed, p.split_seed, p.stuck_bits, p.in_situ_rounds) == (3, 5, 2, 1)
    assert p.layer_sizes_used == (4, 7, 3) and p.fine_tuned is True and p.distilled is False
    assert (p.model, p.training_method, p.dataset_source, p.label_column) == ("measured", "finetune", "data/toy.csv",
                                                                              "kind")
    assert p.reference is None and p.other == {"from_the_future": "x"}
    save_weights(tmp_path / "again.h5", load_weights(path))  # unknown entries survive a round trip
    with h5py.File(tmp_path / "again.h5", "r") as f:
        assert json.loads(f.attrs["metadata"]) == OLD_METADATA | {"from_the_future": "x"}
    with h5py.File(path, "r+") as f:  # written before any metadata
        del f.attrs["metadata"]
    assert load_weights(path).provenance == TrainingProvenance()
    with h5py.File(path, "r+") as f:
        f.attrs["metadata"] = json.dumps({"seed": "three"})
    with pytest.raises(DataFileError, match="weights file is incomplete or inconsistent"):
        load_weights(path)


def test_new_weights_files_read_as_before(tmp_path: Path) -> None:
    provenance = TrainingProvenance(trainer="labctl.train", seed=3, model="nominal", layer_sizes_used=(4, 7, 3),
                                    fine_tuned=False, dataset_source="iris", split_seed=0, training_method="scratch")
    save_weights(tmp_path / "weights.h5", weights_of(provenance))
    with h5py.File(tmp_path / "weights.h5", "r") as f:
        stored = json.loads(f.attrs["metadata"])
    assert stored == {"trainer": "labctl.train", "seed": "3", "model": "nominal", "layer_sizes_used": "4,7,3",
                      "fine_tuned": "False", "dataset_source": "iris", "split_seed": "0", "training_method": "scratch"}
    assert all(isinstance(v, str) for v in stored.values())  # what the old reader parsed with int(...)
    assert load_weights(tmp_path / "weights.h5").provenance == provenance


def test_retrained_provenance_keeps_its_starts_split() -> None:
    start = TrainingProvenance(seed=1, split_seed=4, training_method="finetune", label_column="kind", model="nominal")
    retrained = TrainingProvenance(seed=1, model="measured", fine_tuned=True).over(start)
    assert (retrained.split_seed, retrained.training_method, retrained.label_column) == (4, "finetune", "kind")
    assert retrained.model == "measured" and retrained.fine_tuned is True
