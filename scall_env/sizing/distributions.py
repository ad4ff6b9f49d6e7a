"""Share distributions: one-parameter families whose quantiles shape the sizes; their registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from scall_env.sizing._checks import _check_count, _check_open_unit


class ShareDistribution(ABC):
    """A one-parameter family of positive distributions turned into noiseless size shares.

    ``alpha`` in ``(0, 1)`` maps affinely to the family parameter: ``param_at_0`` at
    ``alpha -> 0`` and ``param_at_1`` at ``alpha -> 1``. For every built-in family
    ``alpha -> 0`` is the most skewed shape and ``alpha -> 1`` the flattest. The shares of ``n``
    entities are the distribution's quantiles at the plotting positions ``(i - 0.5) / n`` of the
    upper tail (``i = 1..n``): the noiseless version of sorting ``n`` random draws, which also
    stays finite where expected order statistics do not (heavy tails). Subclasses set the class
    attributes and implement :meth:`upper_quantiles`.

    Attributes:
        name: Registry name.
        param_at_0: Family parameter at ``alpha -> 0``.
        param_at_1: Family parameter at ``alpha -> 1``.
    """

    name: ClassVar[str]
    param_at_0: ClassVar[float]
    param_at_1: ClassVar[float]

    def param(self, alpha: float) -> float:
        """The family parameter for ``alpha``.

        Args:
            alpha: Shape control, finite and strictly inside ``(0, 1)``.

        Returns:
            ``param_at_0 + alpha * (param_at_1 - param_at_0)``.

        Raises:
            ValueError: ``alpha`` is non-finite or outside the open interval ``(0, 1)``.
        """
        _check_open_unit(alpha, "alpha")
        return self.param_at_0 + float(alpha) * (self.param_at_1 - self.param_at_0)

    def shares(self, alpha: float, n: int) -> np.ndarray:
        """Noiseless size shares of ``n`` entities, largest first.

        Args:
            alpha: Shape control, finite and strictly inside ``(0, 1)``.
            n: Number of entities (non-negative).

        Returns:
            ``float64`` array of length ``n``: positive, non-increasing, summing to 1.

        Raises:
            ValueError: Bad ``alpha`` or negative ``n``.
            TypeError: ``n`` is not an integer.
        """
        param = self.param(alpha)
        _check_count(n, "n")
        upper_tail = (np.arange(1, n + 1, dtype=np.float64) - 0.5) / max(n, 1)
        values = np.asarray(self.upper_quantiles(upper_tail, param), dtype=np.float64)
        return values / values.sum() if n else values

    @abstractmethod
    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Inverse survival function: the value exceeded with probability ``p``.

        Args:
            p: Increasing upper-tail probabilities in ``(0, 1)``.
            param: The family parameter.

        Returns:
            Positive values, non-increasing along ``p``, same shape as ``p``.
        """


class ScipyShareDistribution(ShareDistribution):
    """A family whose upper quantiles are a ``scipy.stats`` family's ``isf(p, param)``."""

    scipy_family: ClassVar[Any]

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """``scipy_family.isf(p, param)``."""
        return self.scipy_family.isf(p, param)


class PowerLaw(ScipyShareDistribution):
    """``scipy.stats.powerlaw(a)`` on ``[0, 1]``; ``a`` from 0.1 (skewed) to 30 (flat)."""

    name = "powerlaw"
    param_at_0 = 0.1
    param_at_1 = 30.0
    scipy_family = stats.powerlaw


class Pareto(ScipyShareDistribution):
    """``scipy.stats.pareto(b)`` on ``[1, inf)``; shape ``b`` from 1 (heavy tail) to 30 (flat)."""

    name = "pareto"
    param_at_0 = 1.0
    param_at_1 = 30.0
    scipy_family = stats.pareto


class TruncNormal(ShareDistribution):
    """Normal ``N(mu, 1)`` truncated to ``[0, inf)`` (``scipy.stats.truncnorm(-mu, inf, loc=mu)``).

    ``mu`` runs from -4 (an exponential-like tail, skewed) to 20 (nearly equal values). The
    quantiles are computed through ``scipy.stats.norm`` (same values, much faster than
    ``truncnorm.isf``).
    """

    name = "truncnorm"
    param_at_0 = -4.0
    param_at_1 = 20.0

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Truncated-normal quantiles with location ``mu = param``."""
        # Upper tail p of the truncated law is upper tail p * P(X > 0) of the untruncated one.
        return param + stats.norm.isf(p * stats.norm.sf(-param))


class LogNormal(ShareDistribution):
    """``scipy.stats.lognorm(s)``; log-scale ``s`` from 2 (skewed) down to 0.05 (flat)."""

    name = "lognormal"
    param_at_0 = 2.0
    param_at_1 = 0.05

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Log-normal quantiles with shape ``s = param`` (standard deviation of the log)."""
        return stats.lognorm.isf(p, param)


_DISTRIBUTIONS: dict[str, type[ShareDistribution]] = {
    cls.name: cls for cls in (PowerLaw, Pareto, TruncNormal, LogNormal)
}


def register_distribution(
    name: str, cls: type[ShareDistribution], *, replace: bool = False
) -> None:
    """Make a share distribution available by name.

    Args:
        name: Registry key (non-empty).
        cls: A concrete :class:`ShareDistribution` subclass, instantiated without arguments.
        replace: Allow overwriting an existing entry.

    Raises:
        ValueError: Empty name, or the name is taken and ``replace`` is false.
        TypeError: ``cls`` is not a :class:`ShareDistribution` subclass.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"distribution name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, ShareDistribution)):
        raise TypeError(f"cls must be a ShareDistribution subclass, got {cls!r}")
    if name in _DISTRIBUTIONS and not replace:
        raise ValueError(
            f"distribution {name!r} is already registered; pass replace=True to overwrite it"
        )
    _DISTRIBUTIONS[name] = cls


def available_distributions() -> tuple[str, ...]:
    """Registered distribution names, sorted.

    Returns:
        The names :func:`get_distribution` accepts.
    """
    return tuple(sorted(_DISTRIBUTIONS))


def get_distribution(name: str) -> ShareDistribution:
    """A fresh instance of a registered share distribution.

    Args:
        name: Registry key, e.g. ``"powerlaw"``.

    Returns:
        The distribution.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if name not in _DISTRIBUTIONS:
        raise ValueError(
            f"unknown distribution {name!r}; known: {', '.join(available_distributions())}"
        )
    return _DISTRIBUTIONS[name]()
