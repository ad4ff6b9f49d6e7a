"""Tests of scall_env.recsys: masked tables, models, propagation, sampler, training, metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scall_env.recsys import (
    BLOCK_EDGES,
    MF,
    BPRBatch,
    BPRMargins,
    BPRSampler,
    ConvergenceResult,
    Evaluator,
    LightGCN,
    LightGCNPropagation,
    MaskedEmbedding,
    PropagationPlan,
    Recommender,
    TrainConfig,
    Trainer,
    bpr_loss,
    evaluate,
    make_model,
    normalized_adjacency,
    register_model,
    resolve_device,
    segment_adjacency,
    train_batches,
    train_to_convergence,
)
from scall_env.recsys import training as training_module
from scall_env.segment import Segment

SMALL = TrainConfig(batch_size=64, chunk_batches=5, lr=0.05, max_chunks=6)


def random_sizes(n: int, d_max: int, seed: int = 0) -> np.ndarray:
    """Random sizes in [1, d_max] that include d_max (so the width is d_max)."""
    sizes = np.random.default_rng(seed).integers(1, d_max + 1, size=n)
    sizes[0] = d_max
    return sizes.astype(np.int64)


def model_for(name: str, seg: Segment, d_max: int = 24, seed: int = 0, **kwargs) -> Recommender:
    """A model with random sizes up to ``d_max``."""
    return make_model(
        name,
        seg,
        random_sizes(seg.n_users, d_max, seed),
        random_sizes(seg.n_items, d_max, seed + 1),
        d_max=d_max,
        seed=seed,
        device="cpu",
        **kwargs,
    )


def rows_of(matrix: sp.csr_matrix, row: int) -> set[int]:
    """Column ids of one CSR row."""
    return set(matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]].tolist())


def hand_segment(
    train: list[list[int]],
    current: list[list[int]],
    test: list[list[int]],
    n_items: int,
) -> Segment:
    """A segment from explicit per-user item lists."""
    n_users = len(train)

    def csr(rows: list[list[int]]) -> sp.csr_matrix:
        dense = np.zeros((n_users, n_items), dtype=np.float32)
        for u, items in enumerate(rows):
            dense[u, items] = 1.0
        return sp.csr_matrix(dense)

    cur, tst = csr(current), csr(test)
    return Segment(
        index=1,
        n_users=n_users,
        n_items=n_items,
        train_graph=csr(train),
        current=cur,
        test=tst,
        test_users=np.flatnonzero(np.diff(tst.indptr)).astype(np.int64),
        candidate_items=np.unique(tst.indices).astype(np.int64),
        active_users=np.flatnonzero(np.diff(cur.indptr)).astype(np.int64),
        active_items=np.unique(cur.indices).astype(np.int64),
        user_freq=np.diff(cur.indptr).astype(np.int64),
        item_freq=np.bincount(cur.indices, minlength=n_items).astype(np.int64),
        n_train=int(cur.nnz),
        n_replay=0,
    )


# --------------------------------------------------------------------------- sizes and tables


@pytest.mark.parametrize(
    ("user_sizes", "message"),
    [
        (np.full(29, 4), r"user_sizes has length 29, expected 30"),
        (np.zeros(30, dtype=np.int64), r"user_sizes must lie in \[1, 16\], got values in \[0, 0\]"),
        (np.full(30, 17), r"user_sizes must lie in \[1, 16\], got values in \[17, 17\]"),
        (np.full(30, 4.0), r"user_sizes must be integers, got dtype float64"),
        (np.full((30, 1), 4), r"user_sizes must be 1-D, got shape \(30, 1\)"),
    ],
)
def test_bad_sizes_raise(segment: Segment, user_sizes: np.ndarray, message: str) -> None:
    items = np.full(segment.n_items, 4)
    with pytest.raises(ValueError, match=message):
        make_model("mf", segment, user_sizes, items, d_max=16, device="cpu")


def test_unknown_model_and_duplicate_registration(segment: Segment) -> None:
    sizes_u, sizes_i = np.full(segment.n_users, 2), np.full(segment.n_items, 2)
    with pytest.raises(ValueError, match=r"unknown model 'gru'; choose from \[.*'lightgcn'.*'mf'"):
        make_model("gru", segment, sizes_u, sizes_i)
    with pytest.raises(ValueError, match="model 'mf' is already registered"):
        register_model("MF")
    assert isinstance(make_model("LightGCN", segment, sizes_u, sizes_i, device="cpu"), LightGCN)


def test_masked_embedding_accounting_and_init() -> None:
    table = MaskedEmbedding(
        np.array([1, 3, 2]), d_max=4, generator=torch.Generator().manual_seed(0)
    )
    assert (table.num_entities, table.width, table.d_max) == (3, 3, 4)
    assert (table.n_params, table.n_bytes) == (6, 24)
    expected_mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.float32)
    assert torch.equal(table.mask, expected_mask)
    assert torch.all(table.weight[expected_mask == 0] == 0)
    full = table.full_weight()
    assert full.shape == (3, 4) and torch.all(full[:, 3] == 0)
    assert torch.equal(full[:, :3], table.weight.detach())
    ids = torch.tensor([2, 0])
    assert torch.equal(table(ids), table()[ids])

    big = MaskedEmbedding(np.full(20_000, 16), d_max=16, generator=torch.Generator().manual_seed(1))
    assert big.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert abs(big.weight.mean().item()) < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 2}, r"width must lie in \[max\(sizes\)=3, d_max=4\], got 2"),
        ({"width": 5}, r"width must lie in \[max\(sizes\)=3, d_max=4\], got 5"),
        ({"init_std": 0.0}, "init_std must be > 0"),
        ({"d_max": 0}, "d_max must be >= 1"),
    ],
)
def test_masked_embedding_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskedEmbedding(np.array([1, 3]), **{"d_max": 4, **kwargs})


def test_empty_sizes_raise() -> None:
    with pytest.raises(ValueError, match="sizes must not be empty"):
        MaskedEmbedding(np.array([], dtype=np.int64), d_max=4)


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
def test_mask_keeps_unused_columns_zero_during_training(segment: Segment, name: str) -> None:
    model = model_for(name, segment)
    trainer = Trainer(model, segment, TrainConfig(batch_size=128, lr=0.1), seed=3)
    before = [t.weight.detach().clone() for t in (model.user_table, model.item_table)]
    trainer.run(5)
    for table, old in zip((model.user_table, model.item_table), before, strict=True):
        outside = table.mask == 0
        assert outside.any()
        assert torch.all(table.weight.detach()[outside] == 0)
        assert torch.all(table.weight.grad[outside] == 0)
        assert not torch.equal(table.weight.detach()[~outside], old[~outside])


def test_model_parameter_accounting(segment: Segment) -> None:
    model = model_for("lightgcn", segment)
    expected = int(model.user_table.sizes.sum() + model.item_table.sizes.sum())
    assert model.n_params == expected and model.n_bytes == 4 * expected
    assert model.user_table.width == model.item_table.width == 24


# --------------------------------------------------------------------------- warm start


def test_warm_start_semantics() -> None:
    gen = torch.Generator().manual_seed(0)
    prev_sizes = np.array([4, 2, 5, 1, 3])
    new_sizes = np.array([2, 4, 5, 3, 1, 6, 2])
    prev = MaskedEmbedding(prev_sizes, d_max=8, generator=gen)
    prev.weight.data += 1.0 * prev.mask  # make previous values easy to tell from fresh ones
    new = MaskedEmbedding(new_sizes, d_max=8, generator=gen)
    fresh = new.weight.detach().clone()
    new.warm_start(prev)
    w = new.weight.detach()
    for i, size in enumerate(new_sizes):
        for j in range(new.width):
            if j >= size:
                assert w[i, j] == 0, (i, j)
            elif i < len(prev_sizes) and j < prev_sizes[i]:
                assert w[i, j] == prev.weight[i, j], (i, j)
            elif i < len(prev_sizes):  # grown past the old size: zeros, as the authors
                assert w[i, j] == 0, (i, j)
            else:  # a new entity keeps its fresh values
                assert w[i, j] == fresh[i, j], (i, j)

    from_state = MaskedEmbedding(new_sizes, d_max=8, generator=torch.Generator().manual_seed(9))
    from_state.weight.data.copy_(fresh)
    from_state.warm_start(prev.state_dict())
    assert torch.equal(from_state.weight, new.weight)


def test_warm_start_shrinking_table_and_errors() -> None:
    prev = MaskedEmbedding(np.array([3, 3, 3]), d_max=4, generator=torch.Generator().manual_seed(0))
    new = MaskedEmbedding(np.array([4, 1]), d_max=4, generator=torch.Generator().manual_seed(1))
    new.warm_start(prev)
    assert torch.equal(new.weight[0, :3], prev.weight[0].detach())
    assert torch.equal(new.weight[1, :1], prev.weight[1, :1].detach())
    with pytest.raises(ValueError, match=r"previous state lacks \['sizes'\]"):
        new.warm_start({"weight": prev.weight.detach()})
    with pytest.raises(ValueError, match="disagree"):
        new.warm_start({"weight": prev.weight.detach(), "sizes": torch.tensor([1, 2])})


def test_model_warm_start_across_model_types(make_segment) -> None:
    old_seg = make_segment(20, 30, seed=1)
    new_seg = make_segment(25, 34, seed=2)
    previous = model_for("mf", old_seg, d_max=16, seed=0)
    model = model_for("lightgcn", new_seg, d_max=16, seed=5)
    fresh_items = model.item_table.weight.detach().clone()
    model.warm_start(previous)
    reference = model_for("lightgcn", new_seg, d_max=16, seed=5)
    reference.warm_start(previous.state_dict())
    assert torch.equal(model.user_table.weight, reference.user_table.weight)
    assert torch.equal(model.item_table.weight, reference.item_table.weight)
    assert torch.equal(model.item_table.weight[30:], fresh_items[30:])  # new items stay fresh
    keep = torch.minimum(previous.user_table.sizes[:20], model.user_table.sizes[:20])
    for u in range(20):
        k = int(keep[u])
        assert torch.equal(model.user_table.weight[u, :k], previous.user_table.weight[u, :k])


# --------------------------------------------------------------------------- propagation


def test_normalized_adjacency_values() -> None:
    r = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32))
    a = normalized_adjacency(r).toarray()
    assert a.shape == (5, 5)
    np.testing.assert_allclose(a, a.T)
    du, di = np.array([2, 1]), np.array([1, 2, 0])
    expected = r.toarray() / np.sqrt(np.outer(du, np.where(di > 0, di, 1)))
    np.testing.assert_allclose(a[:2, 2:], expected)
    assert np.all(a[4] == 0)  # item of degree 0
    with pytest.raises(ValueError, match="2-D scipy sparse matrix"):
        normalized_adjacency(np.ones((2, 2)))


def _dense_propagation(seg: Segment, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    a = torch.tensor(normalized_adjacency(seg.train_graph).toarray(), dtype=x.dtype)
    total, layer = x, x
    for _ in range(n_layers):
        layer = a @ layer
        total = total + layer
    return total / (n_layers + 1)


def _plan_inputs(seg: Segment, d_max: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    sizes = random_sizes(seg.n_users + seg.n_items, d_max, seed)
    mask = (torch.arange(d_max) < torch.from_numpy(sizes).unsqueeze(1)).double()
    return sizes, mask


@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("active_only", [False, True])
@pytest.mark.parametrize("column_chunk", [None, 8])
def test_propagation_gradcheck(
    make_segment, n_layers: int, active_only: bool, column_chunk: int | None
) -> None:
    seg = make_segment(9, 8, density=0.3, seed=4)
    sizes, mask = _plan_inputs(seg, 40, seed=n_layers)  # width 40: blocks at 16 and 32
    plan = PropagationPlan(seg, sizes, 40, n_layers, dtype=torch.float64, column_chunk=column_chunk)
    assert plan.blocks[0] == (0, 16, False) and any(has_rows for *_, has_rows in plan.blocks)
    weight = torch.randn(seg.n_users + seg.n_items, 40, dtype=torch.float64, requires_grad=True)

    def fn(w: torch.Tensor) -> torch.Tensor:
        return LightGCNPropagation.apply(w * mask, plan, active_only)

    assert torch.autograd.gradcheck(fn, (weight,), fast_mode=True)
    out = fn(weight)
    reference = _dense_propagation(seg, weight * mask, n_layers)
    rows = plan.active if active_only and n_layers >= 2 else torch.arange(out.shape[0])
    torch.testing.assert_close(out[rows], reference[rows])


@pytest.mark.parametrize("active_only", [False, True])
def test_propagation_gradient_matches_dense_autograd(make_segment, active_only: bool) -> None:
    seg = make_segment(40, 35, seed=7)
    sizes, mask = _plan_inputs(seg, 70, seed=1)
    plan = PropagationPlan(seg, sizes, 70, 3, dtype=torch.float64)
    weight = torch.randn(seg.n_users + seg.n_items, 70, dtype=torch.float64, requires_grad=True)
    probe = torch.zeros(weight.shape, dtype=torch.float64)
    rows = plan.active if active_only else torch.arange(weight.shape[0])
    probe[rows] = torch.randn(rows.shape[0], 70, dtype=torch.float64)

    (LightGCNPropagation.apply(weight * mask, plan, active_only) * probe).sum().backward()
    ours = weight.grad.clone()
    weight.grad = None
    (_dense_propagation(seg, weight * mask, 3) * probe).sum().backward()
    torch.testing.assert_close(ours, weight.grad)


def test_propagation_plan_blocks_and_errors(segment: Segment) -> None:
    n = segment.n_users + segment.n_items
    uniform = PropagationPlan(segment, np.full(n, 64), 64, 3)
    assert uniform.blocks == [(0, 64, False)]
    sizes = np.full(n, 10)
    sizes[:3] = 100
    plan = PropagationPlan(segment, sizes, 100, 3)
    assert plan.blocks == [(0, 16, False), (16, 100, True)]  # equal row sets merge
    assert 16 in BLOCK_EDGES
    with pytest.raises(ValueError, match="n_layers must be >= 0"):
        PropagationPlan(segment, sizes, 100, -1)
    with pytest.raises(ValueError, match=r"sizes has shape \(3,\)"):
        PropagationPlan(segment, sizes[:3], 100, 3)
    with pytest.raises(ValueError, match=r"sizes must lie in \[1, width=50\]"):
        PropagationPlan(segment, sizes, 50, 3)
    with pytest.raises(ValueError, match="column_chunk must be >= 1 or None"):
        PropagationPlan(segment, sizes, 100, 3, column_chunk=0)


def test_lightgcn_matches_dense_formula(segment: Segment) -> None:
    model = model_for("lightgcn", segment, d_max=40)
    users, items = model()
    raw = torch.cat(model.raw_embeddings()).detach().double()
    reference = _dense_propagation(segment, raw, 3).float()
    torch.testing.assert_close(torch.cat([users, items]), reference, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="n_layers must be >= 0"):
        model_for("lightgcn", segment, n_layers=-1)


def test_lightgcn_operators_are_shared_and_move_with_the_model(segment: Segment) -> None:
    assert segment_adjacency(segment) is segment_adjacency(segment)
    model = model_for("lightgcn", segment)
    assert model.plan.adjacency is segment_adjacency(segment)
    users, items = model()
    model.double()
    assert model.plan.adjacency.dtype == torch.float64
    users64, items64 = model()
    torch.testing.assert_close(users64.float(), users)
    torch.testing.assert_close(items64.float(), items)
    loss = bpr_loss(model, BPRSampler(segment, 64).sample(), 1e-4)
    assert loss.dtype == torch.float64
    loss.backward()


# --------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("rounds", [16, 1, 0])
def test_sampler_triples_are_valid(make_segment, rounds: int) -> None:
    seg = make_segment(40, 30, density=0.4, seed=11)
    sampler = BPRSampler(seg, batch_size=500, seed=2, max_rejection_rounds=rounds)
    active_users, active_items = set(seg.active_users.tolist()), set(seg.active_items.tolist())
    for _ in range(5):
        batch = sampler.sample()
        assert batch.users.dtype == torch.int64 and batch.users.shape == (500,)
        for u, p, n in zip(
            batch.users.tolist(), batch.pos_items.tolist(), batch.neg_items.tolist(), strict=True
        ):
            assert u in active_users
            assert p in rows_of(seg.current, u)
            assert n in active_items and n not in rows_of(seg.train_graph, u)


@pytest.mark.parametrize("rounds", [16, 0])
def test_sampler_is_uniform(rounds: int) -> None:
    # user 0: positives {0, 1}; trained on {0..6}; free negatives {7, 8, 9}, one of them a test
    # item (the test part is unknown at training time, so it may be a negative).
    seg = hand_segment(
        train=[[0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]],
        current=[[0, 1], [3, 4, 5, 6, 7, 8, 9]],
        test=[[8], []],
        n_items=10,
    )
    sampler = BPRSampler(seg, batch_size=6000, seed=0, max_rejection_rounds=rounds)
    batch = sampler.sample()
    mine = batch.users == 0
    n_mine = int(mine.sum())
    assert 2700 < n_mine < 3300
    neg_counts = np.bincount(batch.neg_items[mine].numpy(), minlength=10)
    assert neg_counts[:7].sum() == 0
    np.testing.assert_allclose(neg_counts[7:], n_mine / 3, rtol=0.1)
    pos_counts = np.bincount(batch.pos_items[mine].numpy(), minlength=10)
    np.testing.assert_allclose(pos_counts[:2], n_mine / 2, rtol=0.1)
    # user 1 has seen every active item but 0 and 1 (item 2 is not active: never a negative).
    assert set(batch.neg_items[~mine].tolist()) == {0, 1}


def test_sampler_excludes_saturated_users() -> None:
    seg = hand_segment(
        train=[[0, 1], [0], [1]], current=[[0, 1], [0], [1]], test=[[], [], []], n_items=2
    )
    sampler = BPRSampler(seg, batch_size=50)
    assert sampler.excluded_users.tolist() == [0]
    assert set(sampler.sample().users.tolist()) == {1, 2}
    full = hand_segment(train=[[0, 1]], current=[[0, 1]], test=[[]], n_items=2)
    with pytest.raises(ValueError, match="no active user has both a positive"):
        BPRSampler(full)


def test_sampler_argument_errors(segment: Segment) -> None:
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        BPRSampler(segment, batch_size=0)
    with pytest.raises(ValueError, match="max_rejection_rounds must be >= 0, got -1"):
        BPRSampler(segment, max_rejection_rounds=-1)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        TrainConfig(batch_size=0)
    idle = hand_segment(train=[[0]], current=[[]], test=[[]], n_items=1)
    with pytest.raises(ValueError, match="segment has no active items"):
        BPRSampler(idle)


def test_sampler_replacement_and_determinism(segment: Segment) -> None:
    n_pool = BPRSampler(segment).users.shape[0]
    small = BPRSampler(segment, batch_size=n_pool, seed=1).sample()
    assert len(set(small.users.tolist())) == n_pool  # without replacement when enough users
    big = BPRSampler(segment, batch_size=3 * n_pool, seed=1).sample()
    assert big.users.shape == (3 * n_pool,)
    a = [BPRSampler(segment, 100, seed=5).sample() for _ in range(2)]
    for field in ("users", "pos_items", "neg_items"):
        assert torch.equal(getattr(a[0], field), getattr(a[1], field))
    other = BPRSampler(segment, 100, seed=6).sample()
    assert not torch.equal(a[0].neg_items, other.neg_items)


# --------------------------------------------------------------------------- loss


def test_bpr_margins_match_gathers() -> None:
    gen = torch.Generator().manual_seed(0)
    users_emb = torch.randn(7, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    items_emb = torch.randn(6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    users = torch.randint(0, 7, (40,), generator=gen)  # many duplicate pairs
    pos = torch.randint(0, 6, (40,), generator=gen)
    neg = torch.randint(0, 6, (40,), generator=gen)
    assert torch.autograd.gradcheck(
        lambda u, i: BPRMargins.apply(u, i, users, pos, neg), (users_emb, items_emb)
    )
    reference = (users_emb[users] * (items_emb[neg] - items_emb[pos])).sum(1)
    torch.testing.assert_close(BPRMargins.apply(users_emb, items_emb, users, pos, neg), reference)


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


def test_training_lowers_the_loss(segment: Segment) -> None:
    model = model_for("mf", segment)
    losses = train_batches(model, segment, 60, TrainConfig(batch_size=256, lr=0.05))
    assert losses[-10:].mean() < 0.9 * losses[:10].mean()


@register_model("test-scaled-mf")
class ScaledMF(MF):
    """A third model in a few lines: MF with doubled final embeddings."""

    def propagate(
        self, user_raw: torch.Tensor, item_raw: torch.Tensor, *, active_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Doubles the raw embeddings."""
        return 2 * user_raw, 2 * item_raw


def test_third_model_plugs_in(segment: Segment) -> None:
    model = model_for("test-scaled-mf", segment)
    assert isinstance(model, ScaledMF)
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
            model.user_table.weight.grad.cpu(),
            evaluate(model, segment),
        )
    assert results["cpu"][0] == pytest.approx(results["cuda"][0], rel=1e-5)
    torch.testing.assert_close(results["cpu"][1], results["cuda"][1], rtol=1e-4, atol=1e-7)
    for key, value in results["cpu"][2].items():
        assert results["cuda"][2][key] == pytest.approx(value, abs=1e-6)
