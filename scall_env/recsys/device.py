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
        ValueError: If ``device`` is not a valid device specification.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
