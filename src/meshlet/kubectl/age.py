"""kubectl's AGE column: ``HumanDuration`` of apimachinery, rule for rule.

About two or three significant figures of a duration: seconds up to two minutes,
then minutes (with seconds under ten minutes), hours (with minutes under eight
hours), days (with hours under eight days), years (with days under eight years).
Up to a second into the future counts as ``0s`` (clocks differ a little); further
is ``<invalid>``. A missing timestamp is ``<unknown>``. The clock is passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["human_duration", "parse_timestamp", "translate_timestamp_since"]

_NS_PER_SECOND = 10**9
_NS_PER_MINUTE = 60 * _NS_PER_SECOND
_NS_PER_HOUR = 60 * _NS_PER_MINUTE


def _trunc_div(a: int, b: int) -> int:
    """Integer division rounding toward zero, as Go's."""
    quotient = abs(a) // b
    return -quotient if a < 0 else quotient


def human_duration(duration: timedelta) -> str:
    """``duration.HumanDuration``: ``45s``, ``4m14s``, ``10m``, ``3h5m``, ``2d3h``, ``5d``, ``2y``."""
    ns = (duration.days * 86_400 + duration.seconds) * _NS_PER_SECOND + duration.microseconds * 1000
    seconds = _trunc_div(ns, _NS_PER_SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = ns // _NS_PER_MINUTE
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = ns // _NS_PER_HOUR
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp as the API server writes it (``2024-05-01T10:00:00Z``)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def translate_timestamp_since(timestamp: str | None, now: datetime) -> str:
    """The AGE of an object created at ``timestamp``, seen at ``now``."""
    if not timestamp:
        return "<unknown>"
    try:
        created = parse_timestamp(timestamp)
    except ValueError:
        return "<invalid>"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return human_duration(now - created)
