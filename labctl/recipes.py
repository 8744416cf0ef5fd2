"""Recipes: a TOML file that names the steps of a run and their parameters (issue 7).

A recipe is what a lab engineer hands to ``labctl run`` or to the GUI's one
button, so both run exactly the same thing::

    name = "Iris on CMNA-777"
    part = "CMNA-777"            # checked against the die on the bench (IDENTIFY)
    run_dir = "runs/iris-{time}" # optional; --run-dir overrides

    [[steps]]
    kind = "characterise"        # characterise | train | program | evaluate
    method = "both"

    [[steps]]
    kind = "train"
    name = "tailored"
    dataset = "iris"

    [[steps]]
    kind = "evaluate"
    weights = "tailored"         # the name of an earlier train step

Every problem is one line naming the file, the line and the key, before the
bench is touched. :func:`run_recipe` runs the steps through
:mod:`labctl.families.cmna.workflow` (the functions the CLI commands use); everything goes
into one run folder, and a :class:`~labctl.session.SessionRecorder` passed in
records every bridge transaction and SMU reading into ``session.h5``.

Stopping: when ``stop_event`` is set, the next progress report raises
:class:`Stopped`; the bench's context manager then turns every output off
(contract section 3) and the files keep what was measured.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.chip import ChipDescription
from labctl.errors import ConfigError, LabctlError
from labctl.session import SessionRecorder
from labctl.toml_files import parse_toml, read_user_file

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
"""The recipes shipped with labctl (``recipes/`` of the source tree)."""
DEFAULT_RECIPE = RECIPES_DIR / "train_and_program.toml"
"""What the GUI's "Train and program" button runs unless told otherwise."""
PART_RECIPES = {"CMNA-777": RECIPES_DIR / "iris_cmna777.toml", "CMNA-L": RECIPES_DIR / "mnist_cmnal.toml"}

Progress = Callable[[str, int, int], None]
_NAME = r"^[A-Za-z0-9_.-]+$"


class Stopped(LabctlError):
    """The user asked to stop; raised from a progress report, so the bench turns every output off."""


# -- the schema ---------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CharacteriseStep(_Strict):
    """Measure every neuron (``labctl characterise``); writes ``die.h5`` in the run folder."""

    kind: Literal["characterise"]
    method: Literal["network", "mon", "both"] = "both"
    configs: int | None = Field(default=None, ge=1, le=200, description="chain configurations")
    levels: int | None = Field(default=None, ge=2, le=50, description="drive levels per configuration")
    gate_ms: int | None = Field(default=None, ge=1, le=65535, description="C2F gate per reading")
    nplc: float | None = Field(default=None, gt=0, le=25, description="SMU integration time")
    target_a_plus: float | None = Field(default=None, gt=0, lt=1, description="relative precision of a+ to stop at")
    target_ratio: float | None = Field(default=None, gt=0, lt=1, description="relative precision of a-/a+")
    time_budget_s: float | None = Field(default=None, gt=0, description="bench time after which to stop")
    linear_range: Literal["off", "input", "all"] | None = Field(
        default=None, description="whose compression onsets to measure (default: all on small dies, input on large)")


class TrainStep(_Strict):
    """Train weights for the characterised die (``labctl train``); writes ``weights_<name>.h5``."""

    kind: Literal["train"]
    dataset: str
    name: str | None = Field(default=None, pattern=_NAME, description="default: tailored or naive")
    naive: bool = False
    method: Literal["auto", "finetune", "scratch"] = Field(
        default="auto", description="finetune: from the part's pre-trained network; scratch: from random weights; "
                                    "auto: scratch for small networks, finetune for large ones")
    label_column: str | None = Field(default=None, description="CSV data: the class column (default: the last)")
    hidden: list[Annotated[int, Field(ge=1)]] | None = None
    epochs: int | None = Field(default=None, ge=1, le=10000)
    seed: int = Field(default=0, ge=0)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        from labctl.train.datasets import BUILTIN

        if value not in BUILTIN and not value.lower().endswith(".csv"):
            raise ValueError(f"unknown data set {value!r}: use one of {', '.join(BUILTIN)} or a .csv path")
        return value

    @property
    def weights_name(self) -> str:
        return self.name or ("naive" if self.naive else "tailored")


class ProgramStep(_Strict):
    """Write weights into the latches and verify them (``labctl program``)."""

    kind: Literal["program"]
    weights: str = Field(pattern=_NAME, description="name of an earlier train step")
    keep_powered: bool = False
    retrain: bool = Field(default=True, description="tailored weights: retrain around stuck bits, in-situ rounds")
    in_situ_rounds: int = Field(default=1, ge=0, le=5)


class EvaluateStep(ProgramStep):
    """Program, verify and classify the test split on the die (``labctl evaluate``)."""

    kind: Literal["evaluate"]  # type: ignore[assignment]
    gate_ms: int = Field(default=20, ge=1, le=65535)


Step = Annotated[Union[CharacteriseStep, TrainStep, ProgramStep, EvaluateStep], Field(discriminator="kind")]
STEP_KINDS = ("characterise", "train", "program", "evaluate")


class Recipe(_Strict):
    name: str = Field(min_length=1)
    part: str | None = Field(default=None, description="expected part (CMNA-777, CMNA-L); none: any die")
    run_dir: str | None = Field(default=None, description="run folder; {time} becomes the start time")
    description: str = ""
    steps: list[Step] = Field(min_length=1)

    def train_steps(self) -> dict[str, TrainStep]:
        return {s.weights_name: s for s in self.steps if isinstance(s, TrainStep)}


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe with its text (stored in the session record) and where it came from."""

    recipe: Recipe
    text: str
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.recipe.name


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Read and validate a recipe file; ConfigError names the file, the line and the key at fault."""
    return parse_recipe(read_user_file(path, "recipe"), source=Path(path))


def parse_recipe(text: str, source: Path | None = None) -> LoadedRecipe:
    where = f"recipe {source}" if source else "recipe"
    raw = parse_toml(text, where)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _key_path(err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += ("kind",)
        raise ConfigError(f"{where}{_at_line(text, loc)}: {_dotted(loc)}: {_message(err)}") from None
    _check_references(recipe, text, where)
    return LoadedRecipe(recipe, text, source)


def _key_path(loc: tuple) -> tuple:
    """pydantic's location without the union tag it inserts after a step index."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "steps" and parts[2] in STEP_KINDS:
        del parts[2]
    return tuple(parts)


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: dict) -> str:
    kind = err["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"must be one of {', '.join(STEP_KINDS)}"
    if kind == "extra_forbidden":
        return "is not a known key"
    if kind == "missing":
        return "is missing"
    return err["msg"].removeprefix("Value error, ")


def _at_line(text: str, loc: tuple) -> str:
    """', line N' of the key a location names in the TOML text ('' if it cannot be found).

    tomllib keeps no positions of valid keys, so the text is scanned: the
    ``[[steps]]`` tables are counted and the key looked up inside the right one.
    """
    lines = text.splitlines()
    table = None
    start, end = 0, len(lines)
    if loc and loc[0] == "steps" and len(loc) >= 2 and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if re.match(r"\s*\[\[\s*steps\s*\]\]", line)]
        if loc[1] >= len(headers):
            return ""
        table = headers[loc[1]]
        start = table + 1
        key = loc[2] if len(loc) > 2 else "kind"
    else:
        key = loc[0] if loc else None
    for i in range(start, end):
        if re.match(r"\s*\[", lines[i]):
            break
        if key is not None and re.match(rf"\s*{re.escape(str(key))}\s*=", lines[i]):
            return f", line {i + 1}"
    return f", line {table + 1}" if table is not None else ""


def _check_references(recipe: Recipe, text: str, where: str) -> None:
    """Train needs a characterisation before it; program/evaluate name an earlier train step."""
    characterised = False
    trained: set[str] = set()
    for i, step in enumerate(recipe.steps):
        if isinstance(step, CharacteriseStep):
            characterised = True
        elif isinstance(step, TrainStep):
            if not characterised:
                loc = ("steps", i, "kind")
                raise ConfigError(f"{where}{_at_line(text, loc)}: steps[{i}]: a train step needs a "
                                  "characterise step before it (weights are trained for the measured die)")
            if step.weights_name in trained:
                loc = ("steps", i, "name")
                raise ConfigError(f"{where}{_at_line(text, loc)}: steps[{i}].name: two train steps are "
                                  f"named {step.weights_name!r}")
            trained.add(step.weights_name)
        elif step.weights not in trained:
            loc = ("steps", i, "weights")
            known = ", ".join(sorted(trained)) or "none yet"
            raise ConfigError(f"{where}{_at_line(text, loc)}: steps[{i}].weights: no earlier train step is "
                              f"named {step.weights!r} (trained so far: {known})")


def part_recipe(part: str, dataset: str | None = None) -> LoadedRecipe:
    """The shipped recipe for a part (Iris on CMNA-777, MNIST on CMNA-L), optionally on another data set."""
    try:
        loaded = load_recipe(PART_RECIPES[part])
    except KeyError:
        raise ConfigError(f"no shipped recipe for part {part!r} (have: {', '.join(PART_RECIPES)})") from None
    if dataset is None:
        return loaded
    # rewrite the text, so that the recorded recipe (session.h5) is the one that ran
    text = re.sub(r'^(\s*dataset\s*=\s*)"[^"]*"', lambda m: f'{m.group(1)}"{dataset}"', loaded.text, flags=re.M)
    return parse_recipe(text, source=loaded.source)


def resolve_run_dir(loaded: LoadedRecipe, run_dir: str | Path | None = None) -> Path:
    """``run_dir`` if given, else the recipe's (``{time}`` filled in), else ``runs/<recipe>-<time>``."""
    if run_dir is not None:
        return Path(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if loaded.recipe.run_dir:
        return Path(loaded.recipe.run_dir.replace("{time}", stamp))
    stem = loaded.source.stem if loaded.source else re.sub(r"[^A-Za-z0-9_.-]+", "-", loaded.name)
    return Path("runs") / f"{stem}-{stamp}"


# -- running --------------------------------------------------------------------------


@dataclass
class OnChipOutcome:
    """What a program or evaluate step produced, with the weights it wrote."""

    weights_name: str
    weights: Any
    """The :class:`labctl.families.cmna.weights.WeightSet` that was programmed."""
    result: Any
    """The :class:`labctl.families.cmna.workflow.OnChipResult` (program report, evaluation or None)."""
    class_names: list[str] = field(default_factory=list)


class RunListener(Protocol):
    """What a GUI (or any observer) hears while a recipe runs; called from the worker thread."""

    def step_started(self, index: int, step: Step) -> None: ...

    def epoch(self, name: str, epoch: int, n_epochs: int, loss: float, accuracy: float) -> None: ...

    def step_finished(self, index: int, step: Step, outcome: Any) -> None: ...


@dataclass
class RunResult:
    """Everything a recipe run produced; the files are in ``run_dir``."""

    run_dir: Path
    recipe: LoadedRecipe
    chip: ChipDescription | None = None
    characterisation: Any = None
    """The :class:`labctl.families.cmna.characterisation.analysis.AnalysisResult` of the characterise step."""
    trained: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Weights name -> (WeightSet, TrainReport)."""
    on_chip: dict[str, OnChipOutcome] = field(default_factory=dict)
    """Weights name -> the last program/evaluate step that wrote them."""
    outcome: str = "not started"
    wall_s: float = 0.0
    files: list[Path] = field(default_factory=list)
    """The files this run wrote into ``run_dir`` (what the session record copies)."""

    def summary(self) -> dict:
        out: dict[str, Any] = {
            "recipe": self.recipe.name, "outcome": self.outcome, "wall_seconds": self.wall_s,
            "die_serial": self.chip.serial if self.chip else None, "part": self.chip.part if self.chip else None,
        }
        if self.characterisation is not None:
            out["characterisation"] = self.characterisation.summary
        out["weights"] = {
            name: {"dataset": w.dataset, "naive": w.naive, "software_accuracy": w.software_accuracy}
            for name, (w, _) in self.trained.items()
        }
        for name, o in self.on_chip.items():
            entry = out["weights"].setdefault(name, {})
            entry["stuck_bits"] = len(o.result.program.stuck)
            if o.result.evaluation is not None:
                entry["on_chip_accuracy"] = o.result.evaluation.on_chip_accuracy
                entry["n_test_samples"] = o.result.evaluation.n_samples
        return out


def run_recipe(loaded: LoadedRecipe, bench_file: str | Path, run_dir: str | Path, *,
               progress: Progress | None = None, stop_event: threading.Event | None = None,
               recorder: SessionRecorder | None = None, listener: RunListener | None = None) -> RunResult:
    """Run every step of a recipe on the bench of ``bench_file``; files go into ``run_dir``.

    With a ``recorder`` the session (bench identity, every transaction and
    reading, the characterisation, the weights, the results) is written to
    ``run_dir/session.h5`` at the end, also when the run stops or fails.
    Raises :class:`Stopped` when ``stop_event`` is set during the run.
    """
    from labctl.families.cmna.workflow import program_and_evaluate, run_characterisation, run_training, write_on_chip_record

    recipe = loaded.recipe
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    bench_file = Path(bench_file)
    (run_dir / "recipe.toml").write_text(loaded.text)
    result = RunResult(run_dir, loaded)
    bench_options = recorder.bench_options() if recorder else {}
    started = time.monotonic()

    def checkpoint() -> None:
        if stop_event is not None and stop_event.is_set():
            raise Stopped("stopped by the user: every output is off, the data measured so far are kept")

    def report(stage: str, done: int, total: int) -> None:
        checkpoint()
        if progress:
            progress(stage, done, total)

    try:
        chip, instruments, bench_text = identify_bench(bench_file, bench_options)
        result.chip = chip
        if recorder:
            recorder.set_identity(chip, instruments, bench_text)
        if not (run_dir / "bench.toml").exists():
            (run_dir / "bench.toml").write_text(bench_text)
        if recipe.part and chip.part != recipe.part:
            raise ConfigError(f"recipe {loaded.name!r} is for {recipe.part}, but the bench holds {chip.part} "
                              f"{chip.serial}: choose a recipe for that part")
        die_file = run_dir / "die.h5"
        for index, step in enumerate(recipe.steps):
            checkpoint()
            if listener:
                listener.step_started(index, step)
            if recorder:
                recorder.begin_step(index, step.kind, step.model_dump(exclude_none=True))
            outcome: Any
            if isinstance(step, CharacteriseStep):
                result.files.append(die_file)  # kept (and recorded) even if the run stops halfway
                outcome = run_characterisation(
                    bench_file, die_file, method=step.method, n_configs=step.configs,
                    setting_overrides=_setting_overrides(step), targets=_targets(step),
                    progress=report, bench_options=bench_options)
                result.characterisation = outcome
            elif isinstance(step, TrainStep):
                name = step.weights_name

                def on_epoch(epoch: int, n_epochs: int, loss: float, accuracy: float, name: str = name) -> None:
                    report(f"training {name}", epoch, n_epochs)
                    if listener:
                        listener.epoch(name, epoch, n_epochs, loss, accuracy)

                weights, train_report = run_training(
                    die_file, step.dataset, run_dir / f"weights_{name}.h5", naive=step.naive, method=step.method,
                    hidden=tuple(step.hidden) if step.hidden else None, epochs=step.epochs, seed=step.seed,
                    label_column=step.label_column, progress=on_epoch)
                _write_json(run_dir / f"training_{name}.json", _train_json(train_report))
                result.files += [run_dir / f"weights_{name}.h5", run_dir / f"training_{name}.json"]
                result.trained[name] = (weights, train_report)
                outcome = (weights, train_report)
            else:
                weights, _ = result.trained[step.weights]
                evaluate = isinstance(step, EvaluateStep)
                retrain = step.retrain and not weights.naive
                on_chip = program_and_evaluate(
                    bench_file, run_dir / f"weights_{step.weights}.h5", evaluate=evaluate,
                    calibration=die_file if retrain else None, in_situ_rounds=step.in_situ_rounds,
                    keep_powered=step.keep_powered,
                    gate_ms=step.gate_ms if evaluate else 20, progress=report, bench_options=bench_options)
                outcome = OnChipOutcome(step.weights, on_chip.weights, on_chip, on_chip.class_names)
                result.on_chip[step.weights] = outcome
                result.files += write_on_chip_record(run_dir, step.weights, on_chip)
                if on_chip.programmed_file is not None:
                    result.files.append(on_chip.programmed_file)
            if recorder:
                recorder.end_step(index, "done")
            if listener:
                listener.step_finished(index, step, outcome)
        result.outcome = "completed"
    except Stopped:
        result.outcome = "stopped"
        raise
    except BaseException as exc:
        result.outcome = f"failed: {exc}" if isinstance(exc, LabctlError) else f"failed: {type(exc).__name__}"
        raise
    finally:
        result.wall_s = time.monotonic() - started
        if recorder:
            recorder.end_open_step(result.outcome)
        _write_json(run_dir / "summary.json", result.summary())
        if recorder:
            recorder.write(run_dir / "session.h5", recipe_text=loaded.text, recipe_name=loaded.name,
                           outcome=result.outcome, files=result.files)
    return result


def run_recorded(loaded: LoadedRecipe, bench_file: str | Path, run_dir: str | Path, *,
                 progress: Progress | None = None, stop_event: threading.Event | None = None,
                 listener: RunListener | None = None,
                 recorder: SessionRecorder | None = None) -> RunResult:
    """:func:`run_recipe` with a session record (``run_dir/session.h5``): what ``labctl run`` and the demo call."""
    return run_recipe(loaded, bench_file, run_dir, progress=progress, stop_event=stop_event,
                      recorder=recorder or SessionRecorder(), listener=listener)


def identify_bench(bench_file: Path, bench_options: dict | None = None) -> tuple[ChipDescription, dict[str, str], str]:
    """Open the bench without powering anything: (die from IDENTIFY, instrument IDNs, bench file text)."""
    bench = Bench.from_file(bench_file, **(bench_options or {}))
    bench.open()
    try:
        return bench.chip, bench.instrument_identities(), bench.config.text
    finally:
        bench.disconnect()


def _setting_overrides(step: CharacteriseStep) -> dict:
    from labctl.families.cmna.characterisation.characterise import linear_range_overrides

    return {k: v for k, v in {"levels": step.levels, "gate_ms": step.gate_ms, "nplc": step.nplc}.items()
            if v is not None} | linear_range_overrides(step.linear_range)


def _targets(step: CharacteriseStep):
    from labctl.families.cmna.characterisation.characterise import Targets

    if step.target_a_plus is None and step.target_ratio is None and step.time_budget_s is None:
        return None
    return Targets(a_plus=step.target_a_plus, ratio=step.target_ratio, time_budget_s=step.time_budget_s)


def _train_json(report) -> dict:
    keys = ("dataset", "die_serial", "naive", "seed", "epochs", "best_epoch", "losses", "train_accuracies",
            "software_accuracy", "ideal_accuracy", "train_accuracy", "seconds")
    return {k: getattr(report, k) for k in keys}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=float))
