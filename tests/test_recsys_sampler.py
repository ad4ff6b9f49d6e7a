"""Tests of scall_env.recsys's BPR sampler: valid and uniform triples, what a batch carries (its
pair pattern and counts), the two rejection tests, and the tables shared per segment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recsys_support import hand_segment, model_for, rows_of

from scall_env.recsys import BPRSampler, TrainConfig, Trainer
from scall_env.segment import Segment

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


# ---------------------------------------------------------------------------------- batches
def test_batches_carry_their_pairs_and_counts(make_segment) -> None:
    segment = make_segment(40, 30, density=0.4, seed=11)
    sampler = BPRSampler(segment, batch_size=300, seed=2)
    batch = sampler.sample()
    n_users, n_items = len(sampler.active_users), len(sampler.active_items)
    pairs = batch.pairs
    assert (pairs.batch, pairs.n_rows, batch.size) == (300, n_users + n_items, 300)
    rows = torch.repeat_interleave(torch.arange(pairs.n_rows), torch.diff(pairs.crow))
    user_of = torch.from_numpy(sampler.active_users)
    item_of = torch.from_numpy(sampler.active_items)
    triple_users = torch.cat([batch.users, batch.users])
    triple_items = torch.cat([batch.pos_items, batch.neg_items])
    assert torch.equal(user_of[rows[pairs.pair_of]], triple_users)
    assert torch.equal(item_of[pairs.cols[pairs.pair_of] - n_users], triple_items)
    # the symmetric pattern: each pair once as (user, item) and once as (item, user)
    sym_rows = torch.repeat_interleave(torch.arange(pairs.n_rows), torch.diff(pairs.sym_crow))
    forward = set(zip(rows.tolist(), pairs.cols.tolist(), strict=True))
    both = set(zip(sym_rows.tolist(), pairs.sym_cols.tolist(), strict=True))
    assert both == forward | {(c, r) for r, c in forward}
    assert torch.equal(pairs.cols[pairs.order], sym_rows[len(forward) :])
    assert torch.equal(batch.user_count, torch.bincount(batch.users, minlength=40).float())
    items = torch.bincount(triple_items, minlength=30).float()
    assert torch.equal(batch.item_count, items) and batch.item_count.dtype == torch.float32


def test_sampler_bitmap_and_sorted_keys_draw_the_same_batches(make_segment) -> None:
    segment = make_segment(40, 30, density=0.5, seed=3)
    bitmap = BPRSampler(segment, batch_size=400, seed=7, max_rejection_rounds=2)
    keys = BPRSampler(segment, batch_size=400, seed=7, max_rejection_rounds=2, max_bitmap_bits=0)
    assert keys._t.seen_bits is None and bitmap._t.seen_bits is not None
    for _ in range(3):
        a, b = bitmap.sample(), keys.sample()
        for field in ("users", "pos_items", "neg_items", "user_count", "item_count"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        assert torch.equal(a.pairs.sym_cols, b.pairs.sym_cols)


def test_sampler_tables_are_shared_and_models_must_match(make_segment) -> None:
    segment, other = make_segment(30, 40, seed=0), make_segment(30, 40, seed=1)
    assert BPRSampler(segment, seed=1)._t is BPRSampler(segment, seed=2)._t
    with pytest.raises(ValueError, match="other active users or items than the model's"):
        Trainer(model_for("mf", segment), segment, sampler=BPRSampler(other, 16))
