"""The session record: one ``session.h5`` per run with everything needed to replay it (issue 7).

A :class:`SessionRecorder` listens to the bench while a run goes on (its
:meth:`~SessionRecorder.bench_options` go to :class:`labctl.families.cmna.bench.Bench`):
every bridge transaction (contract section 2: seq, op, request payload,
status, answer payload, duration) and every SMU reading (role, quantity,
value), each with its time. At the end it writes them, with the bench identity
(IDENTIFY, instrument IDNs, bench file), the recipe, and copies of the
characterisation and weights files of the run folder, into one HDF5 file.

Layout of ``session.h5``:

| path | content |
| --- | --- |
| attrs `kind` = "session", `format`, `labctl_version`, `created`, `recipe_name`, `outcome` | provenance |
| `/recipe` | the recipe's TOML text |
| `/bench` (attrs: the die as IDENTIFY reported it) | `bench_file` text; attrs `instruments` (JSON name -> IDN) |
| `/transactions/table` | time_s, seq, op, status (-1: no answer), duration_s, attempts, offsets into the byte pools |
| `/transactions/request_bytes`, `response_bytes` | request payloads and answer payloads (after the status byte), concatenated |
| `/readings` | time_s, role, quantity, value (SI units) |
| `/steps` | index, kind, params (JSON), start and end time, outcome |
| `/characterisation` | a copy of the run's `die.h5` (raw readings, fits) |
| `/weights/<name>` | a copy of each `weights_<name>.h5` |
| `/results/<file stem>` | the run folder's training, programming and evaluation JSON |

Times are seconds since the epoch. The bridge stamps a transaction with
``time.monotonic()``; the recorder stamps readings and steps on that same
clock as they arrive, and shifts all of them to the epoch by one offset taken
at the start. Replay orders readings against transactions by these times, so
they must come from one clock: two clocks read a few microseconds apart
misorder a reading and the transaction just before it whenever the process is
preempted between the two reads.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from labctl import __version__
from labctl.families.seam import DeviceDescription
from labctl.drivers.bridge import Transaction
from labctl.errors import DataFileError
from labctl.files import atomic_output, partial_path
from labctl.readings import Reading

FORMAT = "labctl.session/1"
NO_ANSWER = -1
"""``status`` of a transaction the bridge never answered."""

TRANSACTION_DTYPE = np.dtype([
    ("time_s", "f8"), ("seq", "u1"), ("op", "u1"), ("status", "i2"), ("duration_s", "f8"), ("attempts", "u2"),
    ("request_offset", "u8"), ("request_length", "u4"), ("response_offset", "u8"), ("response_length", "u4"),
])
READING_DTYPE = np.dtype([("time_s", "f8"), ("role", "S10"), ("quantity", "S10"), ("value", "f8")])
STEP_DTYPE = np.dtype([
    ("index", "i4"), ("kind", "S16"), ("params", h5py.string_dtype()), ("start_s", "f8"), ("end_s", "f8"),
    ("outcome", h5py.string_dtype()),
])


@dataclass
class RecordedStep:
    """One recipe step of a session: when it ran and how it ended."""

    index: int
    kind: str
    params: dict[str, Any]
    """The step's options as the recipe gave them (``/steps`` stores them as JSON)."""
    start_s: float
    end_s: float = float("nan")
    """NaN while the step runs (and in a session whose process died during it)."""
    outcome: str = "running"


class SessionRecorder:
    """Collects transactions and readings from any thread; :meth:`write` stores them.

    ``on_transaction`` and ``on_reading`` are called with each record as it
    arrives (in the thread that made it), e.g. to feed a live display.
    """

    def __init__(self, *, on_transaction: Callable[[Transaction], None] | None = None,
                 on_reading: Callable[[Reading], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._transactions: list[Transaction] = []
        self._readings: list[Reading] = []
        self._steps: list[RecordedStep] = []
        self._identity: tuple[DeviceDescription, dict[str, str], str] | None = None
        self._monotonic_to_epoch_s = time.time() - time.monotonic()
        self._on_transaction = on_transaction
        self._on_reading = on_reading

    def bench_options(self) -> dict:
        """Keyword arguments for :class:`labctl.families.cmna.bench.Bench` (and the workflow's ``bench_options``)."""
        return {"transcript": self.record_transaction, "on_reading": self.record_reading}

    def record_transaction(self, tx: Transaction) -> None:
        with self._lock:
            self._transactions.append(tx)
        if self._on_transaction:
            self._on_transaction(tx)

    def _now(self) -> float:
        """Epoch seconds on the transactions' clock."""
        return time.monotonic() + self._monotonic_to_epoch_s

    def record_reading(self, reading: Reading) -> None:
        reading = replace(reading, time_s=self._now())
        with self._lock:
            self._readings.append(reading)
        if self._on_reading:
            self._on_reading(reading)

    def set_identity(self, description: DeviceDescription, instruments: dict[str, str], bench_text: str) -> None:
        self._identity = (description, dict(instruments), bench_text)

    def begin_step(self, index: int, kind: str, params: dict[str, Any]) -> None:
        with self._lock:
            # the options as /steps will store them (a copy, and refused now if JSON cannot hold them)
            self._steps.append(RecordedStep(index, kind, json.loads(json.dumps(params)), self._now()))

    def end_step(self, index: int, outcome: str) -> None:
        with self._lock:
            for step in self._steps:
                if step.index == index and step.outcome == "running":
                    step.end_s, step.outcome = self._now(), outcome

    def end_open_step(self, outcome: str) -> None:
        """Close a step that a stop or an error interrupted."""
        with self._lock:
            open_steps = [s.index for s in self._steps if s.outcome == "running"]
        for index in open_steps:
            self.end_step(index, outcome)

    @property
    def n_transactions(self) -> int:
        return len(self._transactions)

    @property
    def n_readings(self) -> int:
        return len(self._readings)

    def write(self, path: str | Path, *, recipe_text: str, recipe_name: str, outcome: str,
              files: list[Path]) -> Path:
        """Write ``session.h5`` with copies of the run's ``files``: ``die.h5``, ``weights_<name>.h5``,
        and the training, programming and evaluation JSON (other files are not copied). A run stopped during
        its characterisation has ``die.partial.h5`` instead of ``die.h5``: that is copied. The file is written
        under a temporary name and moved over ``path`` when complete."""
        p = Path(path)
        with self._lock:
            transactions, readings = list(self._transactions), list(self._readings)
            steps = [(s.index, s.kind, json.dumps(s.params, sort_keys=True), s.start_s, s.end_s, s.outcome)
                     for s in self._steps]
        with atomic_output(p) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update({"kind": "session", "format": FORMAT, "labctl_version": __version__,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "recipe_name": recipe_name,
                            "outcome": outcome})
            f.create_dataset("recipe", data=recipe_text)
            self._write_bench(f)
            self._write_transactions(f.create_group("transactions"), transactions)
            rows = np.array([(r.time_s, r.role, r.quantity, r.value) for r in readings], READING_DTYPE)
            f.create_dataset("readings", data=rows).attrs["units"] = "time_s: s since the epoch; value: SI (A, V)"
            f.create_dataset("steps", data=np.array(steps, STEP_DTYPE))
            weights, results = f.create_group("weights"), f.create_group("results")
            for file in files:
                if not file.exists():
                    continue
                if file.name in ("die.h5", partial_path("die.h5").name):
                    if "characterisation" not in f:
                        _copy_file(file, f, "characterisation")
                elif file.name.startswith("weights_") and file.suffix == ".h5":
                    _copy_file(file, weights, file.stem.removeprefix("weights_"))
                elif file.suffix == ".json":
                    results.create_dataset(file.stem, data=file.read_text())
        return p

    def _write_bench(self, f: h5py.File) -> None:
        bench = f.create_group("bench")
        if self._identity is None:
            return
        description, instruments, bench_text = self._identity
        for key, value in description.attrs.items():
            bench.attrs[key] = value
        bench.attrs["family"] = description.family
        bench.attrs["instruments"] = json.dumps(instruments, sort_keys=True)
        bench.create_dataset("bench_file", data=bench_text)

    def _write_transactions(self, g: h5py.Group, transactions: list[Transaction]) -> None:
        table = np.zeros(len(transactions), TRANSACTION_DTYPE)
        requests, responses = bytearray(), bytearray()
        for i, tx in enumerate(transactions):
            table[i] = (tx.time_s + self._monotonic_to_epoch_s, tx.seq, int(tx.op),
                        NO_ANSWER if tx.status is None else int(tx.status), tx.duration_s, tx.attempts,
                        len(requests), len(tx.request), len(responses), len(tx.response))
            requests += tx.request
            responses += tx.response
        g.create_dataset("table", data=table).attrs["units"] = "time_s: s since the epoch; duration_s: s"
        g.create_dataset("request_bytes", data=np.frombuffer(bytes(requests), np.uint8))
        g.create_dataset("response_bytes", data=np.frombuffer(bytes(responses), np.uint8))
        g.attrs["meaning"] = ("one row per request (contract section 2); payload bytes are slices of the pools; "
                              "response = answer payload after the status byte")


def _copy_file(source: Path, dest: h5py.Group, name: str) -> None:
    """Copy a whole HDF5 file (its root group with attributes) into ``dest/name``."""
    with h5py.File(source, "r") as src:
        src.copy(src["/"], dest, name)


# -- reading a session ------------------------------------------------------------------


@dataclass
class RecordedSession:
    """A session file read back (for replay)."""

    path: Path
    recipe_text: str
    recipe_name: str
    outcome: str
    family: str
    """The device family that ran the session (sessions recorded before the seam: CMNA's)."""
    device_attrs: dict[str, Any]
    """The device as it described itself (the family's attributes: CMNA's IDENTIFY answer)."""
    instruments: dict[str, str]
    bench_text: str
    transactions: np.ndarray
    request_bytes: bytes
    response_bytes: bytes
    readings: np.ndarray
    steps: list[RecordedStep]
    """Every step that started."""
    weights_names: list[str]
    results: dict[str, dict]

    def request(self, i: int) -> bytes:
        row = self.transactions[i]
        start = int(row["request_offset"])
        return self.request_bytes[start:start + int(row["request_length"])]

    def response(self, i: int) -> bytes:
        row = self.transactions[i]
        start = int(row["response_offset"])
        return self.response_bytes[start:start + int(row["response_length"])]


def session_path(path: str | Path) -> Path:
    """A run folder or a session file -> the session file."""
    p = Path(path)
    return p / "session.h5" if p.is_dir() else p


def load_session(path: str | Path) -> RecordedSession:
    p = session_path(path)
    if not p.exists():
        raise DataFileError(f"{p}: no such session file (record one with `labctl run`)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataFileError(f"{p}: not a readable HDF5 file ({exc})") from None
    with f:
        if f.attrs.get("kind") != "session":
            raise DataFileError(f"{p}: not a labctl session file (kind={f.attrs.get('kind')!r})")
        if "serial" not in f["bench"].attrs:
            raise DataFileError(f"{p}: the session ended before the bench was identified; nothing to replay")
        tx = f["transactions"]
        return RecordedSession(
            path=p, recipe_text=_text(f["recipe"]), recipe_name=str(f.attrs.get("recipe_name", "")),
            outcome=str(f.attrs.get("outcome", "")),
            family=str(f["bench"].attrs.get("family", "cmna")),
            device_attrs={k: v for k, v in f["bench"].attrs.items() if k not in ("family", "instruments")},
            instruments=json.loads(f["bench"].attrs.get("instruments", "{}")),
            bench_text=_text(f["bench/bench_file"]),
            transactions=tx["table"][()], request_bytes=tx["request_bytes"][()].tobytes(),
            response_bytes=tx["response_bytes"][()].tobytes(), readings=f["readings"][()],
            steps=[RecordedStep(int(r["index"]), _str(r["kind"]), json.loads(_str(r["params"])), float(r["start_s"]),
                                float(r["end_s"]), _str(r["outcome"])) for r in f["steps"][()]],
            weights_names=sorted(f["weights"]), results={k: json.loads(_text(v)) for k, v in f["results"].items()},
        )


def extract(path: str | Path, group: str, out: str | Path) -> Path:
    """Write a copied file back out of a session: ``characterisation`` or ``weights/<name>``."""
    p, out = session_path(path), Path(out)
    with h5py.File(p, "r") as f:
        if group not in f:
            raise DataFileError(f"{p}: has no /{group}")
        src = f[group]
        with atomic_output(out) as tmp, h5py.File(tmp, "w") as dst:
            dst.attrs.update(dict(src.attrs))
            for name in src:
                f.copy(src[name], dst, name)
    return out


def _text(ds: h5py.Dataset) -> str:
    return _str(ds[()])


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
