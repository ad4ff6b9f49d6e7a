"""What ``bench_step.py``'s child processes run: timed search trials and the LightGCN floor.

:func:`trial_timings` times ``SearchCore.trial`` at the benchmark, the skewed and random
decisions (with the parts the trial calls, through instance-level wrappers: the trial itself is
not re-implemented) and :func:`floor_seconds` beside them. See ``bench_step.py`` for what the
keys mean.
"""

from __future__ import annotations

import os
import statistics
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from _common import peak_rss_mb, place_at_segment, timed

from scall_env.config import EnvConfig
from scall_env.recsys import LightGCN, LightGCNPropagation, Recommender, TrainConfig, Trainer
from scall_env.search import SearchCore, TrialResult
from scall_env.segment import Segment
from scall_env.sizing import SizeDecision

SKEWED: tuple[float, float, float] = (0.5, 0.02, 0.02)
"""The skewed decision: a few very large sizes (up to 85 on ML-1M segment 5 at c = 32)."""


class _CallTimes:
    """Seconds spent in some methods of an object, through instance-level wrappers.

    The wrapped methods run unchanged; the caller (``SearchCore.trial``) is not re-implemented.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, obj: Any, method: str, key: str) -> None:
        original = getattr(obj, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value, seconds = timed(original, *args, **kwargs)
            self.seconds[key] = self.seconds.get(key, 0.0) + seconds
            return value

        setattr(obj, method, wrapper)


def floor_seconds(model: LightGCN, repeats: int, seed: int = 0) -> list[float]:
    """Times what a LightGCN batch cannot avoid, ``repeats`` times (after one warm-up).

    One bare propagation forward and backward through the model's plan at its widths (the
    active-row products training runs) plus one fused Adam step over a vector of the model's used
    parameters; no sampling, loss, regularisation or table reads.

    Args:
        model: A trial model (its sizes set the widths and the parameter count).
        repeats: Timed repetitions.
        seed: Seed of the stand-in gradients.

    Returns:
        The seconds of each repetition.
    """
    generator = torch.Generator().manual_seed(seed)
    dev = model.device
    x = model.raw().detach().requires_grad_()
    grad = torch.randn(model.active.shape[0], model.width, generator=generator).to(dev) * 1e-4
    params = torch.zeros(model.n_params, device=dev, requires_grad=True)
    params.grad = torch.randn(model.n_params, generator=generator).to(dev) * 1e-3
    optimizer = torch.optim.Adam([params], lr=1e-3, fused=dev.type in ("cpu", "cuda"))

    def once() -> None:
        LightGCNPropagation.apply(x, model.plan, True).backward(grad)
        x.grad = None
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    once()
    return [timed(once)[1] for _ in range(repeats)]


def batch_halves(
    model: Recommender, segment: Segment, config: TrainConfig, seed: int, batches: int
) -> tuple[float, float]:
    """Per-batch seconds of the two halves of a training batch, each timed alone.

    Drawing: ``batches`` calls of a trainer's sampler. Training: ``Trainer.run(batches)`` with one
    drawn batch served again every time (an instance-level stand-in for the sampler), so the steps
    run with a run's thread and denormal settings, and the run's prefetch thread draws nothing.

    Args:
        model: A model of ``segment`` (trained on further).
        segment: The segment.
        config: Training settings.
        seed: Seed of the sampler.
        batches: Batches of each half.

    Returns:
        Seconds a batch of drawing and of training.
    """
    trainer = Trainer(model, segment, config, seed=seed)
    sampler = trainer.sampler

    def draw() -> None:
        for _ in range(batches):
            sampler.sample()

    sample_s = timed(draw)[1] / batches
    batch = sampler.sample()
    trainer.sampler = SimpleNamespace(sample=lambda: batch)  # type: ignore[assignment]
    return sample_s, timed(trainer.run, batches)[1] / batches


def _time_trials(
    core: SearchCore, decisions: list[SizeDecision], seeds: list[int], calls: _CallTimes
) -> tuple[list[dict[str, Any]], TrialResult | None]:
    """Times ``core.trial(decision, seed)`` for each pair, with the parts ``calls`` wraps.

    Returns:
        One record per trial, and the last trial's result.
    """
    segment = core.segment(core.segment_index)
    trials, result = [], None
    for decision, seed in zip(decisions, seeds, strict=True):
        calls.seconds.clear()
        result, trial_s = timed(core.trial, decision, seed)
        parts = {key: calls.seconds[key] for key in ("sizing_s", "model_s", "trial_eval_s")}
        train_s = trial_s - sum(parts.values())
        # what train_batches builds before its batches, on the same model and segment
        _, setup_s = timed(Trainer, result.model, segment, core.config.train_config, seed=seed)
        trials.append(
            {
                "trial_s": trial_s,
                **parts,
                "trainer_setup_s": setup_s,
                "train_s": train_s,
                "batch_s": max(train_s - setup_s, 0.0) / core.config.trial_batches,
                "fitness": result.fitness,
                "size_max": int(max(result.sizes.user_sizes.max(), result.sizes.item_sizes.max())),
            }
        )
    return trials, result


def trial_timings(
    config: dict[str, Any],
    segment: int,
    decision: list[float],
    repeat: int,
    seed: int,
    random_actions: int = 10,
    floor_repeats: int = 20,
) -> dict[str, Any]:
    """Times trials on ``segment`` in this process (and the LightGCN floor beside them).

    Args:
        config: ``EnvConfig`` keywords (:func:`env_kwargs`).
        segment: The segment searched.
        decision: ``(ratio, alpha_user, alpha_item)`` of the benchmark trials.
        repeat: Trials at the benchmark and at the skewed decision; trial ``i`` has seed
            ``seed + i``.
        seed: Seed of the first trial, of the stand-in committed model and of the random actions.
        random_actions: Trials at uniform random actions (seeds ``seed + repeat + i``).
        floor_repeats: Repetitions of :func:`floor_seconds` (LightGCN only).

    Returns:
        JSON-ready timings: the best benchmark trial and its parts, every trial's time and
        fitness, the skewed and random trials, the floors.
    """
    core = SearchCore(EnvConfig(**config))
    _, build_s = timed(lambda: core.stream)
    seg, segment_s = timed(core.segment, segment)
    place_at_segment(core, segment, seed)
    evaluator, evaluator_build_s = timed(core.evaluator, seg)
    evaluate = evaluator.evaluate
    rss_before_mb = peak_rss_mb()
    # The first optimiser of a process imports torch._dynamo (about 1.5 s): a one-off cost that
    # an environment pays in its first reset, not in every trial, so it is timed apart.
    _, warmup_s = timed(Trainer, core.model, seg, core.config.train_config)
    calls = _CallTimes()
    calls.wrap(core, "sizes", "sizing_s")
    calls.wrap(core, "new_model", "model_s")
    calls.wrap(evaluator, "evaluate", "trial_eval_s")
    benchmark, skewed = SizeDecision(*decision), SizeDecision(*SKEWED)
    lightgcn = core.config.base_model == "lightgcn"

    def floor(at: SizeDecision, repeats: int) -> list[float]:
        model = core.new_model(seg, core.sizes(at, seg, trial=True), seed)
        return floor_seconds(model, repeats, seed) if lightgcn else []

    seeds = [seed + i for i in range(repeat)]
    floors = floor(benchmark, floor_repeats // 2)
    trials, result = _time_trials(core, [benchmark] * repeat, seeds, calls)
    floors += floor(benchmark, floor_repeats - floor_repeats // 2)
    trial_peak_rss_mb = peak_rss_mb()  # before the other trials and evaluations below
    eval_s = min(timed(evaluate, result.model)[1] for _ in range(3))
    sample_s, train_step_s = batch_halves(
        result.model, seg, core.config.train_config, seed, core.config.trial_batches
    )
    sizes = result.sizes
    del result
    skewed_trials, _ = _time_trials(core, [skewed] * repeat, seeds, calls)
    skewed_floors = floor(skewed, floor_repeats)
    rng = np.random.default_rng(seed)
    actions = [SizeDecision.from_action(rng.uniform(-1, 1, 3)) for _ in range(random_actions)]
    random_seeds = [seed + repeat + i for i in range(random_actions)]
    random_trials, _ = _time_trials(core, actions, random_seeds, calls)
    best = min(trials, key=lambda trial: trial["trial_s"])
    best_skewed = min(skewed_trials, key=lambda trial: trial["trial_s"])
    report = {
        "model": core.config.base_model,
        **best,
        "trial_s_all": [trial["trial_s"] for trial in trials],
        "fitness_all": [trial["fitness"] for trial in trials],
        "trial_skewed_s": best_skewed["trial_s"],
        "batch_skewed_s": best_skewed["batch_s"],
        "size_max_skewed": best_skewed["size_max"],
        "trial_random_s": statistics.fmean(t["trial_s"] for t in random_trials)
        if random_trials
        else None,
        "batch_random_s": statistics.fmean(t["batch_s"] for t in random_trials)
        if random_trials
        else None,
        "trial_random_s_all": [trial["trial_s"] for trial in random_trials],
        "size_max_random_all": [trial["size_max"] for trial in random_trials],
        "eval_s": eval_s,
        "sample_s": sample_s,
        "train_step_s": train_step_s,
        "halves_ratio": best["batch_s"] / (sample_s + train_step_s),
        "evaluator_build_s": evaluator_build_s,
        "process_warmup_s": warmup_s,
        "build_s": build_s,
        "segment_s": segment_s,
        "rss_before_trial_mb": rss_before_mb,
        "trial_peak_rss_mb": trial_peak_rss_mb,
        "params_used": int(sizes.params_used),
        "budget_params": int(sizes.budget_params),
        "device": str(core.config.device),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }
    if lightgcn:
        report["floor_s"] = statistics.median(floors)
        report["floor_s_all"] = floors
        report["floor_ratio"] = best["batch_s"] / report["floor_s"]
        report["floor_skewed_s"] = statistics.median(skewed_floors)
        report["floor_ratio_skewed"] = best_skewed["batch_s"] / report["floor_skewed_s"]
    return report
