"""The emulator's notion of now: wall-clock seconds, injectable so tests need not sleep.

Rate quota windows (``quota``), token expiry (``iam``) and request log times read it; operation
latency does not (it stays on the monotonic clock, so a test moving the clock a minute ahead
does not complete every RUNNING operation at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``."""


class ManualClock:
    """A clock that moves only when told: ``EmulatorConfig(clock=ManualClock())``.

    It starts at ``start`` (default: a minute boundary, 2026-01-01T00:00:00Z) so a test knows
    where the rate quota windows begin; ``next_minute()`` jumps to the start of the next one.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def next_minute(self) -> float:
        """Move to the first second of the next wall-clock minute (where rate quotas refill)."""
        with self._lock:
            self._now = (int(self._now // 60) + 1) * 60.0
            return self._now


def system_clock() -> float:
    return time.time()
