"""BPR training: single batches, fixed-length trials and the train-to-convergence loop.

Loss per batch (the paper's): ``mean(softplus(neg - pos)) + l2_reg * R``, where ``pos``/``neg``
are dot products of final embeddings and ``R`` is the squared L2 norm of the batch's raw
(masked) user, positive and negative embeddings divided by the batch size
(:meth:`~scall_env.recsys.models.Recommender.regularization`). Adam with learning rate 0.03,
multiplied by 0.95 after every chunk of 200 batches, never below 0.001.

Train to convergence: run chunks of 200 batches and evaluate after each (fitness); keep the best
weights in memory (a chunk equal to the best counts as no worse and becomes the best); stop
once ``patience`` (3) chunks in a row brought no improvement of the best
fitness and the last chunk lowered the mean training loss by less than 5% relative to the chunk
before; ``max_chunks`` caps the loop (the paper has no cap; 50 chunks is far beyond the 6 it
needs on MovieLens-1M segment 0). The best weights are loaded back into the model at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scall_env.recsys.denormals import flushing_denormals
from scall_env.recsys.metrics import Evaluator
from scall_env.recsys.models import Recommender
from scall_env.recsys.sampler import BPRBatch, BPRSampler, PairPattern
from scall_env.recsys.sparse import torch_csr
from scall_env.segment import Segment


@contextlib.contextmanager
def _intra_op_threads(threads: int) -> Iterator[None]:
    """Runs the block with ``threads`` intra-op threads, then restores the previous number."""
    previous = torch.get_num_threads()
    if threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads != previous:
            torch.set_num_threads(previous)


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss (the learning rate is too large, say)."""


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (defaults are the paper's).

    Attributes:
        batch_size: BPR triples per batch.
        lr: Initial Adam learning rate.
        l2_reg: Weight of the raw-embedding L2 term.
        chunk_batches: Batches per chunk (learning-rate decay and evaluation period).
        lr_decay: Learning-rate factor applied after every chunk.
        min_lr: Floor of the learning rate.
        patience: Chunks in a row without improvement before stopping is allowed.
        min_loss_drop: Stopping also needs the last chunk's relative loss drop below this.
        max_chunks: Safety cap on the chunks of :func:`train_to_convergence`.
        flush_denormals: Flush denormal floats to zero while training on CPU. Once a model
            separates most triples by a wide margin, ``sigmoid(margin)`` falls below float32's
            smallest normal (1.2e-38) and the sparse products of the backward pass run on
            denormals, several times slower. Flushed, those terms become zeros; they lie far
            below the rounding of the weights they update, so the weights stay the same except
            where they are themselves next to zero (``benchmarks/bench_denormals.py`` measures
            the speed and the difference). ``False`` keeps the denormals (the slow path). On
            CUDA, no effect. :meth:`Trainer.run` switches the mode of its own thread; torch's
            intra-op threads need :func:`~scall_env.recsys.flush_denormals_in_thread_pool`.
    """

    batch_size: int = 10_000
    lr: float = 0.03
    l2_reg: float = 1e-4
    chunk_batches: int = 200
    lr_decay: float = 0.95
    min_lr: float = 0.001
    patience: int = 3
    min_loss_drop: float = 0.05
    max_chunks: int = 50
    flush_denormals: bool = True

    def __post_init__(self) -> None:
        """Validates the fields.

        Raises:
            ValueError: If a field is out of range.
        """
        for name in ("batch_size", "chunk_batches", "patience", "max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"min_lr must lie in (0, lr={self.lr}], got {self.min_lr}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        if self.l2_reg < 0:
            raise ValueError(f"l2_reg must be >= 0, got {self.l2_reg}")
        if self.min_loss_drop < 0:
            raise ValueError(f"min_loss_drop must be >= 0, got {self.min_loss_drop}")
        if not isinstance(self.flush_denormals, bool):
            raise ValueError(f"flush_denormals must be True or False, got {self.flush_denormals!r}")


class BPRMargins(torch.autograd.Function):
    """Per-triple margins ``score(u, neg) - score(u, pos)`` as sparse products.

    Equivalent to ``(E[users] * (E[neg] - E[pos])).sum(1)`` under autograd (``E`` the final
    embeddings of the active rows), without the ``batch x d`` gathered copies (and their
    gradients) that plain autograd would hold: the scores of the batch's distinct (user, item)
    pairs are one sampled dense-dense product (SDDMM) at the pair pattern ``P``, and the backward
    pass is one sparse-dense product ``(G + G^T) E`` with the per-pair coefficients ``G`` (a row
    of it is a user's ``G I`` or an item's ``G^T U``, the same sums in the same order).
    """

    @staticmethod
    def forward(ctx: Any, emb: torch.Tensor, pairs: PairPattern) -> torch.Tensor:
        """Computes the margins.

        Args:
            ctx: Autograd context.
            emb: ``n_active x d`` final embeddings of the active rows (users, then items).
            pairs: The batch's :class:`~scall_env.recsys.sampler.PairPattern`.

        Returns:
            The ``batch`` margins.
        """
        n = pairs.n_rows
        values = emb.new_zeros(pairs.cols.shape[0])
        pattern = torch_csr(pairs.crow, pairs.cols, values, (n, n))
        # E E^T evaluated only at the pattern: one dot product per pair, no gathered rows.
        scores = torch.sparse.sampled_addmm(pattern, emb, emb.T, beta=0.0).values()
        ctx.save_for_backward(emb)
        ctx.pairs = pairs
        pair_of = pairs.pair_of
        return scores.index_select(0, pair_of[pairs.batch :]) - scores.index_select(
            0, pair_of[: pairs.batch]
        )

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Returns ``(G + G^T) E`` for the per-pair coefficients ``G``; nothing for the pattern."""
        (emb,) = ctx.saved_tensors
        pairs: PairPattern = ctx.pairs
        batch, n = pairs.batch, pairs.n_rows
        # A margin is +score(neg) - score(pos); a pair used by several triples sums their terms.
        coef = grad_output.new_zeros(pairs.cols.shape[0])
        coef.index_add_(0, pairs.pair_of[batch:], grad_output)
        coef.index_add_(0, pairs.pair_of[:batch], grad_output, alpha=-1)
        values = torch.cat([coef, coef.index_select(0, pairs.order)])
        return torch_csr(pairs.sym_crow, pairs.sym_cols, values, (n, n)) @ emb, None


def bpr_loss(model: Recommender, batch: BPRBatch, l2_reg: float) -> torch.Tensor:
    """BPR loss of a batch plus the L2 term on its raw embeddings.

    The batch must come from a sampler over the model's segment (its pair pattern numbers the
    model's active rows).

    Args:
        model: The model (one forward pass over the active rows is computed).
        batch: The triples.
        l2_reg: Weight of :meth:`Recommender.regularization`.

    Returns:
        The scalar loss ``mean(softplus(neg - pos)) + l2_reg * regularization``.
    """
    raw, emb = model.training_embeddings()
    margins = BPRMargins.apply(emb, batch.pairs)
    return F.softplus(margins).mean() + l2_reg * model.regularization(raw, batch)


class Trainer:
    """Adam + BPR training state of one model on one segment.

    Attributes:
        model: The model being trained.
        config: Hyper-parameters.
        sampler: Source of the batches.
        optimizer: The Adam optimiser.
        batches_done: Batches run so far.
    """

    def __init__(
        self,
        model: Recommender,
        segment: Segment,
        config: TrainConfig | None = None,
        *,
        seed: int = 0,
        sampler: BPRSampler | None = None,
    ) -> None:
        """Creates the optimiser and (unless given) the sampler.

        Args:
            model: The model to train (its device is used for the batches).
            segment: The segment to train on.
            config: Hyper-parameters; the paper's when ``None``.
            seed: Seed of the sampler built here (ignored when ``sampler`` is given).
            sampler: A ready sampler over ``segment``, e.g. to share precomputation.
        """
        self.model = model
        self.config = config or TrainConfig()
        self.sampler = sampler or BPRSampler(
            segment, self.config.batch_size, seed=seed, device=model.device
        )
        active = (self.sampler.active_users, self.sampler.active_items)
        if any(
            not np.array_equal(mine, theirs.cpu().numpy())
            for mine, theirs in zip(active, (model.active_users, model.active_items), strict=True)
        ):
            raise ValueError(
                "the sampler's segment has other active users or items than the model's"
            )
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=self.config.lr, fused=model.device.type in ("cpu", "cuda")
        )
        self.batches_done = 0

    def _threads(self) -> int:
        """Intra-op threads for the batches: one for a row-wise model on CPU, else unchanged.

        A row-wise model (MF) runs only small ops (a row per active entity); waking a second,
        passively waiting OpenMP thread for each costs more than it saves (MF batches are about
        20% faster on one thread of 2 cores). LightGCN's sparse products use every thread.
        """
        if self.model.rowwise and self.model.device.type == "cpu":
            return 1
        return torch.get_num_threads()

    @property
    def lr(self) -> float:
        """Current learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, batch: BPRBatch | None = None) -> torch.Tensor:
        """Runs one batch (forward, backward, Adam step, learning-rate schedule).

        Args:
            batch: The batch; the sampler's next one when ``None``.

        Returns:
            The detached scalar loss of the batch.
        """
        batch = self.sampler.sample() if batch is None else batch
        loss = bpr_loss(self.model, batch, self.config.l2_reg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.batches_done += 1
        if self.batches_done % self.config.chunk_batches == 0:
            new_lr = max(self.lr * self.config.lr_decay, self.config.min_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = new_lr
        return loss.detach()

    def run(self, n_batches: int) -> np.ndarray:
        """Runs ``n_batches`` batches.

        Args:
            n_batches: Number of batches (>= 0).

        Returns:
            The per-batch losses (``float64`` array of length ``n_batches``).

        Raises:
            ValueError: If ``n_batches < 0``.
            DivergenceError: If a loss is not finite.
        """
        if n_batches < 0:
            raise ValueError(f"n_batches must be >= 0, got {n_batches}")
        self.model.train()
        losses = torch.empty(n_batches, dtype=torch.float64, device=self.model.device)
        # The next batch is drawn in a worker thread while this one trains; one draw at a time,
        # in order: the same batches. Both halves hold the GIL for much of their time, so a batch
        # still costs about drawing plus training each alone (bench_step.py's halves_ratio ~1),
        # but drawing in this thread instead measured 1.1 times that (MF on ML-100K).
        with (
            _intra_op_threads(self._threads()),
            flushing_denormals(self.config.flush_denormals),
            ThreadPoolExecutor(1) as worker,
        ):
            pending = worker.submit(self.sampler.sample) if n_batches else None
            for i in range(n_batches):
                batch = pending.result()
                if i + 1 < n_batches:
                    pending = worker.submit(self.sampler.sample)
                losses[i] = self.step(batch)
        values = losses.cpu().numpy()
        # one check per run, not per batch: a device sync per batch would cost more than it saves
        if not np.isfinite(values).all():
            first = self.batches_done - n_batches + int(np.flatnonzero(~np.isfinite(values))[0])
            raise DivergenceError(
                f"training diverged: non-finite loss at batch {first}"
                f" (lr {self.config.lr}, l2_reg {self.config.l2_reg}); lower lr and try again"
            )
        return values


def train_batches(
    model: Recommender,
    segment: Segment,
    n_batches: int,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    sampler: BPRSampler | None = None,
) -> np.ndarray:
    """Trains a model for a fixed number of batches with a fresh optimiser (a search trial).

    Args:
        model: The model (typically freshly built).
        segment: The segment to train on.
        n_batches: Number of batches (>= 0; the search uses 200).
        config: Hyper-parameters; the paper's when ``None``.
        seed: Seed of the sampler (ignored when ``sampler`` is given).
        sampler: A ready sampler over ``segment``.

    Returns:
        The per-batch losses.

    Raises:
        ValueError: If ``n_batches < 0``.
    """
    return Trainer(model, segment, config, seed=seed, sampler=sampler).run(n_batches)


@dataclass
class ConvergenceResult:
    """Outcome of :func:`train_to_convergence` (the model holds the best weights afterwards).

    Attributes:
        best_fitness: Best fitness over the chunks.
        best_chunk: 0-based index of the chunk that reached it.
        metrics: All metrics of the best chunk.
        chunks_run: Chunks trained.
        converged: True if the stopping rule fired, False if ``max_chunks`` ended the loop.
        losses: Mean training loss of each chunk.
        fitness: Fitness after each chunk.
        lrs: Learning rate used during each chunk.
        chunk_metrics: Every metric after each chunk (the curves of a run).
    """

    best_fitness: float
    best_chunk: int
    metrics: dict[str, float]
    chunks_run: int
    converged: bool
    losses: list[float] = field(default_factory=list)
    fitness: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    chunk_metrics: list[dict[str, float]] = field(default_factory=list)


def train_to_convergence(
    model: Recommender,
    segment: Segment,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    evaluator: Evaluator | None = None,
    sampler: BPRSampler | None = None,
) -> ConvergenceResult:
    """Trains chunk by chunk until the paper's stopping rule fires; keeps the best weights.

    Args:
        model: The model (fresh or warm-started).
        segment: The segment to train and evaluate on.
        config: Hyper-parameters; the paper's when ``None``.
        seed: Seed of the sampler (ignored when ``sampler`` is given).
        evaluator: A ready evaluator of ``segment``; built on the model's device when ``None``.
        sampler: A ready sampler over ``segment``.

    Returns:
        The result; ``model`` is left holding the weights of the best chunk.
    """
    config = config or TrainConfig()
    evaluator = evaluator or Evaluator(segment, device=model.device)
    trainer = Trainer(model, segment, config, seed=seed, sampler=sampler)
    result = ConvergenceResult(
        best_fitness=float("-inf"), best_chunk=-1, metrics={}, chunks_run=0, converged=False
    )
    best_state: dict[str, torch.Tensor] = {}
    stale = 0
    for chunk in range(config.max_chunks):
        result.lrs.append(trainer.lr)
        result.losses.append(float(trainer.run(config.chunk_batches).mean()))
        metrics = evaluator.evaluate(model)
        result.fitness.append(metrics["fitness"])
        result.chunk_metrics.append(metrics)
        result.chunks_run = chunk + 1
        # ">=": a chunk as good as the best counts as no worse (the authors' rule): it becomes
        # the best and restarts the patience count
        if metrics["fitness"] >= result.best_fitness:
            result.best_fitness, result.best_chunk, result.metrics = (
                metrics["fitness"],
                chunk,
                metrics,
            )
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            stale = 0
        else:
            stale += 1
        if stale >= config.patience and len(result.losses) >= 2:
            previous, last = result.losses[-2], result.losses[-1]
            if (previous - last) / abs(previous) < config.min_loss_drop:
                result.converged = True
                break
    model.load_state_dict(best_state)
    return result
