"""When to renew the workload certificate, and how long to wait between retries.

Istio's agent renews a certificate once ``ratio`` of its lifetime is left
(``SECRET_GRACE_PERIOD_RATIO``, 0.5), the ratio moved by up to ±``jitter``
(``SECRET_GRACE_PERIOD_RATIO_JITTER``, 0.01) so that a fleet of proxies started
together does not renew together. The lifetime is counted from when the agent got the
certificate: the certificate's own NotBefore is set two minutes early for clock skew,
and counting from it would make a short-lived certificate look half spent at birth.

A failed attempt (the CA down, a file not written yet) is retried after a delay that
grows geometrically from ``initial`` to ``maximum``, each delay spread by ±``jitter``.

Pure: the caller passes the random source; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_GRACE_RATIO",
    "DEFAULT_GRACE_RATIO_JITTER",
    "Backoff",
    "rotate_at",
]

DEFAULT_GRACE_RATIO = 0.5
DEFAULT_GRACE_RATIO_JITTER = 0.01


def rotate_at(
    not_before: datetime,
    not_after: datetime,
    *,
    ratio: float = DEFAULT_GRACE_RATIO,
    jitter: float = DEFAULT_GRACE_RATIO_JITTER,
    rand: Callable[[], float],
) -> datetime:
    """The moment to renew a certificate valid from ``not_before`` to ``not_after``.

    ``not_after - r * (not_after - not_before)`` where ``r`` is ``ratio`` moved
    uniformly within ±``jitter`` (``rand()`` returns a float in [0, 1)) and kept
    within [0, 1]. Pass as ``not_before`` the moment the certificate was received.
    """
    if not_after < not_before:
        raise ValueError("not_after is before not_before")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"grace period ratio {ratio} is outside [0, 1]")
    if jitter < 0.0:
        raise ValueError(f"grace period ratio jitter {jitter} is negative")
    jittered = ratio + jitter * (2.0 * rand() - 1.0)
    jittered = min(1.0, max(0.0, jittered))
    lifetime = not_after - not_before
    return not_after - timedelta(seconds=lifetime.total_seconds() * jittered)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off: ``initial * multiplier**attempt``, capped at ``maximum``.

    Each delay is spread uniformly by ±``jitter`` (a fraction of the delay) and never
    exceeds ``maximum``.
    """

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("back-off needs 0 < initial <= maximum")
        if self.multiplier < 1.0:
            raise ValueError("back-off multiplier must be at least 1")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("back-off jitter must be in [0, 1)")

    def delay(self, attempt: int, *, rand: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        base = self.maximum
        # Stop multiplying once past the cap: no float overflow after many attempts.
        if attempt < 64:
            base = min(self.maximum, self.initial * self.multiplier**attempt)
        spread = base * self.jitter * (2.0 * rand() - 1.0)
        return min(self.maximum, max(0.0, base + spread))
