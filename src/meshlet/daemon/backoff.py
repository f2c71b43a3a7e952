"""The kubelet's restart back-off for a crashed container (``CrashLoopBackOff``).

As the kubelet's per-container back-off does it: the first time a container stops it
is started again at once, and its back-off becomes 10 s; every later stop waits the
current back-off (the container shows ``CrashLoopBackOff`` meanwhile), which then
doubles, up to 5 minutes. A container that ran for 10 minutes (twice the longest
wait) before it stopped starts over as if it had never stopped. Pure.
"""

from __future__ import annotations

__all__ = ["INITIAL_BACKOFF", "MAX_BACKOFF", "RESET_AFTER", "restart_delay"]

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0
RESET_AFTER = 2 * MAX_BACKOFF


def restart_delay(backoff: float | None, ran_for: float) -> tuple[float, float]:
    """``(wait before the restart, the back-off after it)`` for a container that
    stopped after running ``ran_for`` seconds, whose back-off was ``backoff``
    (``None``: it never stopped before)."""
    if backoff is None or ran_for >= RESET_AFTER:
        return 0.0, INITIAL_BACKOFF
    return backoff, min(backoff * 2, MAX_BACKOFF)
