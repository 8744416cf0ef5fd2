"""Characterise a die end to end: plan, probe, record, fit, store; resume and stop on target.

The run is a list of jobs (dark, reference, EXT_IN sweep, linear range of layer
0 and, unless the die is large or it is switched off, of every deeper layer,
bias sweep, chain configurations and their negative twins or, on a large die,
negative-weight probes, and last the supply-current states the supply model is
fitted to: :mod:`.supply_probe`). Once the linear-range runs have found where the somas
compress, every later operating point is kept below the lowest onset. Raw readings are appended as they
are taken and every finished job is marked done, so an interrupted run keeps
every reading and ``--resume`` continues without repeating a finished job.
The run writes ``die.partial.h5`` next to ``die.h5``, which appears only
when the run is complete, with its fits (:mod:`labctl.files`); a resume
continues the partial file, also after the process was killed.
With precision targets the run stops as soon as the fits meet them (or the
configuration or time budget is spent) and reports what it achieved per layer.
Fits are written after the file leaves SWMR and can be redone from the file
alone (:func:`refit`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Collection

import numpy as np

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.analysis import METHODS, AnalysisResult, analyse, ext_gains, measured_onsets
from labctl.families.cmna.characterisation.linear_range import LAYER_KNEE_LEVELS, layer_knee
from labctl.families.cmna.characterisation.negative_probe import CALIBRATION_LEVELS, NegativeProbe, negative_probe
from labctl.families.cmna.characterisation.configurations import ChainConfig, chain_config, chain_shift_plan, stuck_sources
from labctl.families.cmna.characterisation import plans
from labctl.families.cmna.characterisation.probing import ProbeSettings, Progress, Prober, chain_nodes
from labctl.families.cmna.characterisation import supply_probe
from labctl.families.cmna.chip import ChipDescription
from labctl.errors import ConfigError, DataFileError
from labctl import files
from labctl.families.cmna.storage import (
    CharacterisationFile,
    RawTables,
    describe,
    read_chip,
    read_raw,
    write_calibration,
)
from labctl.families.cmna.ratings import soma_input_limit_a

MAX_CONFIGURATIONS = 40
"""The paper characterised its 196-100-50-10 network from about 40 configurations."""
REFERENCE_EVERY = 4
"""A drift reference after every few chain pairs."""
MIN_CHAIN_PAIRS = 4
"""Never judge precision from fewer chain configurations than this (the scatter needs samples)."""


@dataclass(frozen=True)
class Job:
    """One run of the characterisation; ``key`` identifies it across a resume."""

    kind: str
    shifts: tuple[int, ...] = ()
    tag: int = 0

    @property
    def key(self) -> list:
        return [self.kind, list(self.shifts), self.tag]

    @property
    def configures(self) -> bool:
        """A configuration of weights (chain, twin or probe), counted against the budget in progress."""
        return self.kind.startswith("chain") or self.kind == "negative_probe"

    def probe(self, chip: ChipDescription, settings: ProbeSettings, seed: int,
              dark_held: list[np.ndarray] | None = None) -> NegativeProbe:
        m = self.shifts[0]
        return negative_probe(chip, m, seed, self.tag, settings.probe_negatives[m], dark_held)

    def chain(self, chip: ChipDescription, settings: ProbeSettings,
              dark_held: list[np.ndarray] | None = None) -> ChainConfig:
        forced = stuck_sources(dark_held) if dark_held else ()
        return chain_config(chip, self.shifts, with_negatives=self.kind == "chain_negative", forced=forced,
                            fan_in=tuple(settings.fan_in), neg_fan_in=tuple(settings.neg_fan_in))


@dataclass
class Targets:
    """Stop conditions: relative 1-sigma precision per layer and budgets."""

    a_plus: float | None = None
    ratio: float | None = None
    time_budget_s: float | None = None
    max_configurations: int = MAX_CONFIGURATIONS

    @property
    def adaptive(self) -> bool:
        return self.a_plus is not None or self.ratio is not None or self.time_budget_s is not None


def default_config_count(layer_sizes: tuple[int, ...]) -> int:
    """Chain configurations without a target: every source once on CMNA-777, 8 on larger dies
    (each feeds every neuron from several rows there)."""
    return int(min(max(layer_sizes[0], 4), 8))


LINEAR_RANGE_CHOICES = ("off", "input", "all")
"""Which somas' compression onsets a run measures: none, the input layer's, every layer's."""


def linear_range_overrides(choice: str | None) -> dict:
    """Probe settings for a ``--linear-range`` choice; None keeps the die-size default."""
    if choice is None:
        return {}
    if choice not in LINEAR_RANGE_CHOICES:
        raise ConfigError(f"--linear-range must be one of {', '.join(LINEAR_RANGE_CHOICES)}, not {choice!r}")
    return {"knee_points": 0 if choice == "off" else ProbeSettings.knee_points, "layer_knees": choice == "all"}


def plan_jobs(chip: ChipDescription, method: str, n_pairs: int, seed: int, linear_range: bool = True,
              probe_rounds: tuple[int, ...] = (), layer_knees: bool = False) -> list[Job]:
    """Every job of a run, in order (the linear-range run needs the EXT_IN sweep's gains).

    The deeper layers' linear-range runs (``layer_knees``, job tag = layer) come
    before any chain, so every chain stays below the lowest onset found.
    Negative weights come from twins of the chains, or (``probe_rounds``) from
    negative-weight probes of every matrix, spread over the run. The supply run
    comes last (job tag = its configuration), with the direct method only: the
    branch currents it is fitted to need absolute gains, which the network
    method does not measure.
    """
    direct = method != "network"
    jobs = [Job("dark")]
    if direct:
        jobs += [Job("reference", tag=0), Job("ext_sweep")] + ([Job("linear_range")] if linear_range else [])
        jobs += [Job("linear_range", tag=l) for l in range(1, chip.n_layers)] if layer_knees else []
        jobs.append(Job("bias_sweep"))
    rounds = max(probe_rounds, default=0) if direct else 0
    every = max(1, n_pairs // rounds) if rounds else 0
    done_rounds = 0
    for k, shifts in enumerate(chain_shift_plan(chip, n_pairs, seed=seed)):
        jobs.append(Job("chain", shifts))
        if direct and not rounds:
            jobs.append(Job("chain_negative", shifts))
        while rounds and done_rounds < rounds and ((k + 1) % every == 0 or k == n_pairs - 1):
            jobs += [Job("negative_probe", (m,), done_rounds) for m, r in enumerate(probe_rounds) if r > done_rounds]
            done_rounds += 1
            if k < n_pairs - 1:
                break
        if direct and (k + 1) % REFERENCE_EVERY == 0:
            jobs.append(Job("reference", tag=k + 1))
    if direct:
        jobs += [Job(supply_probe.SUPPLY_KIND, tag=k) for k in range(supply_probe.supply_plan(chip).configurations)]
    return jobs


def estimate_job_s(job: Job, chip: ChipDescription, s: ProbeSettings, seed: int = 0) -> float:
    """Bench time of a job: readings times integration and overhead, plus gates."""
    reading = s.reading_s()
    gate = s.gate_ms / 1000.0
    if job.kind == "dark":
        return 3 * chip.max_gate_ms / 1000.0
    if job.kind == "reference":
        return 9 * s.reading_s(s.ext_nplc) + gate
    if job.kind == "ext_sweep":
        return chip.n_inputs * s.ext_points * s.reading_s(s.ext_nplc)
    if job.kind == "linear_range" and job.tag:
        nodes = chain_nodes(layer_knee(chip, job.tag))
        read = sum(1 for l, _ in nodes if l >= job.tag - 1)
        return len(nodes) * reading + LAYER_KNEE_LEVELS * read * s.reading_s(s.ext_nplc)
    if job.kind == "linear_range":
        return chip.n_inputs * s.knee_points * s.reading_s(s.ext_nplc)
    if job.kind == "bias_sweep":
        return chip.n_inputs * s.bias_points * reading
    if job.kind == supply_probe.SUPPLY_KIND:
        return supply_probe.estimate_s(chip, s.reading_s(supply_probe.SUPPLY_NPLC))
    if job.kind == "negative_probe":
        probe = job.probe(chip, s, seed)
        nodes = chain_nodes(probe)
        rows = sum(1 for l, _ in nodes if l == probe.matrix)
        columns = sum(1 for l, _ in nodes if l == probe.matrix + 1)
        return (rows * (CALIBRATION_LEVELS + 1) + columns * (len(probe.pattern) - CALIBRATION_LEVELS)) * reading
    nodes = len(chain_nodes(job.chain(chip, s))) if s.read_mon else 0
    pilot = nodes if job.kind == "chain" else 0
    return (s.levels * nodes + pilot) * reading + (s.levels * gate if s.read_c2f else 0.0)


def check_output(out_path: str | Path, *, resume: bool = False, force: bool = False) -> Path:
    """The partial file a run for ``out_path`` writes; refuses at once (one line) what would lose data.

    A complete ``out_path`` is replaced only with ``force`` (the new run
    writes ``die.partial.h5`` meanwhile, so the complete file stays usable
    until the new one is); an interrupted run's partial file is continued with
    ``resume`` or started again with ``force``; ``resume`` without a partial
    file has nothing to continue.
    """
    out = Path(out_path)
    partial = files.partial_path(out)
    if resume:
        if not partial.exists():
            if out.exists():
                what = describe(out)
                if what == "a characterisation without fits":
                    raise ConfigError(f"{out} has no fits (an interrupted run of an earlier labctl?): rename it "
                                      f"to {partial.name} and --resume again")
                raise ConfigError(f"{out} exists ({what or 'not a characterisation'}) and there is no {partial.name}: "
                                  "nothing to resume")
            raise DataFileError(f"{partial}: no such file: no interrupted characterisation to resume for --out {out}")
        files.refuse_existing(out, force=force, what=describe(out),
                              instead=f"move it away (--resume finishes {partial.name} and puts it there)")
    else:
        files.refuse_existing(out, force=force, what=describe(out))
        if partial.exists() and not force:
            raise ConfigError(f"{partial} holds an interrupted characterisation: --resume continues it, "
                              "--force starts again")
    return partial


def characterise(bench: Bench, out_path: str | Path, *, method: str = "both",
                 settings: ProbeSettings | None = None, setting_overrides: dict | None = None,
                 n_configs: int | None = None,
                 targets: Targets | None = None, seed: int = 0, resume: bool = False, force: bool = False,
                 given: Collection[str] | None = None,
                 progress: Progress | None = None,
                 announce: Callable[[str], None] | None = None) -> AnalysisResult:
    """Measure every neuron of the die on ``bench`` into ``out_path`` (or continue it with ``resume``).

    The readings go to ``die.partial.h5`` next to ``out_path`` (``die.h5``),
    which becomes ``out_path`` with its fits only when the run is complete
    (:func:`check_output` says what is refused). ``given`` names the options
    the user set (``--levels``, ...): a resume keeps the stored ones and says
    so in one line when they differ (None: the arguments that differ from
    their defaults count as given).
    """
    chip = bench.chip
    say = announce or (lambda message: None)
    partial = check_output(out_path, resume=resume, force=force)
    with files.WriterLock(partial) as lock:
        if resume:
            store = CharacterisationFile.resume(partial, chip, lock)
        else:
            parameters, settings = _run_parameters(chip, method, settings, setting_overrides, n_configs,
                                                   targets or Targets(), seed)
            store = CharacterisationFile.create(partial, chip, bench.config.text, parameters)
        try:
            if resume:
                requested = _run_parameters(chip, method, settings, setting_overrides, n_configs,
                                            targets or Targets(), seed)[0]
                kept = _resume_differences(store.parameters, requested,
                                           _given(given, method, setting_overrides, n_configs, targets))
                if kept:
                    say(f"--resume keeps the options {partial.name} was started with: {', '.join(kept)}")
                settings = ProbeSettings(**store.parameters["settings"])
            method, seed, n_pairs = (store.parameters[k] for k in ("method", "seed", "n_pairs"))
            targets = Targets(**store.parameters["targets"]) if resume else targets or Targets()
            _measure(bench, store, _plan(chip, method, n_pairs, seed, settings), method, settings, targets, seed,
                     progress, say)
        finally:
            store.close()
        return _complete(partial, Path(out_path), method)


def check_gate(chip: ChipDescription, gate_ms: int, option: str = "--gate-ms") -> None:
    """Refuse a C2F gate the die cannot count (IDENTIFY's maximum gate), before anything is powered."""
    if not 1 <= gate_ms <= chip.max_gate_ms:
        raise ConfigError(f"{option} {gate_ms} is outside the 1 to {chip.max_gate_ms} ms this die's C2F counters "
                          f"can gate (IDENTIFY: max gate {chip.max_gate_ms} ms)")


def _run_parameters(chip: ChipDescription, method: str, settings: ProbeSettings | None,
                    setting_overrides: dict | None, n_configs: int | None, targets: Targets,
                    seed: int) -> tuple[dict, ProbeSettings]:
    """What a new run stores as its ``parameters`` attribute, and its probe settings."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    settings = replace(settings or ProbeSettings.for_geometry(chip.layer_sizes), **(setting_overrides or {}))
    check_gate(chip, settings.gate_ms)
    if method == "network":  # C2F only: the paper's one-source chains, whose output paths are unique
        settings = replace(settings, read_mon=False, fan_in=(), probe_rounds=())
    budget_pairs = 1  # the budget is the gain measurement's: the supply run is not counted against it
    while sum(j.kind != supply_probe.SUPPLY_KIND for j in _plan(chip, method, budget_pairs + 1, seed, settings)) \
            <= targets.max_configurations:
        budget_pairs += 1
    n_pairs = min(n_configs or budget_pairs, budget_pairs) if targets.adaptive else \
        (n_configs or default_config_count(chip.layer_sizes))
    return ({"method": method, "n_pairs": n_pairs, "seed": seed, "settings": asdict(settings),
             "targets": asdict(targets)}, settings)


_OVERRIDE_OPTIONS = {"levels": "levels", "gate_ms": "gate_ms", "nplc": "nplc", "knee_points": "linear_range",
                     "layer_knees": "linear_range"}
"""Probe settings the command line and recipes override -> the option that sets them."""


def _given(given: Collection[str] | None, method: str, setting_overrides: dict | None, n_configs: int | None,
           targets: Targets | None) -> set[str]:
    """The options a caller set: ``given`` when known, else the arguments that differ from their defaults."""
    if given is not None:
        return set(given)
    out = {_OVERRIDE_OPTIONS[k] for k in setting_overrides or {} if k in _OVERRIDE_OPTIONS}
    out |= {"method"} if method != "both" else set()
    out |= {"configs"} if n_configs is not None else set()
    if targets is not None:
        out |= {name for name, value in (("target_a_plus", targets.a_plus), ("target_ratio", targets.ratio),
                                         ("time_budget_s", targets.time_budget_s)) if value is not None}
        out |= {"max_configs"} if targets.max_configurations != MAX_CONFIGURATIONS else set()
    return out


def _option_values(parameters: dict) -> dict[str, object]:
    """A run's ``parameters`` as the options that set them (``linear_range``: off, input or all)."""
    s, t = parameters.get("settings", {}), parameters.get("targets", {})
    return {"method": parameters.get("method"), "configs": parameters.get("n_pairs"), "levels": s.get("levels"),
            "gate_ms": s.get("gate_ms"), "nplc": s.get("nplc"),
            "linear_range": "off" if not s.get("knee_points") else "all" if s.get("layer_knees") else "input",
            "target_a_plus": t.get("a_plus"), "target_ratio": t.get("ratio"), "time_budget_s": t.get("time_budget_s"),
            "max_configs": t.get("max_configurations")}


def _resume_differences(stored: dict, requested: dict, given: set[str]) -> list[str]:
    """``"levels 6 (not 8)"`` for every given option whose value differs from the stored run's."""
    have = _option_values(stored)
    want = _option_values(json.loads(json.dumps(requested)))
    return [f"{name} {have[name]} (not {want[name]})" for name in have if name in given and have[name] != want[name]]


def _measure(bench: Bench, store: CharacterisationFile, jobs: list[Job], method: str, settings: ProbeSettings,
             targets: Targets, seed: int, progress: Progress | None, say: Callable[[str], None]) -> None:
    """Run every job not done yet on the powered bench, recording as it goes; stop early on the targets."""
    chip = bench.chip
    done_keys = _done_keys(store.read_raw())
    todo = [j for j in jobs if json.dumps(j.key) not in done_keys]
    estimate = sum(estimate_job_s(j, chip, settings, seed) for j in todo)
    say(f"{len(todo)} of {len(jobs)} runs to do; estimated bench time {estimate:.0f} s"
        + (" (at most: stops early once the targets are met)" if targets.adaptive else ""))
    if not todo:  # e.g. killed while the fits were written: nothing to measure, nothing to power
        return
    spent = 0.0
    bench.set_nplc(settings.nplc)
    bench.power_up()
    bench.bridge.reset()
    prober = Prober(bench, store, settings, progress)
    next_id = _next_config_id(store.read_raw())
    chains_total = sum(j.configures for j in jobs)
    chains_done = sum(1 for j in jobs if j.configures and json.dumps(j.key) in done_keys)
    top_codes: dict[tuple[int, ...], int] = _recorded_top_codes(store.read_raw())
    dark_held = plans.dark_held(chip, store.read_raw())
    target = settings.target_soma_input_a
    _keep_below_onsets(prober, store.read_raw(), target)
    stopped = False
    for job in todo:
        if not stopped and job.kind == "chain" and targets.adaptive and chains_done >= 2 * MIN_CHAIN_PAIRS \
                and _targets_met(chip, store, method, targets, spent):
            say("precision targets met" if targets.a_plus or targets.ratio else "time budget spent")
            stopped = True
        if stopped and job.kind != supply_probe.SUPPLY_KIND:
            continue  # the supply run still reads: the die's model needs it, and it is short
        _run_job(prober, job, next_id, top_codes, dark_held, seed)
        store.mark_done(next_id, job.key)
        if job.kind == "dark":
            dark_held = plans.dark_held(chip, store.read_raw())
        elif job.kind == "linear_range":
            _keep_below_onsets(prober, store.read_raw(), target)
        next_id += 1
        spent += estimate_job_s(job, chip, settings, seed)
        if job.configures:
            chains_done += 1
            if progress:
                progress("chain configurations", chains_done, chains_total)


def _complete(partial: Path, out: Path, method: str) -> AnalysisResult:
    """Fit a copy of the finished partial file and move it over ``out`` in one step; drop the partial.

    The fits go into a copy, so a crash while they are written leaves the
    partial file (closed cleanly) as it was, and ``out`` as it was.
    """
    with files.atomic_output(out) as staged:
        shutil.copyfile(partial, staged)
        result = refit(staged, method)
    partial.unlink()
    return result


def _plan(chip: ChipDescription, method: str, n_pairs: int, seed: int, settings: ProbeSettings) -> list[Job]:
    return plan_jobs(chip, method, n_pairs, seed, settings.knee_points > 0, settings.probe_rounds,
                     settings.layer_knees)


def _keep_below_onsets(prober: Prober, raw: RawTables, target_a: float) -> None:
    """Lower the planned soma input when the linear-range run found a soma compressing early."""
    limit = soma_input_limit_a(target_a, [onset.value for onset in measured_onsets(prober.chip, raw)])
    prober.settings = replace(prober.settings, target_soma_input_a=limit)


def _run_job(prober: Prober, job: Job, config_id: int, top_codes: dict[tuple[int, ...], int],
             dark_held: list[np.ndarray] | None, seed: int) -> None:
    if job.kind == "dark":
        prober.dark(config_id)
    elif job.kind == "reference":
        prober.reference(config_id)
    elif job.kind == "ext_sweep":
        prober.ext_in_sweep(config_id)
    elif job.kind == "linear_range" and job.tag:
        prober.layer_linear_range(config_id, job.tag)
    elif job.kind == "linear_range":
        prober.linear_range(config_id, ext_gains(prober.chip, prober.store.read_raw()))
    elif job.kind == "bias_sweep":
        prober.bias_sweep(config_id)
    elif job.kind == "negative_probe":
        prober.negative_probe(config_id, job.probe(prober.chip, prober.settings, seed, dark_held))
    elif job.kind == supply_probe.SUPPLY_KIND:
        supply_probe.measure_configuration(prober, config_id, job.tag, seed)
    else:
        top = prober.chain(config_id, job.chain(prober.chip, prober.settings, dark_held),
                           top_code=top_codes.get(job.shifts)
                           if job.kind == "chain_negative" else None)
        top_codes[job.shifts] = top


def _targets_met(chip: ChipDescription, store: CharacterisationFile, method: str, targets: Targets,
                 spent_s: float) -> bool:
    """True when every layer meets the precision targets, or the time budget is spent."""
    if targets.time_budget_s is not None and spent_s >= targets.time_budget_s:
        return True
    if targets.a_plus is None and targets.ratio is None:
        return False
    summary = analyse(chip, store.read_raw(), method).summary
    for l, layer in enumerate(summary["layers"]):
        if targets.a_plus is not None and not layer["rms_rel_std_a_plus"] <= targets.a_plus:
            return False
        ratio = layer.get("rms_rel_std_ratio")
        if targets.ratio is not None and l < chip.n_layers - 1 and method != "network" \
                and not (ratio is not None and ratio <= targets.ratio):
            return False
    return True


def _done_keys(raw: RawTables) -> set[str]:
    jobs = raw.done["job"] if raw.done is not None else []
    return {str(job.decode() if isinstance(job, bytes) else job) for job in jobs}


def _recorded_top_codes(raw: RawTables) -> dict[tuple[int, ...], int]:
    done = raw.finished_configs()
    out = {}
    for row in raw.configs:
        params = json.loads(row["params"])
        if int(row["config"]) in done and "top_code" in params and row["kind"] == b"chain":
            out[tuple(params["shifts"])] = int(params["top_code"])
    return out


def _next_config_id(raw: RawTables) -> int:
    """One past every configuration id in the file (readings of a run a kill cut short keep theirs)."""
    tables = (raw.configs, raw.mon, raw.c2f, raw.done if raw.done is not None else raw.configs)
    tables += (raw.supply.configurations, raw.supply.readings) if raw.supply is not None else ()
    ids = [int(table["config"].max()) for table in tables if len(table)]
    return max(ids) + 1 if ids else 0


def refit(path: str | Path, method: str | None = None) -> AnalysisResult:
    """Fit (again) from the raw records of a characterisation file and store the fits."""
    chip = read_chip(path)
    raw = read_raw(path)
    if method is None:
        method = _recorded_method(raw, path)
    if not raw.finished_configs():
        raise DataFileError(f"{path}: no finished measurement to fit (interrupted at the very start)")
    result = analyse(chip, raw, method)
    write_calibration(path, result.params, result.methods, result.flags, result.summary)
    return result


def _recorded_method(raw: RawTables, path: str | Path) -> str:
    kinds = {k.decode() if isinstance(k, bytes) else str(k) for k in raw.configs["kind"]}
    return "both" if "ext_sweep" in kinds else "network"
