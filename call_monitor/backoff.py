"""Retrying after a failure: how long to wait, and how to say what failed.

One policy for every retry loop of the daemon: the AMI client's and the MQTT publisher's
reconnects, and the store writers' retries (:mod:`call_monitor.store.retry`). It is
exponential backoff with *full jitter* ("Exponential Backoff And Jitter", AWS Architecture
Blog, 2015): after the n-th failure in a row the wait is drawn uniformly from
``[0, min(maximum, initial * 2**(n-1))]``. Clients that lost the same server at the same
moment (every daemon of a site when the database restarts) spread their retries over the
whole window instead of coming back together, and no wait is ever longer than ``maximum``.

:func:`describe` puts a failure in one line for a log line or a status field.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

# The PyPI package (an absolute import: not this module). Its ``expo`` is the window sequence
# (``initial``, doubled, capped) as a plain generator, which our loops can drive themselves;
# tenacity's waits want its own retry loop's call state. ``backoff.full_jitter`` draws from
# the module-global ``random``, which a test can only seed by changing global state, so the
# jitter below is the same draw from an injectable ``random.Random``.
import backoff


class Backoff:
    """Exponential backoff with full jitter, started again by :meth:`reset`.

    Call :meth:`next_delay` after each failure, :meth:`reset` after a success: the first
    delay of a run of failures is drawn from ``[0, initial]``, each next one from a window
    twice as wide, at most ``[0, maximum]``. ``rng`` is the source of the jitter: a seeded
    ``random.Random`` makes the delays reproducible.
    """

    __slots__ = ("_ceilings", "_rng", "initial", "maximum")

    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            # A zero window would retry in a tight loop; a cap below the start is a typo.
            raise ValueError(f"backoff needs 0 < initial ({initial}) <= maximum ({maximum})")
        self.initial = initial
        self.maximum = maximum
        self._rng = rng if rng is not None else random.Random()
        self._ceilings: Iterator[float] | None = None  # None: no failure since the last reset

    def ceilings(self) -> Iterator[float]:
        """The windows' upper bounds: ``initial``, doubled each time, capped at ``maximum``."""
        ceilings = backoff.expo(factor=self.initial, max_value=self.maximum)
        next(ceilings)  # backoff's generators open with a priming yield (for send())
        return ceilings

    def next_delay(self) -> float:
        """The wait before the next attempt, after one more failure."""
        if self._ceilings is None:
            self._ceilings = self.ceilings()
        return self._rng.uniform(0, next(self._ceilings))

    def reset(self) -> None:
        """A success: the next failure waits at most ``initial`` again."""
        self._ceilings = None


def describe(error: BaseException) -> str:
    """A failure in one line: ``Type: message`` (``timed out`` for a timeout).

    The cause is added in parentheses when the message does not say it already: aiomqtt,
    for one, wraps the real reason ("connection refused") as the cause of its error.
    """
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error)
    described = f"{type(error).__name__}: {text}" if text else type(error).__name__
    cause = error.__cause__
    if cause is not None and not (str(cause) and str(cause) in text):
        described += f" ({describe(cause)})"
    return described
