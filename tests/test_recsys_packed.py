"""Packed tables against dense masked tables, and what the sampler's batches carry.

A packed table must behave exactly as an ``n x width`` table read through a prefix mask (what the
tables were before): the same dense values, gradients, Adam steps, warm start, state dict and
mean embeddings. The batches' pair patterns and counts must describe their triples, and the
sampler's two rejection tests must draw the same batches.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recsys_support import model_for, random_sizes

from scall_env.observation import mean_embeddings
from scall_env.recsys import (
    MF,
    PACK_ALIGN,
    BPRSampler,
    MaskedEmbedding,
    Recommender,
    TrainConfig,
    Trainer,
    UnpackPlan,
    make_model,
    prefix_mask,
    unpack,
)
from scall_env.segment import Segment


def _table(
    sizes: list[int] | np.ndarray, width: int | None = None, seed: int = 0
) -> MaskedEmbedding:
    sizes = np.asarray(sizes, dtype=np.int64)
    generator = torch.Generator().manual_seed(seed)
    return MaskedEmbedding(sizes, d_max=64, width=width, generator=generator)


def _tail_heavy_sizes(n: int, width: int, seed: int) -> np.ndarray:
    """Random sizes whose last entity is full width, so it reaches into the dense tail."""
    sizes = random_sizes(n, width, seed)
    sizes[-1] = width
    return sizes


# ---------------------------------------------------------------------------------- layout
@pytest.mark.parametrize(
    ("n", "width"), [(583, 10), (450, 17), (64, 8), (5, 3), (1000, 37), (3, 64)]
)
def test_packed_layout_mirrors_the_dense_tail(n: int, width: int) -> None:
    table = _table(_tail_heavy_sizes(n, width, seed=n), width)
    dense = n * width
    tail_start = dense - dense % PACK_ALIGN
    slots, positions = table.slots, table.positions
    assert slots.shape == positions.shape == (table.n_params,)
    assert torch.all(slots[1:] > slots[:-1])
    assert table.packed.numel() % PACK_ALIGN == dense % PACK_ALIGN
    assert torch.equal(slots[: table.n_head], torch.arange(table.n_head))
    tail = positions >= tail_start
    assert torch.equal(slots[tail], table.packed.numel() - dense + positions[tail])
    assert torch.equal(table.packed.detach()[slots], table.weight.reshape(-1)[positions])


@pytest.mark.parametrize(("n", "width", "steps"), [(583, 10, 40), (450, 17, 25), (37, 5, 25)])
def test_fused_adam_steps_match_a_dense_masked_table(n: int, width: int, steps: int) -> None:
    # CPU fused Adam computes a tensor's last len % V values in double precision: the packed
    # layout must hand every value the arithmetic it gets in the dense table, bit for bit.
    table = _table(_tail_heavy_sizes(n, width, seed=width), width)
    mask = prefix_mask(table.sizes, width)
    dense = table.weight.clone().requires_grad_()
    dense_opt = torch.optim.Adam([dense], lr=0.03, fused=True)
    packed_opt = torch.optim.Adam([table.packed], lr=0.03, fused=True)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        grad = torch.randn(n, width, generator=generator) * 1e-3 * mask
        dense.grad = grad
        table.packed.grad = torch.zeros_like(table.packed).index_copy_(
            0, table.slots, grad.view(-1)[table.positions]
        )
        dense_opt.step()
        packed_opt.step()
    assert torch.equal(table.weight, dense.detach() * mask)


def test_unpack_parts_and_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(6, dtype=torch.float64, generator=generator, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, generator=generator, requires_grad=True)
    parts = [
        (0, None, torch.tensor([0, 4, 5])),  # a[0:3] in order
        (1, torch.tensor([4, 1]), torch.tensor([2, 9])),
        (0, torch.tensor([5]), torch.tensor([11])),
    ]
    out = unpack([a, b], parts, (4, 3))
    expected = torch.zeros(12, dtype=torch.float64)
    expected[[0, 4, 5]], expected[[2, 9]], expected[11] = a[:3], b[[4, 1]], a[5]
    assert torch.equal(out.detach().view(-1), expected.detach())
    assert torch.autograd.gradcheck(lambda x, y: unpack([x, y], parts, (4, 3)), (a, b))
    plan = UnpackPlan(parts, (4, 3))
    assert torch.equal(plan(a, b), out)
    assert {name for name, _ in plan.named_buffers()} == {"dst0", "src1", "dst1", "src2", "dst2"}
    assert plan.state_dict() == {}


# ---------------------------------------------------------------------------------- models
def _dense_final(model: Recommender, raw: torch.Tensor) -> torch.Tensor:
    """Final embeddings from the raw joint table by the plain formulas."""
    if isinstance(model, MF):
        return raw
    a = model.plan.adjacency.to_dense()  # the model's (float32-rounded) normalised adjacency
    total, layer = raw, raw
    for _ in range(3):
        layer = a @ layer
        total = total + layer
    return total / 4


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_training_matches_a_masked_reference(segment: Segment, name: str) -> None:
    model = model_for(name, segment, d_max=20).double()
    config = TrainConfig(batch_size=96, lr=0.05, l2_reg=0.1)
    trainer = Trainer(model, segment, config, seed=2)
    tables = (model.user_table, model.item_table)
    weights = [table.weight.clone().requires_grad_() for table in tables]
    masks = [prefix_mask(table.sizes, table.width, dtype=torch.float64) for table in tables]
    reference_opt = torch.optim.Adam(weights, lr=config.lr, fused=True)
    batches = BPRSampler(segment, config.batch_size, seed=2).sample
    n_users = segment.n_users
    for _ in range(4):
        batch = batches()
        users, pos, neg = batch.users, n_users + batch.pos_items, n_users + batch.neg_items
        raw = torch.cat([w * m for w, m in zip(weights, masks, strict=True)])
        final = _dense_final(model, raw)
        margins = (final[users] * (final[neg] - final[pos])).sum(1)
        reg = (raw[users].square().sum() + raw[pos].square().sum() + raw[neg].square().sum()) / 96
        loss = torch.nn.functional.softplus(margins).mean() + config.l2_reg * reg
        reference_opt.zero_grad()
        loss.backward()
        reference_opt.step()
        assert trainer.step().item() == pytest.approx(loss.item(), rel=1e-12)
        for table, weight in zip(tables, weights, strict=True):
            grad = table.packed.grad[table.slots]
            torch.testing.assert_close(
                grad, weight.grad.view(-1)[table.positions], rtol=1e-9, atol=0
            )
            torch.testing.assert_close(table.weight, weight.detach(), rtol=1e-9, atol=1e-15)


def test_mean_embeddings_of_the_packed_tables(segment: Segment) -> None:
    model = model_for("lightgcn", segment, d_max=24)
    means = mean_embeddings(model, d_max=32)
    assert means.shape == (2, 32) and np.all(means[:, 24:] == 0)
    for row, table in enumerate((model.user_table, model.item_table)):
        np.testing.assert_array_equal(means[row, :24], table.weight.mean(0).numpy())


def test_state_dict_keeps_the_dense_layout(segment: Segment) -> None:
    model = model_for("mf", segment, d_max=12, seed=1)
    state = model.state_dict()
    assert list(state) == [
        "user_table.weight", "user_table.sizes", "item_table.weight", "item_table.sizes"
    ]  # fmt: skip
    assert state["user_table.weight"].shape == (segment.n_users, 12)
    twin = model_for("mf", segment, d_max=12, seed=1)
    twin.user_table.packed.data.zero_()
    twin.load_state_dict(state)
    assert torch.equal(twin.user_table.packed, model.user_table.packed)
    other = model_for("mf", segment, d_max=12, seed=2)  # other sizes
    with pytest.raises(RuntimeError, match="other sizes than this"):
        other.load_state_dict(state)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        twin.load_state_dict({**state, "user_table.mask": torch.ones(1)})
    with pytest.raises(RuntimeError, match="Missing key"):
        twin.load_state_dict({k: v for k, v in state.items() if k != "item_table.sizes"})


def test_lightgcn_views_are_padded_to_a_multiple_of_8(segment: Segment) -> None:
    users, items = random_sizes(segment.n_users, 13), random_sizes(segment.n_items, 13, 1)
    lightgcn = make_model("lightgcn", segment, users, items, d_max=20, device="cpu")
    mf = make_model("mf", segment, users, items, d_max=20, device="cpu")
    assert (lightgcn.width, lightgcn.user_table.width, mf.width) == (16, 13, 13)
    raw = lightgcn.raw()
    assert raw.shape == (segment.n_users + segment.n_items, 16) and not raw[:, 13:].any()
    tables = torch.cat([lightgcn.user_table.weight, lightgcn.item_table.weight])
    assert torch.equal(raw[:, :13], tables)
    final = torch.cat(lightgcn())
    plain = make_model("lightgcn", segment, users, items, d_max=13, device="cpu")  # 16 > d_max
    assert plain.width == 13
    torch.testing.assert_close(final[:, :13], torch.cat(plain()), rtol=1e-5, atol=1e-8)
    assert not final[:, 13:].any()
    means = mean_embeddings(lightgcn, d_max=20)
    np.testing.assert_array_equal(means[0, :13], lightgcn.user_table.weight.mean(0).numpy())
