"""Tests of scall_env.recsys tables and models: sizes, packed tables, warm start, propagation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from recsys_support import model_for, random_sizes

from scall_env.recsys import (
    BLOCK_EDGES,
    BPRSampler,
    LightGCN,
    LightGCNPropagation,
    MaskedEmbedding,
    PropagationPlan,
    TrainConfig,
    Trainer,
    bpr_loss,
    make_model,
    normalized_adjacency,
    prefix_mask,
    register_model,
    segment_adjacency,
)
from scall_env.segment import Segment

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
    assert torch.equal(prefix_mask(table.sizes, 3), expected_mask)
    assert torch.all(table.weight[expected_mask == 0] == 0)
    assert torch.all(table.weight[expected_mask == 1] != 0)
    assert table.packed.shape == (9,) and table.n_head == 0  # 3 x 3 table: all of it mirrored
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
def test_training_changes_only_the_stored_values(segment: Segment, name: str) -> None:
    model = model_for(name, segment)
    trainer = Trainer(model, segment, TrainConfig(batch_size=128, lr=0.1), seed=3)
    before = [t.weight.clone() for t in (model.user_table, model.item_table)]
    trainer.run(5)
    for table, old in zip((model.user_table, model.item_table), before, strict=True):
        inside = prefix_mask(table.sizes, table.width, dtype=torch.bool)
        assert not inside.all() and table.packed.numel() > table.n_params
        assert torch.all(table.weight[~inside] == 0)
        assert not torch.equal(table.weight[inside], old[inside])
        unused = torch.ones(table.packed.numel(), dtype=torch.bool)
        unused[table.slots] = False
        assert torch.all(table.packed.detach()[unused] == 0)
        assert torch.all(table.packed.grad[unused] == 0)


def test_model_parameter_accounting(segment: Segment) -> None:
    model = model_for("lightgcn", segment)
    expected = int(model.user_table.sizes.sum() + model.item_table.sizes.sum())
    assert model.n_params == expected and model.n_bytes == 4 * expected
    assert model.user_table.width == model.item_table.width == model.width == 24
    assert [p.shape for p in model.parameters()] == [model.user_table.packed.shape,
                                                     model.item_table.packed.shape]  # fmt: skip


# --------------------------------------------------------------------------- warm start


def test_warm_start_semantics() -> None:
    gen = torch.Generator().manual_seed(0)
    prev_sizes = np.array([4, 2, 5, 1, 3])
    new_sizes = np.array([2, 4, 5, 3, 1, 6, 2])
    prev = MaskedEmbedding(prev_sizes, d_max=8, generator=gen)
    prev.packed.data[prev.slots] += 1.0  # make previous values easy to tell from fresh ones
    new = MaskedEmbedding(new_sizes, d_max=8, generator=gen)
    fresh = new.weight
    new.warm_start(prev)
    w = new.weight
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
    from_state.load_state_dict({"weight": fresh, "sizes": torch.from_numpy(new_sizes)})
    from_state.warm_start(prev.state_dict())
    assert torch.equal(from_state.weight, new.weight)
    assert torch.equal(from_state.packed, new.packed)


def test_warm_start_shrinking_table_and_errors() -> None:
    prev = MaskedEmbedding(np.array([3, 3, 3]), d_max=4, generator=torch.Generator().manual_seed(0))
    new = MaskedEmbedding(np.array([4, 1]), d_max=4, generator=torch.Generator().manual_seed(1))
    new.warm_start(prev)
    assert torch.equal(new.weight[0, :3], prev.weight[0])
    assert torch.equal(new.weight[1, :1], prev.weight[1, :1])
    with pytest.raises(ValueError, match=r"previous state lacks \['sizes'\]"):
        new.warm_start({"weight": prev.weight})
    with pytest.raises(ValueError, match="disagree"):
        new.warm_start({"weight": prev.weight, "sizes": torch.tensor([1, 2])})


def test_model_warm_start_across_model_types(make_segment) -> None:
    old_seg = make_segment(20, 30, seed=1)
    new_seg = make_segment(25, 34, seed=2)
    previous = model_for("mf", old_seg, d_max=16, seed=0)
    model = model_for("lightgcn", new_seg, d_max=16, seed=5)
    fresh_items = model.item_table.weight
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
@pytest.mark.parametrize("column_chunk", [None, 8, 6, 3])  # 6 and 3: padded chunks
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
    torch.testing.assert_close(out, reference[plan.active] if active_only else reference)


@pytest.mark.parametrize("active_only", [False, True])
def test_propagation_gradient_matches_dense_autograd(make_segment, active_only: bool) -> None:
    seg = make_segment(40, 35, seed=7)
    sizes, mask = _plan_inputs(seg, 70, seed=1)
    plan = PropagationPlan(seg, sizes, 70, 3, dtype=torch.float64)
    weight = torch.randn(seg.n_users + seg.n_items, 70, dtype=torch.float64, requires_grad=True)
    rows = plan.active if active_only else torch.arange(weight.shape[0])
    probe = torch.randn(rows.shape[0], 70, dtype=torch.float64)

    (LightGCNPropagation.apply(weight * mask, plan, active_only) * probe).sum().backward()
    ours = weight.grad.clone()
    weight.grad = None
    (_dense_propagation(seg, weight * mask, 3)[rows] * probe).sum().backward()
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
