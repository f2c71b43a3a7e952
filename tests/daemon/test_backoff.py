from __future__ import annotations

from meshlet.daemon.backoff import INITIAL_BACKOFF, MAX_BACKOFF, RESET_AFTER, restart_delay


def test_first_stop_restarts_at_once() -> None:
    assert restart_delay(None, 1.0) == (0.0, INITIAL_BACKOFF)


def test_later_stops_wait_and_double_up_to_five_minutes() -> None:
    delays = []
    backoff: float | None = INITIAL_BACKOFF
    for _ in range(8):
        wait, backoff = restart_delay(backoff, 1.0)
        delays.append(wait)
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    assert backoff == MAX_BACKOFF


def test_a_long_run_resets_the_backoff() -> None:
    assert restart_delay(MAX_BACKOFF, RESET_AFTER) == (0.0, INITIAL_BACKOFF)
