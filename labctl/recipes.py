"""Recipes: a TOML file that names the steps of a run and their parameters (issue 7).

A recipe is what a lab engineer hands to ``labctl run`` or to the GUI's one
button, so both run exactly the same thing::

    name = "Iris on CMNA-777"
    part = "CMNA-777"            # checked against the device on the bench (IDENTIFY); names the family
    # family = "cmna"            # optional when part names it or only one family is installed
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

The recipe layer is family-blind: a step's ``kind``, its ``name`` (train) and
``weights`` (program, evaluate) are the recipe's; every other key is one of the
family's step options (:attr:`DeviceFamily.step_options`), validated by the
family's schema. Every problem is one line naming the file, the line and the
key, before the bench is touched. :func:`run_recipe` runs the steps through
the family's stage operations (the ones the CLI commands call); everything
goes into one run folder, and a :class:`~labctl.session.SessionRecorder`
passed in records every bridge transaction and SMU reading into ``session.h5``.

Files: every step writes its own. The first characterise step writes
``die.h5``, a second one ``die-2.h5`` and so on (:func:`characterisation_name`);
a train step uses the characterisation of the nearest characterise step
before it, and programming the one its weights were trained on. A run folder
that already holds a run (its ``summary.json``) is refused unless the caller
passes ``force`` (:mod:`labctl.files`: partial files and atomic writes).

Stopping: when ``stop_event`` is set, the next progress report raises
:class:`Stopped`; the bench's context manager then turns every output off
(contract section 3) and the files keep what was measured.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labctl import families, files
from labctl.bench_file import load_bench_file
from labctl.errors import ConfigError, LabctlError
from labctl.families.seam import (
    RECIPES_DIR,
    STAGES,
    CharacterisationOutcome,
    DeviceDescription,
    DeviceFamily,
    OnChipOutcome,
    StepContext,
    StepOptions,
    TrainingOutcome,
)
from labctl.options import in_recipes
from labctl.session import SessionRecorder
from labctl.toml_files import parse_toml, read_user_file

DEFAULT_RECIPE = RECIPES_DIR / "train_and_program.toml"
"""What the GUI's "Train and program" button runs unless told otherwise."""

Progress = Callable[[str, int, int], None]
_NAME = r"^[A-Za-z0-9_.-]+$"
RECIPE_KEYS = {"train": ("name",), "program": ("weights",), "evaluate": ("weights",), "characterise": ()}
"""Step keys that belong to the recipe, not to the family's options."""


class Stopped(LabctlError):
    """The user asked to stop; raised from a progress report, so the bench turns every output off."""


# -- the schema ---------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepHead(BaseModel):
    """The recipe's own keys of a step; the rest are the family's options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: Literal["characterise", "train", "program", "evaluate"]
    name: str | None = Field(default=None, pattern=_NAME, description="train: the weights' name (default: "
                                                                          "tailored, or naive for naive weights)")
    weights: str | None = Field(default=None, pattern=_NAME, description="program/evaluate: an earlier train step")


class Recipe(_Strict):
    name: str = Field(min_length=1)
    family: str | None = Field(default=None, description="device family (default: the part's, or the only one)")
    part: str | None = Field(default=None, description="expected part (e.g. CMNA-777); none: any device")
    run_dir: str | None = Field(default=None, description="run folder; {time} becomes the start time")
    description: str = ""
    steps: list[StepHead] = Field(min_length=1)


@dataclass(frozen=True)
class RecipeStep:
    """One validated step: the recipe's keys and the family's typed options."""

    kind: str
    options: StepOptions
    name: str | None = None
    weights: str | None = None

    @property
    def weights_name(self) -> str:
        """The name of the weights a train step writes (``weights_<name>.h5``)."""
        return self.name or ("naive" if getattr(self.options, "naive", False) else "tailored")

    def params(self) -> dict[str, Any]:
        """What the session record keeps of the step (the keys a recipe may set)."""
        own = {"kind": self.kind} | ({"name": self.name} if self.name else {}) | (
            {"weights": self.weights} if self.weights else {})
        fields = type(self.options).model_fields
        return own | {k: v for k, v in self.options.model_dump(exclude_none=True).items() if in_recipes(fields[k])}


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe with its text (stored in the session record) and where it came from.

    ``steps`` are bound to a family as soon as one is known (the recipe's
    ``family`` or ``part``, or the only installed family); otherwise when the
    bench's family is (:meth:`bound_to`), still before anything is powered.
    """

    recipe: Recipe
    text: str
    source: Path | None = None
    family: DeviceFamily | None = None
    steps: tuple[RecipeStep, ...] = ()

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def where(self) -> str:
        return f"recipe {self.source}" if self.source else "recipe"

    def bound_to(self, family: DeviceFamily) -> "LoadedRecipe":
        """This recipe with its steps validated by ``family``'s options (the bench's family)."""
        if self.family is not None:
            if self.family.name != family.name:
                raise ConfigError(f"{self.where} is for {self.family.name} devices, but the bench holds a "
                                  f"{family.name} device")
            return self
        return LoadedRecipe(self.recipe, self.text, self.source, family, _bind(self.recipe, family, self.text,
                                                                                 self.where))

    def train_steps(self) -> dict[str, RecipeStep]:
        return {s.weights_name: s for s in self.steps if s.kind == "train"}


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Read and validate a recipe file; ConfigError names the file, the line and the key at fault."""
    return parse_recipe(read_user_file(path, "recipe"), source=Path(path))


def parse_recipe(text: str, source: Path | None = None) -> LoadedRecipe:
    loaded = LoadedRecipe(_validate_head(text, source), text, source)
    family = _family_of(loaded)
    return loaded.bound_to(family) if family is not None else loaded


def _validate_head(text: str, source: Path | None) -> Recipe:
    where = f"recipe {source}" if source else "recipe"
    raw = parse_toml(text, where)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise ConfigError(f"{where}{_at_line(text, loc)}: {_dotted(loc)}: {_message(err)}") from None


def _family_of(loaded: LoadedRecipe) -> DeviceFamily | None:
    recipe = loaded.recipe
    try:
        if recipe.family is not None:
            return families.named(recipe.family)
        if recipe.part is not None:
            return families.for_part(recipe.part)
    except ConfigError as exc:
        key = "family" if recipe.family is not None else "part"
        raise ConfigError(f"{loaded.where}{_at_line(loaded.text, (key,))}: {key}: {exc}") from None
    installed = families.installed()
    return next(iter(installed.values())) if len(installed) == 1 else None


def _bind(recipe: Recipe, family: DeviceFamily, text: str, where: str) -> tuple[RecipeStep, ...]:
    steps = []
    for i, head in enumerate(recipe.steps):
        own = {k: getattr(head, k) for k in RECIPE_KEYS[head.kind] if getattr(head, k) is not None}
        stray = [k for k in ("name", "weights") if k not in RECIPE_KEYS[head.kind] and getattr(head, k) is not None]
        if stray:
            loc = ("steps", i, stray[0])
            raise ConfigError(f"{where}{_at_line(text, loc)}: {_dotted(loc)}: is not a known key")
        model = family.step_options[head.kind]
        values = dict(head.model_extra or {})
        hidden = [k for k in values if k in model.model_fields and not in_recipes(model.model_fields[k])]
        try:
            if hidden:
                raise ValidationError.from_exception_data(model.__name__, [
                    {"type": "extra_forbidden", "loc": (hidden[0],), "input": values[hidden[0]]}])
            options = model.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ("steps", i, *err["loc"][:1]) if err["loc"] else ("steps", i)
            raise ConfigError(f"{where}{_at_line(text, loc)}: {_dotted(loc)}: {_message(err)}") from None
        steps.append(RecipeStep(head.kind, options, **own))
    _check_references(steps, text, where)
    return tuple(steps)


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "literal_error" and tuple(err["loc"][-1:]) == ("kind",):
        return f"must be one of {', '.join(STAGES)}"
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


def _check_references(steps: list[RecipeStep], text: str, where: str) -> None:
    """Train needs a characterisation before it; program/evaluate name an earlier train step."""
    characterised = False
    trained: set[str] = set()
    for i, step in enumerate(steps):
        if step.kind == "characterise":
            characterised = True
        elif step.kind == "train":
            if not characterised:
                loc = ("steps", i, "kind")
                raise ConfigError(f"{where}{_at_line(text, loc)}: steps[{i}]: a train step needs a "
                                  "characterise step before it (weights are trained for the measured device)")
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
    """The shipped recipe for a part (e.g. Iris on CMNA-777), optionally on another data set."""
    family = families.for_part(part)
    try:
        loaded = load_recipe(family.shipped_recipes[part])
    except KeyError:
        raise ConfigError(f"no shipped recipe for part {part!r} (have: {', '.join(family.shipped_recipes)})") from None
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
class ProgrammedWeights:
    """What a program or evaluate step produced, with the weights it wrote (what the GUI panels show)."""

    weights_name: str
    outcome: OnChipOutcome

    @property
    def result(self) -> Any:
        """The family's own result (CMNA: :class:`labctl.families.cmna.workflow.OnChipResult`)."""
        return self.outcome.result

    @property
    def weights(self) -> Any:
        return getattr(self.outcome.result, "weights", None)

    @property
    def class_names(self) -> list[str]:
        return list(getattr(self.outcome.result, "class_names", []))


class RunListener(Protocol):
    """What a GUI (or any observer) hears while a recipe runs; called from the worker thread."""

    def step_started(self, index: int, step: RecipeStep) -> None: ...

    def epoch(self, name: str, epoch: int, n_epochs: int, loss: float, accuracy: float) -> None: ...

    def step_finished(self, index: int, step: RecipeStep, outcome: Any) -> None: ...


@dataclass
class RunResult:
    """Everything a recipe run produced; the files are in ``run_dir``."""

    run_dir: Path
    recipe: LoadedRecipe
    description: DeviceDescription | None = None
    characterisation: CharacterisationOutcome | None = None
    trained: dict[str, TrainingOutcome] = field(default_factory=dict)
    """Weights name -> what training produced."""
    on_chip: dict[str, ProgrammedWeights] = field(default_factory=dict)
    """Weights name -> the last program/evaluate step that wrote them."""
    outcome: str = "not started"
    wall_s: float = 0.0
    files: list[Path] = field(default_factory=list)
    """The files this run wrote into ``run_dir`` (what the session record copies)."""

    def summary(self) -> dict:
        d = self.description
        out: dict[str, Any] = {
            "recipe": self.recipe.name, "outcome": self.outcome, "wall_seconds": self.wall_s,
            "family": d.family if d else None, "die_serial": d.serial if d else None, "part": d.part if d else None,
        }
        if self.characterisation is not None:
            out["characterisation"] = dict(self.characterisation.summary)
        out["weights"] = {name: {"dataset": t.dataset, "naive": bool(t.record.get("naive", False)),
                                 "software_accuracy": t.software_accuracy} for name, t in self.trained.items()}
        for name, programmed in self.on_chip.items():
            entry = out["weights"].setdefault(name, {})
            o = programmed.outcome
            entry |= {k: v for k, v in o.json_extra.items() if k in SUMMARY_EXTRAS}
            if o.on_chip_accuracy is not None:
                entry["on_chip_accuracy"] = o.on_chip_accuracy
                entry["n_test_samples"] = o.n_samples
        return out


SUMMARY_EXTRAS = ("stuck_bits", "supply_power_w", "dynamic_power_w", "network_power_w", "energy_per_inference_j",
                  "dynamic_energy_per_inference_j", "ops_per_joule", "presentation_rate_hz")
"""What a run's summary keeps of a program or evaluate step's extra figures: stuck bits and the power
figures every family reports under the same names (issue 14); the rest stays in the step's own record."""


def characterisation_name(n: int) -> str:
    """The file of a run's ``n``-th characterise step (from 1): ``die.h5``, then ``die-2.h5``, ``die-3.h5``..."""
    return "die.h5" if n == 1 else f"die-{n}.h5"


@dataclass
class _Run:
    """One recipe run in progress: the bench, the family, the context every step gets."""

    loaded: LoadedRecipe
    family: DeviceFamily
    run_dir: Path
    bench_file: Path
    result: RunResult
    context: StepContext
    listener: RunListener | None
    characterisations: list[Path] = field(default_factory=list)
    """The characterise steps' files so far, in order."""
    trained_on: dict[str, Path] = field(default_factory=dict)
    """Weights name -> the characterisation its train step used."""

    @property
    def die_file(self) -> Path:
        """The characterisation of the nearest characterise step so far."""
        return self.characterisations[-1] if self.characterisations else self.run_dir / characterisation_name(1)

    def step(self, index: int, step: RecipeStep) -> Any:
        """Run one step; return what the listener hears as its outcome."""
        run = {"characterise": self._characterise, "train": self._train}.get(step.kind, self._program)
        return run(step)

    def _characterise(self, step: RecipeStep) -> Any:
        out = self.run_dir / characterisation_name(len(self.characterisations) + 1)
        self.characterisations.append(out)
        try:
            outcome = self.family.characterise(out, step.options, self.context)
        except BaseException:
            partial = files.partial_path(out)  # what was measured is kept (and recorded) when the run stops
            self.result.files += [partial] if partial.exists() else []
            raise
        self.result.files.append(out)
        self.result.characterisation = outcome
        return outcome.result

    def _train(self, step: RecipeStep) -> Any:
        name, listener, report = step.weights_name, self.listener, self.context.progress

        def on_epoch(epoch: int, n_epochs: int, loss: float, accuracy: float) -> None:
            if report:
                report(f"training {name}", epoch, n_epochs)
            if listener:
                listener.epoch(name, epoch, n_epochs, loss, accuracy)

        out = self.run_dir / f"weights_{name}.h5"
        context = replace(self.context, progress=None, on_epoch=on_epoch)
        self.trained_on[name] = self.die_file
        outcome = self.family.train(self.die_file, out, step.options, context)
        _write_json(self.run_dir / f"training_{name}.json", dict(outcome.record))
        self.result.files += [out, self.run_dir / f"training_{name}.json"]
        self.result.trained[name] = outcome
        return outcome.weights, outcome.report

    def _program(self, step: RecipeStep) -> ProgrammedWeights:
        assert step.weights is not None
        context = replace(self.context, calibration=self.trained_on.get(step.weights, self.die_file))
        outcome = self.family.program(self.run_dir / f"weights_{step.weights}.h5", step.options, context,
                                      evaluate=step.kind == "evaluate")
        programmed = ProgrammedWeights(step.weights, outcome)
        self.result.on_chip[step.weights] = programmed
        self.result.files += self.family.write_records(self.run_dir, step.weights, outcome)
        self.result.files += list(outcome.files)
        if outcome.failure is not None:
            raise outcome.failure
        return programmed


def run_recipe(loaded: LoadedRecipe, bench_file: str | Path, run_dir: str | Path, *,
               progress: Progress | None = None, stop_event: threading.Event | None = None,
               recorder: SessionRecorder | None = None, listener: RunListener | None = None,
               force: bool = False) -> RunResult:
    """Run every step of a recipe on the bench of ``bench_file``; files go into ``run_dir``.

    With a ``recorder`` the session (device identity, every transaction and
    reading, the characterisation, the weights, the results) is written to
    ``run_dir/session.h5`` at the end, also when the run stops or fails.
    Raises :class:`Stopped` when ``stop_event`` is set during the run.
    A ``run_dir`` that holds an earlier run (``summary.json``) is refused
    unless ``force`` (which also lets the steps replace its files).
    """
    run_dir, bench_file = Path(run_dir), Path(bench_file)
    if (run_dir / "summary.json").exists() and not force:
        raise ConfigError(f"run folder {run_dir} already holds a run (its summary.json); choose another run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    files.atomic_write_text(run_dir / "recipe.toml", loaded.text)
    result = RunResult(run_dir, loaded)
    started = time.monotonic()

    def report(stage: str, done: int, total: int) -> None:
        _checkpoint(stop_event)
        if progress:
            progress(stage, done, total)

    try:
        run = _start(loaded, bench_file, run_dir, result, recorder, listener, report, force)
        for index, step in enumerate(run.loaded.steps):
            _checkpoint(stop_event)
            if listener:
                listener.step_started(index, step)
            if recorder:
                recorder.begin_step(index, step.kind, step.params())
            outcome = run.step(index, step)
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
        _finish(result, recorder)
    return result


def _checkpoint(stop_event: threading.Event | None) -> None:
    if stop_event is not None and stop_event.is_set():
        raise Stopped("stopped by the user: every output is off, the data measured so far are kept")


def _start(loaded: LoadedRecipe, bench_file: Path, run_dir: Path, result: RunResult,
           recorder: SessionRecorder | None, listener: RunListener | None, report: Progress,
           force: bool = False) -> _Run:
    """Find the bench's family, bind the recipe to it, identify the device (nothing is powered)."""
    config = load_bench_file(bench_file)
    family = families.for_bench(config)
    loaded = loaded.bound_to(family)
    context = StepContext(bench_file, report, bench_options=recorder.bench_options() if recorder else {},
                          force=force)
    description, identities = family.describe(bench_file, context)
    result.description = description
    if recorder:
        recorder.set_identity(description, identities, config.text)
    if not (run_dir / "bench.toml").exists():
        files.atomic_write_text(run_dir / "bench.toml", config.text)
    part = loaded.recipe.part
    if part and description.part != part:
        raise ConfigError(f"recipe {loaded.name!r} is for {part}, but the bench holds {description.part} "
                          f"{description.serial}: choose a recipe for that part")
    return _Run(loaded, family, run_dir, bench_file, result, context, listener)


def _finish(result: RunResult, recorder: SessionRecorder | None) -> None:
    """summary.json, and the session record when one is kept: also after a stop or a failure."""
    if recorder:
        recorder.end_open_step(result.outcome)
    _write_json(result.run_dir / "summary.json", result.summary())
    if recorder:
        recorder.write(result.run_dir / "session.h5", recipe_text=result.recipe.text, recipe_name=result.recipe.name,
                       outcome=result.outcome, files=result.files)


def run_recorded(loaded: LoadedRecipe, bench_file: str | Path, run_dir: str | Path, *,
                 progress: Progress | None = None, stop_event: threading.Event | None = None,
                 listener: RunListener | None = None,
                 recorder: SessionRecorder | None = None, force: bool = False) -> RunResult:
    """:func:`run_recipe` with a session record (``run_dir/session.h5``): what ``labctl run`` and the demo call."""
    return run_recipe(loaded, bench_file, run_dir, progress=progress, stop_event=stop_event,
                      recorder=recorder or SessionRecorder(), listener=listener, force=force)


def _write_json(path: Path, data: dict) -> None:
    files.atomic_write_text(path, json.dumps(data, indent=2, default=float))
