"""AGE: every branch of apimachinery's HumanDuration."""

from __future__ import annotations

import datetime as dt

import pytest

from meshlet.kubectl.age import human_duration, translate_timestamp_since
from tests.kubectl.conftest import NOW, stamp

S, M, H, D = 1, 60, 3600, 86400


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-2.5, "<invalid>"),  # more than a second in the future
        (-2, "<invalid>"),
        (-1.9, "0s"),  # up to a second of clock skew is "now"
        (-0.5, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),  # seconds up to two minutes
        (2 * M, "2m"),
        (4 * M + 14, "4m14s"),
        (8 * M + 49, "8m49s"),
        (9 * M + 59, "9m59s"),
        (10 * M, "10m"),
        (10 * M + 30, "10m"),  # seconds dropped from ten minutes
        (179 * M, "179m"),
        (3 * H, "3h"),
        (3 * H + 5 * M, "3h5m"),
        (7 * H + 59 * M, "7h59m"),
        (8 * H, "8h"),
        (47 * H + 59 * M, "47h"),
        (2 * D, "2d"),
        (2 * D + 3 * H, "2d3h"),
        (7 * D + 23 * H, "7d23h"),
        (8 * D, "8d"),
        (5 * D + 0 * H, "5d"),
        (729 * D, "729d"),
        (2 * 365 * D, "2y"),
        (2 * 365 * D + 10 * D, "2y10d"),
        (7 * 365 * D + 364 * D, "7y364d"),
        (8 * 365 * D, "8y"),
        (20 * 365 * D + 100 * D, "20y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == expected


def test_translate_timestamp_since() -> None:
    assert translate_timestamp_since(stamp(4 * M + 14), NOW) == "4m14s"
    assert translate_timestamp_since("2026-01-01T11:50:00+00:00", NOW) == "10m"
    assert translate_timestamp_since(None, NOW) == "<unknown>"
    assert translate_timestamp_since("", NOW) == "<unknown>"
    assert translate_timestamp_since("yesterday", NOW) == "<invalid>"
    assert translate_timestamp_since(stamp(-3600), NOW) == "<invalid>"
