from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshlet.agent.rotation import Backoff, rotate_at

START = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
END = START + timedelta(hours=24)


def test_half_lifetime_without_jitter() -> None:
    assert rotate_at(START, END, rand=lambda: 0.5) == START + timedelta(hours=12)


def test_jitter_bounds_are_istios_one_percent() -> None:
    # rand() = 0 moves the ratio to 0.49 (later), rand() -> 1 to 0.51 (earlier).
    latest = rotate_at(START, END, rand=lambda: 0.0)
    earliest = rotate_at(START, END, rand=lambda: 1.0)
    assert latest == END - timedelta(hours=24 * 0.49)
    assert earliest == END - timedelta(hours=24 * 0.51)
    for step in range(101):
        when = rotate_at(START, END, rand=lambda step=step: step / 101)
        assert earliest <= when <= latest


def test_ratio_is_kept_within_the_lifetime() -> None:
    assert rotate_at(START, END, ratio=1.0, jitter=0.5, rand=lambda: 0.99) == START
    assert rotate_at(START, END, ratio=0.0, jitter=0.5, rand=lambda: 0.0) == END


def test_short_lifetime() -> None:
    end = START + timedelta(seconds=4)
    assert rotate_at(START, end, rand=lambda: 0.5) == START + timedelta(seconds=2)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rotate_at(END, START, rand=lambda: 0.5)
    with pytest.raises(ValueError):
        rotate_at(START, END, ratio=1.5, rand=lambda: 0.5)
    with pytest.raises(ValueError):
        rotate_at(START, END, jitter=-0.1, rand=lambda: 0.5)


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, multiplier=2.0, jitter=0.1)
    delays = [backoff.delay(n, rand=lambda: 0.5) for n in range(8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    assert backoff.delay(10_000, rand=lambda: 0.5) == 2.0


def test_backoff_jitter_bounds() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, jitter=0.2)
    assert backoff.delay(0, rand=lambda: 0.0) == pytest.approx(0.8)
    assert backoff.delay(0, rand=lambda: 0.9999999) == pytest.approx(1.2)
    assert backoff.delay(20, rand=lambda: 0.9999999) == 10.0


def test_backoff_validation() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)
    with pytest.raises(ValueError):
        Backoff(multiplier=0.5)
    with pytest.raises(ValueError):
        Backoff().delay(-1, rand=lambda: 0.5)
