"""Base recommender of the environment: packed embeddings, LightGCN/MF, BPR training, metrics."""

from scall_env.recsys.denormals import (
    denormals_flushed,
    flush_denormals_in_thread_pool,
    flushing_denormals,
)
from scall_env.recsys.device import resolve_device
from scall_env.recsys.embeddings import (
    BYTES_PER_PARAM,
    PACK_ALIGN,
    MaskedEmbedding,
    prefix_mask,
    validate_sizes,
)
from scall_env.recsys.metrics import DEFAULT_KS, FITNESS_K, Evaluator, evaluate
from scall_env.recsys.models import (
    MF,
    MODELS,
    LightGCN,
    Recommender,
    make_model,
    register_model,
)
from scall_env.recsys.packing import UnpackPlan, unpack
from scall_env.recsys.propagation import (
    BLOCK_EDGES,
    DEFAULT_COLUMN_CHUNK,
    LightGCNPropagation,
    PropagationPlan,
    normalized_adjacency,
    segment_adjacency,
)
from scall_env.recsys.sampler import BPRBatch, BPRSampler, PairPattern, pair_pattern
from scall_env.recsys.sparse import canonical_csr, segment_cached, to_torch_csr, torch_csr
from scall_env.recsys.training import (
    BPRMargins,
    ConvergenceResult,
    DivergenceError,
    TrainConfig,
    Trainer,
    bpr_loss,
    train_batches,
    train_to_convergence,
)

__all__ = [
    "BLOCK_EDGES",
    "BPRBatch",
    "BPRMargins",
    "BPRSampler",
    "BYTES_PER_PARAM",
    "ConvergenceResult",
    "DEFAULT_COLUMN_CHUNK",
    "DEFAULT_KS",
    "DivergenceError",
    "Evaluator",
    "FITNESS_K",
    "LightGCN",
    "LightGCNPropagation",
    "MF",
    "MODELS",
    "MaskedEmbedding",
    "PACK_ALIGN",
    "PairPattern",
    "PropagationPlan",
    "Recommender",
    "TrainConfig",
    "Trainer",
    "UnpackPlan",
    "bpr_loss",
    "canonical_csr",
    "denormals_flushed",
    "evaluate",
    "flush_denormals_in_thread_pool",
    "flushing_denormals",
    "make_model",
    "normalized_adjacency",
    "pair_pattern",
    "prefix_mask",
    "register_model",
    "resolve_device",
    "segment_adjacency",
    "segment_cached",
    "to_torch_csr",
    "torch_csr",
    "train_batches",
    "train_to_convergence",
    "unpack",
    "validate_sizes",
]
