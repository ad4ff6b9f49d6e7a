"""Device resolution shared by the models, the sampler and the evaluator."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turns a device specification into a :class:`torch.device`.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), or anything ``torch.device`` accepts
            (``"cpu"``, ``"cuda:0"``, a ``torch.device``).

    Returns:
        The resolved device.

    Raises:
        ValueError: If ``device`` is not a valid device specification, or names CUDA on a
            machine without it (at construction, not at the first tensor).
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asks for CUDA, which is not available here; use 'auto' or 'cpu'"
        )
    return resolved
