"""Tests of scall_env.recsys training: sampler, BPR loss, metrics, training loops, devices."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from recsys_support import SMALL, hand_segment, model_for, random_sizes, rows_of

from scall_env.recsys import (
    MF,
    MODELS,
    BPRBatch,
    BPRMargins,
    BPRSampler,
    ConvergenceResult,
    Evaluator,
    Recommender,
    TrainConfig,
    Trainer,
    bpr_loss,
    denormals_flushed,
    evaluate,
    make_model,
    pair_pattern,
    register_model,
    resolve_device,
    train_batches,
    train_to_convergence,
)
from scall_env.recsys import training as training_module
from scall_env.recsys.propagation import PropagationPlan
from scall_env.segment import Segment

# --------------------------------------------------------------------------- loss


def test_bpr_margins_match_gathers() -> None:
    gen = torch.Generator().manual_seed(0)
    n_users, n_items = 7, 6  # active rows: users 0..6, then items 7..12
    emb = torch.randn(n_users + n_items, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    users = torch.randint(0, n_users, (40,), generator=gen)  # many duplicate pairs
    pos = torch.randint(0, n_items, (40,), generator=gen)
    neg = torch.randint(0, n_items, (40,), generator=gen)
    pairs = pair_pattern(users.numpy(), pos.numpy(), neg.numpy(), n_users, n_items, emb.device)
    assert pairs.batch == 40 and pairs.n_rows == n_users + n_items
    assert torch.autograd.gradcheck(lambda e: BPRMargins.apply(e, pairs), (emb,))
    reference = (emb[users] * (emb[n_users + neg] - emb[n_users + pos])).sum(1)
    torch.testing.assert_close(BPRMargins.apply(emb, pairs), reference)


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
def test_bpr_loss_matches_definition(segment: Segment, name: str) -> None:
    model = model_for(name, segment)
    batch = BPRSampler(segment, 300, seed=4).sample()
    loss = bpr_loss(model, batch, l2_reg=0.5)
    users, items = model()
    u, p, n = users[batch.users], items[batch.pos_items], items[batch.neg_items]
    bpr = torch.nn.functional.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
    reg = (
        model.user_table(batch.users).square().sum()
        + model.item_table(batch.pos_items).square().sum()
        + model.item_table(batch.neg_items).square().sum()
    ) / 300
    torch.testing.assert_close(loss, bpr + 0.5 * reg)


# --------------------------------------------------------------------------- metrics


def reference_metrics(
    seg: Segment, users: np.ndarray, items: np.ndarray, ks: tuple[int, ...]
) -> dict[str, float]:
    """Plain per-user implementation of Recall@K, NDCG@K and fitness."""
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    for u in seg.test_users:
        train = rows_of(seg.train_graph, u)
        positives = rows_of(seg.test, u)
        pool = [i for i in seg.candidate_items.tolist() if i not in train]
        ranked = sorted(pool, key=lambda i: -float(users[u] @ items[i]))
        for k in ks:
            top = ranked[:k]
            hits = [1.0 if i in positives else 0.0 for i in top]
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(positives))))
            sums[f"recall@{k}"] += sum(hits) / len(positives)
            sums[f"ndcg@{k}"] += dcg / idcg
    out = {key: value / len(seg.test_users) for key, value in sums.items()}
    out["fitness"] = (out["recall@20"] + out["ndcg@20"]) / 2
    return out


@pytest.mark.parametrize(
    ("n_users", "n_items", "test_density", "batch_size"),
    [(40, 60, 0.15, 7), (30, 15, 0.3, 1024), (25, 200, 0.05, 3)],
)
def test_metrics_match_reference(
    make_segment, n_users: int, n_items: int, test_density: float, batch_size: int
) -> None:
    seg = make_segment(n_users, n_items, test_density=test_density, seed=n_items)
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(n_users, 6, generator=gen)
    items = torch.randn(n_items, 6, generator=gen)
    ours = Evaluator(seg, batch_size=batch_size).evaluate_embeddings(users, items)
    expected = reference_metrics(seg, users.double().numpy(), items.double().numpy(), (5, 10, 20))
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


def test_fitness_always_uses_k20_and_evaluate_helper(segment: Segment) -> None:
    model = model_for("mf", segment)
    metrics = Evaluator(segment, ks=(3,)).evaluate(model)
    assert set(metrics) == {"recall@3", "ndcg@3", "recall@20", "ndcg@20", "fitness"}
    assert metrics["fitness"] == pytest.approx((metrics["recall@20"] + metrics["ndcg@20"]) / 2)
    assert evaluate(model, segment, ks=(3,)) == metrics


def test_evaluator_errors(segment: Segment) -> None:
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of positive integers"):
        Evaluator(segment, ks=())
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of positive integers"):
        Evaluator(segment, ks=(0, 5))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        Evaluator(segment, batch_size=0)
    no_test = hand_segment(train=[[0], [1]], current=[[0], [1]], test=[[], []], n_items=2)
    with pytest.raises(ValueError, match="segment has no test users"):
        Evaluator(no_test)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_batches": 0}, "chunk_batches must be >= 1"),
        ({"patience": 0}, "patience must be >= 1"),
        ({"max_chunks": 0}, "max_chunks must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"min_lr": 0.1}, r"min_lr must lie in \(0, lr=0.03\]"),
        ({"lr_decay": 1.5}, r"lr_decay must lie in \(0, 1\]"),
        ({"l2_reg": -1.0}, "l2_reg must be >= 0"),
        ({"min_loss_drop": -0.1}, "min_loss_drop must be >= 0"),
        ({"flush_denormals": 1}, "flush_denormals must be True or False, got 1"),
    ],
)
def test_train_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_paper_defaults() -> None:
    config = TrainConfig()
    assert (config.batch_size, config.lr, config.l2_reg, config.chunk_batches) == (
        10_000,
        0.03,
        1e-4,
        200,
    )
    assert (config.lr_decay, config.min_lr, config.patience, config.min_loss_drop) == (
        0.95,
        0.001,
        3,
        0.05,
    )


def test_learning_rate_schedule(segment: Segment) -> None:
    config = TrainConfig(batch_size=32, chunk_batches=3, lr=0.04, lr_decay=0.5, min_lr=0.015)
    trainer = Trainer(model_for("mf", segment), segment, config)
    rates = []
    for _ in range(3):
        trainer.run(3)
        rates.append(trainer.lr)
    assert rates == [0.02, 0.015, 0.015]
    assert trainer.batches_done == 9
    with pytest.raises(ValueError, match="n_batches must be >= 0"):
        trainer.run(-1)


class ScriptedEvaluator:
    """Returns scripted fitness values and snapshots the model at every evaluation."""

    def __init__(self, fitness: list[float]) -> None:
        self.fitness = list(fitness)
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def evaluate(self, model: Recommender) -> dict[str, float]:
        self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        value = self.fitness[len(self.snapshots) - 1]
        return {"recall@20": value, "ndcg@20": value, "fitness": value}


def _scripted_losses(monkeypatch: pytest.MonkeyPatch, losses: list[float]) -> None:
    script = iter(losses)
    monkeypatch.setattr(
        training_module.Trainer, "run", lambda self, n: np.full(n, next(script), dtype=float)
    )


@pytest.mark.parametrize(
    ("fitness", "losses", "chunks", "best", "converged"),
    [
        # best at chunk 1, then 3 stale chunks with a flat loss: stop after chunk 4 (5 chunks)
        ([0.1, 0.3, 0.2, 0.2, 0.2, 0.9], [1.0] * 6, 5, 1, True),
        # stale from chunk 1, but the loss keeps falling 10% per chunk until chunk 5
        ([0.5] + [0.1] * 9, [1.0, 0.9, 0.81, 0.73, 0.66, 0.65, 0.65, 0.65, 0.65, 0.65], 6, 0, True),
        # improving every chunk: only the cap stops it
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1.0] * 6, 6, 5, False),
        # a loss increase counts as "lowered by less than 5%"
        ([0.4, 0.3, 0.3, 0.3], [1.0, 0.5, 0.2, 0.3], 4, 0, True),
    ],
)
def test_convergence_stopping_rule(
    segment: Segment,
    monkeypatch: pytest.MonkeyPatch,
    fitness: list[float],
    losses: list[float],
    chunks: int,
    best: int,
    converged: bool,
) -> None:
    _scripted_losses(monkeypatch, losses)
    result = train_to_convergence(
        model_for("mf", segment), segment, SMALL, evaluator=ScriptedEvaluator(fitness)
    )
    assert isinstance(result, ConvergenceResult)
    assert (result.chunks_run, result.best_chunk, result.converged) == (chunks, best, converged)
    assert result.best_fitness == fitness[best]
    assert result.fitness == fitness[:chunks]
    assert result.losses == pytest.approx(losses[:chunks])


def test_convergence_keeps_best_weights(segment: Segment) -> None:
    model = model_for("lightgcn", segment)
    scripted = ScriptedEvaluator([0.1, 0.5, 0.2, 0.2, 0.2, 0.2])
    config = TrainConfig(batch_size=64, chunk_batches=4, lr=0.05, min_loss_drop=10.0)
    result = train_to_convergence(model, segment, config, evaluator=scripted)
    assert (result.chunks_run, result.best_chunk) == (5, 1)
    assert result.lrs == pytest.approx([0.05 * 0.95**i for i in range(5)])
    state = model.state_dict()
    for key, value in scripted.snapshots[1].items():
        assert torch.equal(state[key], value), key
    assert not torch.equal(state["user_table.weight"], scripted.snapshots[-1]["user_table.weight"])


def test_train_to_convergence_end_to_end(segment: Segment) -> None:
    model = model_for("lightgcn", segment)
    result = train_to_convergence(model, segment, SMALL, seed=1)
    assert 1 <= result.chunks_run <= SMALL.max_chunks
    assert len(result.losses) == len(result.fitness) == len(result.lrs) == result.chunks_run
    assert result.best_fitness == max(result.fitness)
    assert result.metrics["fitness"] == result.best_fitness
    assert evaluate(model, segment)["fitness"] == pytest.approx(result.best_fitness)


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
def test_training_is_deterministic(segment: Segment, name: str) -> None:
    runs = []
    for sampler_seed in (0, 0, 1):
        model = model_for(name, segment, seed=3)
        losses = train_batches(model, segment, 6, TrainConfig(batch_size=64), seed=sampler_seed)
        runs.append((losses, model.user_table.weight.detach().clone()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])
    assert runs[0][0].shape == (6,) and np.all(np.isfinite(runs[0][0]))


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
def test_run_draws_ahead_yet_trains_as_single_steps(segment: Segment, name: str) -> None:
    # run() samples the next batch in a worker thread: the batches, losses and weights must be
    # those of stepping one batch at a time, and no batch is drawn past the last one
    config = TrainConfig(batch_size=64)
    ahead, single = (Trainer(model_for(name, segment, seed=3), segment, config) for _ in "ab")
    threads = torch.get_num_threads()
    losses = np.concatenate([ahead.run(4), ahead.run(3)])
    assert torch.get_num_threads() == threads  # restored after MF's single-threaded batches
    assert ahead._threads() == (1 if name == "mf" else threads)
    stepped = [single.step().item() for _ in range(7)]
    np.testing.assert_array_equal(losses, stepped)
    assert torch.equal(ahead.model.user_table.packed, single.model.user_table.packed)
    assert torch.equal(ahead.sampler.sample().users, single.sampler.sample().users)


@pytest.mark.parametrize("flush", [True, False])
def test_training_flushes_denormals_only_when_asked(
    segment: Segment, monkeypatch: pytest.MonkeyPatch, flush: bool
) -> None:
    modes = []
    step = Trainer.step

    def recording(trainer: Trainer, batch: BPRBatch | None = None) -> torch.Tensor:
        modes.append(denormals_flushed())
        return step(trainer, batch)

    monkeypatch.setattr(Trainer, "step", recording)
    trainer = Trainer(model_for("mf", segment), segment, TrainConfig(32, flush_denormals=flush))
    trainer.run(3)
    assert modes == [flush] * 3
    assert not denormals_flushed()


def test_flushing_denormals_leaves_the_weights_unchanged(
    segment: Segment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Weights scaled up 3000 times push some BPR margins past -87, where sigmoid(margin) is a
    # float32 denormal: the gradient entering the backward propagation holds denormals unless
    # they are flushed, yet the losses and the weights after Adam's steps are the same bits.
    shares: list[int] = []
    backward = PropagationPlan.backward_product

    def counting(plan: PropagationPlan, grad: torch.Tensor, active_only: bool) -> torch.Tensor:
        shares.append(int(((grad != 0) & (grad.abs() < torch.finfo(grad.dtype).tiny)).sum()))
        return backward(plan, grad, active_only)

    monkeypatch.setattr(PropagationPlan, "backward_product", counting)
    runs = {}
    for flush in (False, True):
        shares.clear()
        model = model_for("lightgcn", segment, seed=3)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(3000.0)
        config = TrainConfig(batch_size=256, flush_denormals=flush)
        losses = Trainer(model, segment, config).run(2)
        runs[flush] = (losses, [p.detach().clone() for p in model.parameters()], list(shares))
    assert sum(runs[False][2]) > 0 and sum(runs[True][2]) == 0
    np.testing.assert_array_equal(runs[False][0], runs[True][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[False][1], runs[True][1], strict=True))


def test_training_lowers_the_loss(segment: Segment) -> None:
    model = model_for("mf", segment)
    losses = train_batches(model, segment, 60, TrainConfig(batch_size=256, lr=0.05))
    assert losses[-10:].mean() < 0.9 * losses[:10].mean()


class ScaledMF(MF):
    """A third model in a few lines: MF with doubled final embeddings."""

    def propagate(self, raw: torch.Tensor, *, active_only: bool = False) -> torch.Tensor:
        """Doubles the raw embeddings."""
        return 2 * super().propagate(raw, active_only=active_only)


@pytest.fixture
def scaled_mf() -> Iterator[str]:
    """``ScaledMF`` registered for one test (the registry is process-wide)."""
    register_model("test-scaled-mf")(ScaledMF)
    yield "test-scaled-mf"
    del MODELS["test-scaled-mf"]


def test_third_model_plugs_in(segment: Segment, scaled_mf: str) -> None:
    model = model_for(scaled_mf, segment)
    assert isinstance(model, ScaledMF)
    raw, final = model.training_embeddings()  # row-wise: the active rows only
    torch.testing.assert_close(final, 2 * raw)
    torch.testing.assert_close(raw, model.raw()[model.active])
    losses = train_batches(model, segment, 3, TrainConfig(batch_size=32))
    assert np.all(np.isfinite(losses))
    assert 0.0 <= evaluate(model, segment)["fitness"] <= 1.0


# --------------------------------------------------------------------------- devices


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="invalid device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(segment: Segment) -> None:
    sizes_u, sizes_i = random_sizes(segment.n_users, 24), random_sizes(segment.n_items, 24, 1)
    results = {}
    for device in ("cpu", "cuda"):
        model = make_model("lightgcn", segment, sizes_u, sizes_i, d_max=24, device=device)
        batch = BPRSampler(segment, 128, seed=0, device=device).sample()
        assert isinstance(batch, BPRBatch) and batch.users.device.type == device
        loss = bpr_loss(model, batch, 1e-4)
        loss.backward()
        results[device] = (
            loss.item(),
            model.user_table.packed.grad.cpu(),
            evaluate(model, segment),
        )
    assert results["cpu"][0] == pytest.approx(results["cuda"][0], rel=1e-5)
    torch.testing.assert_close(results["cpu"][1], results["cuda"][1], rtol=1e-4, atol=1e-7)
    for key, value in results["cpu"][2].items():
        assert results["cuda"][2][key] == pytest.approx(value, abs=1e-6)
