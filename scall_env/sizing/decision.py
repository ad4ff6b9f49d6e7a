"""SCALL's decision ``(ratio, alpha_user, alpha_item)`` and its mapping from the action box."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from scall_env.sizing._checks import _check_box_action, _check_decision_array, _check_open_unit

ACTION_EPS = 1e-6
"""The action box ``[-1, 1]`` maps affinely onto ``[ACTION_EPS, 1 - ACTION_EPS]``."""


@dataclass(frozen=True)
class SizeDecision:
    """What a SCALL policy chooses for one segment, validated once on construction.

    Attributes:
        ratio: Share of the free budget that goes to the users (items get the rest).
        alpha_user: Shape of the user size distribution (``-> 0``: most skewed).
        alpha_item: Shape of the item size distribution.
        ACTION_EPS: The margin :meth:`from_action` keeps from 0 and 1 (class constant).

    Raises:
        ValueError: A field is not a finite real number strictly inside ``(0, 1)``.
    """

    ratio: float
    alpha_user: float
    alpha_item: float
    ACTION_EPS: ClassVar[float] = ACTION_EPS

    def __post_init__(self) -> None:
        for name in ("ratio", "alpha_user", "alpha_item"):
            value = getattr(self, name)
            _check_open_unit(value, name)
            object.__setattr__(self, name, float(value))  # numpy scalars become plain floats

    @classmethod
    def from_action(cls, action: ArrayLike) -> SizeDecision:
        """The decision for an action in the box ``[-1, 1]^3``.

        Each value maps affinely onto ``[ACTION_EPS, 1 - ACTION_EPS]`` (``-1 -> ACTION_EPS``,
        ``0 -> 0.5``), computed in ``float64``, so the open interval ``(0, 1)`` is never left.

        Args:
            action: Three real numbers in ``[-1, 1]``, e.g. a ``float32`` array of shape ``(3,)``.

        Returns:
            The decision.

        Raises:
            ValueError: Not 3 real numbers (complex, strings, ...), wrong shape, a non-finite
                value, or a value outside ``[-1, 1]``.
        """
        array = _check_box_action(action)
        mapped = ACTION_EPS + (1.0 - 2.0 * ACTION_EPS) * (array + 1.0) / 2.0
        return cls(*mapped.tolist())

    @classmethod
    def coerce(cls, decision: SizeDecision | ArrayLike | None) -> SizeDecision:
        """``decision`` itself if it is a :class:`SizeDecision`, else one built from 3 values.

        Args:
            decision: A decision, or array-like ``(ratio, alpha_user, alpha_item)`` with each
                value finite and strictly inside ``(0, 1)``.

        Returns:
            The decision.

        Raises:
            ValueError: ``None``, not 3 real numbers, wrong shape, or a value outside ``(0, 1)``.
        """
        if isinstance(decision, SizeDecision):
            return decision
        return cls(*_check_decision_array(decision))

    def as_array(self) -> np.ndarray:
        """``float64`` array ``[ratio, alpha_user, alpha_item]``."""
        return np.array([self.ratio, self.alpha_user, self.alpha_item], dtype=np.float64)

    def to_action(self) -> np.ndarray:
        """The ``float32`` action in ``[-1, 1]^3`` that :meth:`from_action` maps to this decision.

        Inverts the affine map up to ``float32`` precision; values below ``ACTION_EPS`` or above
        ``1 - ACTION_EPS``, which no action reaches, go to the nearest edge of the box.
        """
        action = (self.as_array() - ACTION_EPS) * 2.0 / (1.0 - 2.0 * ACTION_EPS) - 1.0
        return np.clip(action, -1.0, 1.0).astype(np.float32)
