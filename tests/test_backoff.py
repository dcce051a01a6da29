"""``call_monitor/backoff.py``: the one retry policy (exponential windows, full jitter, a
reset after a success) and the one-line description of a failure."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from call_monitor.backoff import Backoff, describe
from tests.jitter import WindowsSeen

initials = st.floats(min_value=0.001, max_value=100.0)
spans = st.floats(min_value=1.0, max_value=1000.0)  # maximum / initial
seeds = st.integers(min_value=0, max_value=2**32)


@given(initial=initials, span=spans, seed=seeds)
def test_every_delay_is_within_its_window_and_the_cap(
    initial: float, span: float, seed: int
) -> None:
    maximum = initial * span
    policy = Backoff(initial, maximum, rng=random.Random(seed))
    windows = list(itertools.islice(policy.ceilings(), 40))
    delays = [policy.next_delay() for _ in range(40)]
    for delay, window in zip(delays, windows, strict=True):
        assert 0 <= delay <= window <= maximum


@given(initial=initials, span=spans)
def test_the_windows_double_from_initial_and_reach_the_cap(initial: float, span: float) -> None:
    maximum = initial * span
    windows = list(itertools.islice(Backoff(initial, maximum).ceilings(), 40))
    assert windows[0] == initial
    for window, following in itertools.pairwise(windows):
        assert following == min(2 * window, maximum)
    assert windows[-1] == maximum  # 2**39 outgrows any span: the cap is reached, and kept


def test_the_delays_use_the_whole_window() -> None:
    """Full jitter: from near zero to near the window, not "equal jitter"'s upper half."""
    policy = Backoff(1.0, 1.0, rng=random.Random(3))
    delays = [policy.next_delay() for _ in range(1000)]
    assert min(delays) < 0.05
    assert max(delays) > 0.95


def test_a_reset_starts_the_windows_again() -> None:
    rng = WindowsSeen(11)
    policy = Backoff(0.5, 4.0, rng=rng)
    for _ in range(5):
        policy.next_delay()
    policy.reset()  # a success
    policy.next_delay()
    policy.next_delay()
    assert rng.windows == [0.5, 1.0, 2.0, 4.0, 4.0, 0.5, 1.0]


def test_the_same_seed_gives_the_same_delays() -> None:
    def delays(seed: int) -> list[float]:
        policy = Backoff(0.5, 30.0, rng=random.Random(seed))
        return [policy.next_delay() for _ in range(12)]

    assert delays(42) == delays(42)
    assert delays(42) != delays(43)


def test_without_a_source_the_delays_are_random_still() -> None:
    first, second = Backoff(1.0, 1.0), Backoff(1.0, 1.0)
    assert [first.next_delay() for _ in range(5)] != [second.next_delay() for _ in range(5)]


@pytest.mark.parametrize(("initial", "maximum"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_window_that_cannot_work_is_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff needs 0 < initial"):
        Backoff(initial, maximum)


# -- describe -------------------------------------------------------------------------------


def caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            ConnectionRefusedError(111, "Connection refused"),
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        (RuntimeError(), "RuntimeError"),
        (TimeoutError(), "timed out"),
        (TimeoutError("timed out"), "timed out"),
        # The wrapped reason is told (aiomqtt's MqttError wraps the socket's error) ...
        (
            caused(RuntimeError("Could not connect"), ConnectionRefusedError(111, "refused")),
            "RuntimeError: Could not connect (ConnectionRefusedError: [Errno 111] refused)",
        ),
        (
            caused(RuntimeError("Operation failed"), TimeoutError()),
            "RuntimeError: Operation failed (timed out)",
        ),
        # ... but not twice when the message quotes it already.
        (
            caused(
                RuntimeError("write failed: [Errno 32] Broken pipe"),
                BrokenPipeError(32, "Broken pipe"),
            ),
            "RuntimeError: write failed: [Errno 32] Broken pipe",
        ),
        (
            caused(RuntimeError("a"), caused(ValueError("b"), KeyError("c"))),
            "RuntimeError: a (ValueError: b (KeyError: 'c'))",
        ),
    ],
)
def test_a_failure_in_one_line(error: BaseException, line: str) -> None:
    assert describe(error) == line
