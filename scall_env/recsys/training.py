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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scall_env.recsys.metrics import Evaluator
from scall_env.recsys.models import Recommender
from scall_env.recsys.sampler import BPRBatch, BPRSampler
from scall_env.recsys.sparse import torch_csr
from scall_env.segment import Segment


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


def _crow(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """CSR row pointer of sorted row ids."""
    crow = rows.new_zeros(n_rows + 1)
    torch.cumsum(torch.bincount(rows, minlength=n_rows), 0, out=crow[1:])
    return crow


class BPRMargins(torch.autograd.Function):
    """Per-triple margins ``score(u, neg) - score(u, pos)`` as sparse products.

    Equivalent to ``(U[users] * (I[neg] - I[pos])).sum(1)`` under autograd, without the
    ``batch x d`` gathered copies (and their gradients) that plain autograd would hold: the scores
    of the distinct (user, item) pairs are one sampled dense-dense product (SDDMM) at the batch's
    sparsity pattern ``P``, and the backward pass is two sparse-dense products ``G I`` and
    ``G^T U`` with the per-pair coefficients ``G``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        user_emb: torch.Tensor,
        item_emb: torch.Tensor,
        users: torch.Tensor,
        pos_items: torch.Tensor,
        neg_items: torch.Tensor,
    ) -> torch.Tensor:
        """Computes the margins.

        Args:
            ctx: Autograd context.
            user_emb: ``n_users x d`` final user embeddings.
            item_emb: ``n_items x d`` final item embeddings.
            users: ``int64`` user ids of the batch.
            pos_items: ``int64`` positive item ids.
            neg_items: ``int64`` negative item ids.

        Returns:
            The ``len(users)`` margins.
        """
        n_users, n_items = user_emb.shape[0], item_emb.shape[0]
        # Flat keys user * n_items + item, sorted and deduplicated: the order is row-major, so the
        # distinct pairs are a CSR pattern as they stand, and a repeated pair is scored once.
        keys = torch.cat([users * n_items + pos_items, users * n_items + neg_items])
        pairs, pair_of = torch.unique(keys, sorted=True, return_inverse=True)
        rows, cols = pairs // n_items, pairs % n_items
        crow = _crow(rows, n_users)
        pattern = torch_csr(crow, cols, user_emb.new_zeros(pairs.shape[0]), (n_users, n_items))
        # U I^T evaluated only at the pattern: one dot product per pair, no gathered rows.
        scores = torch.sparse.sampled_addmm(pattern, user_emb, item_emb.T, beta=0.0).values()
        batch = users.shape[0]
        # Saved: the embeddings (the gradients need them) and per-pair ids; nothing batch x d.
        ctx.save_for_backward(user_emb, item_emb, crow, rows, cols, pair_of)
        return scores[pair_of[batch:]] - scores[pair_of[:batch]]

    @staticmethod
    def backward(
        ctx: Any, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        """Returns ``(G I, G^T U)`` for the per-pair coefficients ``G``; nothing for the ids."""
        user_emb, item_emb, crow, rows, cols, pair_of = ctx.saved_tensors
        n_users, n_items = user_emb.shape[0], item_emb.shape[0]
        batch = grad_output.shape[0]
        # A margin is +score(neg) - score(pos); a pair used by several triples sums their terms.
        coef = grad_output.new_zeros(rows.shape[0])
        coef.index_add_(0, pair_of[batch:], grad_output)
        coef.index_add_(0, pair_of[:batch], grad_output, alpha=-1)
        user_grad = torch_csr(crow, cols, coef, (n_users, n_items)) @ item_emb
        # G^T as its own CSR (pairs re-sorted item-major) rather than transposing G on the fly.
        order = torch.argsort(cols * n_users + rows)
        transposed = torch_csr(
            _crow(cols[order], n_items), rows[order], coef[order], (n_items, n_users)
        )
        return user_grad, transposed @ user_emb, None, None, None


def bpr_loss(model: Recommender, batch: BPRBatch, l2_reg: float) -> torch.Tensor:
    """BPR loss of a batch plus the L2 term on its raw embeddings.

    The batch's users and items must be active in the model's segment (as the sampler's are):
    the forward pass runs with ``active_only=True``.

    Args:
        model: The model (one forward pass is computed).
        batch: The triples.
        l2_reg: Weight of :meth:`Recommender.regularization`.

    Returns:
        The scalar loss ``mean(softplus(neg - pos)) + l2_reg * regularization``.
    """
    user_raw, item_raw = model.raw_embeddings()
    user_emb, item_emb = model.propagate(user_raw, item_raw, active_only=True)
    margins = BPRMargins.apply(user_emb, item_emb, batch.users, batch.pos_items, batch.neg_items)
    reg = model.regularization(user_raw, item_raw, batch.users, batch.pos_items, batch.neg_items)
    return F.softplus(margins).mean() + l2_reg * reg


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
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=self.config.lr, fused=model.device.type in ("cpu", "cuda")
        )
        self.batches_done = 0

    @property
    def lr(self) -> float:
        """Current learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self) -> torch.Tensor:
        """Runs one batch (sample, forward, backward, Adam step, learning-rate schedule).

        Returns:
            The detached scalar loss of the batch.
        """
        loss = bpr_loss(self.model, self.sampler.sample(), self.config.l2_reg)
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
        for i in range(n_batches):
            losses[i] = self.step()
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
