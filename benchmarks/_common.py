"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def rounded(value: Any) -> Any:
    """Round floats (recursively through dicts, lists and tuples) to 4 decimals for printing."""
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return value
