"""What limits mini-batch TTFS training on Fashion-MNIST: one variant of the trainer's step per invocation.

RCS-L's Fashion-MNIST model stops near 80 % on its own training images (docs/results-ttfs.md), far below
what 784-256-128-10 can fit. Each variant removes one suspect and trains DSTD for the same wall time on a
simulated RCS-L die's true parameters (die-mean lambdas, as a characterisation reports them; no bench, so
that only the training differs), with the trainer's own step (``trainer._step_loss``: one drawn die per
step, jittered inputs, straight-through rounding to the die's codes) and its Adam step sizes, cosine-annealed
over the budget. It then reports the accuracy, at the nominal write and with the exact spike-time forward
pass, on 2000 training and 2000 test images, and how the hidden layers fire.

Variants (``--variant``):

- ``baseline``: the trainer as it is;
- ``continuous``: no rounding to codes, in training or in the judgement (an ideal analog weight; a ceiling,
  not a die);
- ``noiseless``: the measured die at every step (no drawn die) and no input jitter;
- ``step50``: DSTD on a 50 ns grid (the trainer: 100 ns);
- ``no-regularisers``: cross entropy alone (the objective's early-target and revive terms off);
- ``temperature1000``: softmax temperature 1000 ns (the objective: 250 ns);
- ``first-lr-0.15``, ``first-lr-0.05``: Adam's code step size 0.15 or 0.05 on matrix 0 only (the others
  keep 0.5). Adam moves every code by about its step size whatever its gradient, and matrix 0's 785-row
  fan-in settles its codes near 0 (mean magnitude about 0.1 code), so at 0.5 its codes may follow the noise;
- ``ideal-continuous``: the mapped baseline's physics-free circuit (``ideal.ideal_parameters``: constant
  current sources, every neuron alike, no coupling or leak) with analog weights: what this training reaches
  on a TTFS network of the die's geometry with none of the die's physics.

``--init-scale`` sets the initial spread of the latent codes in units of ``trainer.INIT_SPREAD`` (default: the
trainer's ``MINIBATCH_INIT_SCALE``, 3, which this study chose; every variant above was first measured at 1).

Usage (two invocations side by side share the 2 cores, as the recorded study did; each takes the budget
plus about 2 minutes)::

    python benchmarks/ttfs_training_limits.py --variant baseline --minutes 14 --init-scale 1 &
    python benchmarks/ttfs_training_limits.py --variant continuous --minutes 14 --init-scale 1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from labctl.families.ttfs import model
from labctl.families.ttfs.encoding import TimeEncoding
from labctl.families.ttfs.sim.bench import SimulatedTtfsBench
from labctl.families.ttfs.sim.truth import parameters_of
from labctl.families.ttfs.tasks import load_task
from labctl.families.ttfs.training import trainer
from labctl.families.ttfs.training.ideal import ideal_parameters
from labctl.families.ttfs.training.objective import Objective

PART = "RCS-L"
VARIANTS = ("baseline", "continuous", "noiseless", "step50", "no-regularisers", "temperature1000", "first-lr-0.15",
            "first-lr-0.05", "ideal-continuous")
JUDGED_IMAGES = 2000
DTYPE = torch.float32


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a variant changes: rounding, the drawn die and jitter, the grid, the objective, matrix 0's step."""

    quantise: bool = True
    noisy: bool = True
    step_ns: float = trainer.DSTD_STEP_NS
    objective: Objective = Objective()
    first_code_lr: float = trainer.MINIBATCH_LR[0]
    ideal: bool = False


def setup_of(variant: str) -> Setup:
    return {"baseline": Setup(), "continuous": Setup(quantise=False), "noiseless": Setup(noisy=False),
            "step50": Setup(step_ns=50.0),
            "no-regularisers": Setup(objective=Objective(early_weight=0.0, revive_weight=0.0)),
            "temperature1000": Setup(objective=Objective(temperature_ns=1000.0)),
            "first-lr-0.15": Setup(first_code_lr=0.15), "first-lr-0.05": Setup(first_code_lr=0.05),
            "ideal-continuous": Setup(quantise=False, ideal=True)}[variant]


def patch_trainer(setup: Setup) -> None:
    """Point the trainer's step at the variant (the step reads these module names when it runs)."""
    trainer.DSTD_STEP_NS = setup.step_ns
    if not setup.quantise:
        trainer.site_currents_na = functools.partial(model.site_currents_na, quantise=False)
    if not setup.noisy:
        trainer.INPUT_JITTER_CODES = 0.0
        trainer.build_circuit = functools.partial(model.build_circuit, sample=False)


def spike_times(params, latent: list[torch.Tensor], bias: torch.Tensor, codes: np.ndarray,
                quantise: bool) -> list[np.ndarray]:
    """Every layer's spike times at the nominal write (exact forward pass): rounded codes, or analog ones."""
    weights = [z.detach().double().numpy() for z in latent]
    if quantise:
        weights = [np.rint(w) for w in weights]
    bias_codes = np.rint(bias.detach().clamp(0, model.MAX_TIME_CODE).double().numpy())
    return model.predict_spike_times(params, weights, codes, bias_codes, quantise=quantise)


def accuracy(times: list[np.ndarray], labels: np.ndarray) -> float:
    return float(np.mean(model.first_to_fire(times[-1], 10) == labels))


def firing(layers: list[np.ndarray]) -> list[dict]:
    """How each hidden layer fires over the judged patterns: silent and always-firing neurons, time spread."""
    out = []
    for times in layers[:-1]:
        fired = np.isfinite(times)
        share = fired.mean(axis=0)
        finite = np.where(fired, times, np.nan)
        out.append({"neurons": times.shape[1], "never": float(np.mean(share == 0)),
                    "always": float(np.mean(share == 1)), "median_time_ns": float(np.nanmedian(finite)),
                    "median_sd_ns": float(np.nanmedian(np.nanstd(finite[:, share > 0], axis=0)))})
    return out


def train(variant: str, minutes: float, seed: int, init_scale: float) -> dict:
    setup = setup_of(variant)
    patch_trainer(setup)
    torch.set_num_threads(1)
    params = parameters_of(SimulatedTtfsBench(PART, seed=seed).die.truth, per_site_lambda=False)
    if setup.ideal:
        params = ideal_parameters(params)
    data = load_task("fashion-mnist")
    encoding = TimeEncoding.of(data, larger_earlier=True)
    x_train, y_train = encoding.encode(data.X_train), data.y_train
    judged_train = np.random.default_rng(1).choice(len(y_train), JUDGED_IMAGES, replace=False)
    judged_test = np.random.default_rng(0).choice(len(data.y_test), JUDGED_IMAGES, replace=False)
    x_test, y_test = encoding.encode(data.X_test[judged_test]), data.y_test[judged_test]
    generator = torch.Generator().manual_seed(0)
    latent = [torch.nn.Parameter(trainer._initial_codes(params.matrix_shape(m), m, generator, DTYPE,
                                                        init_scale))
              for m in range(params.n_matrices)]
    bias = torch.nn.Parameter(torch.zeros(params.n_matrices, dtype=DTYPE))
    rates = (setup.first_code_lr, *trainer.MINIBATCH_LR)
    optimiser = torch.optim.Adam([{"params": latent[:1], "lr": rates[0]}, {"params": latent[1:], "lr": rates[1]},
                                  {"params": [bias], "lr": rates[2]}])
    x, y = torch.as_tensor(x_train, dtype=DTYPE), torch.as_tensor(y_train)
    budget, begun, losses = 60.0 * minutes, time.monotonic(), []
    while time.monotonic() - begun < budget:
        order = torch.randperm(len(y), generator=generator)
        for first in range(0, len(y), trainer.BATCH_SIZE):
            batch = order[first:first + trainer.BATCH_SIZE]
            _, loss = trainer._step_loss(params, latent, bias, x[batch], y[batch], 10, draws=1, mapped=False,
                                         forward="dstd", objective=setup.objective, generator=generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done = min((time.monotonic() - begun) / budget, 1.0)
            for group, base in zip(optimiser.param_groups, rates):
                group["lr"] = base * 0.5 * (1.0 + np.cos(np.pi * done))
            with torch.no_grad():
                for z in latent:
                    z.clamp_(-trainer.MAX_CODE, trainer.MAX_CODE)
                bias.clamp_(0, model.MAX_TIME_CODE)
            losses.append(float(loss.detach()))
            if len(losses) % trainer.JUDGE_STEPS == 0:
                print(f"  {variant}: step {len(losses)}, mean loss {np.mean(losses[-trainer.JUDGE_STEPS:]):.3f}",
                      file=sys.stderr, flush=True)
            if done >= 1.0:
                break
    train_layers = spike_times(params, latent, bias, x_train[judged_train], setup.quantise)
    test_layers = spike_times(params, latent, bias, x_test, setup.quantise)
    return {"variant": variant, "minutes": minutes, "init_scale": init_scale, "steps": len(losses),
            "final_loss": float(np.mean(losses[-trainer.JUDGE_STEPS:])),
            "train_accuracy": accuracy(train_layers, y_train[judged_train]),
            "test_accuracy": accuracy(test_layers, y_test), "hidden": firing(test_layers),
            "mean_code_magnitude": [float(z.detach().round().abs().mean()) for z in latent]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, default="baseline")
    parser.add_argument("--minutes", type=float, default=14.0, help="training wall time")
    parser.add_argument("--seed", type=int, default=1, help="the simulated die's seed")
    parser.add_argument("--init-scale", type=float, default=trainer.MINIBATCH_INIT_SCALE,
                        help="initial spread of the latent codes in units of the trainer's INIT_SPREAD")
    parser.add_argument("--out", type=Path, help="save the result as JSON")
    args = parser.parse_args(argv)
    result = train(args.variant, args.minutes, args.seed, args.init_scale)
    print(f"\n{PART} die seed {args.seed}, true parameters, DSTD, {args.minutes:g} min, initial spread x"
          f"{args.init_scale:g}, {JUDGED_IMAGES} images each")
    print(f"{'variant':>16s} {'steps':>6s} {'loss':>6s} {'train %':>8s} {'test %':>7s}")
    print(f"{result['variant']:>16s} {result['steps']:6d} {result['final_loss']:6.3f} "
          f"{100 * result['train_accuracy']:8.2f} {100 * result['test_accuracy']:7.2f}")
    for m, layer in enumerate(result["hidden"], start=1):
        print(f"hidden layer {m}: {layer['neurons']} neurons, {100 * layer['never']:.0f} % never fire, "
              f"{100 * layer['always']:.0f} % fire for every image, median time {layer['median_time_ns']:.0f} ns, "
              f"median spread over images {layer['median_sd_ns']:.0f} ns")
    print("mean code magnitude per matrix: " + ", ".join(f"{v:.2f}" for v in result["mean_code_magnitude"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
