"""The emulator's clock: real time times ``time_scale``, plus whatever tests advance it by."""

from __future__ import annotations

import asyncio
import threading
import time


class Clock:
    """Emulated wall-clock time in epoch seconds.

    ``now() = start + (monotonic elapsed) * time_scale + advanced``. A ``time_scale`` of 60 makes a minute
    pass every second; ``0`` freezes time so only :meth:`advance` moves it, which makes state machines
    fully deterministic in tests.
    """

    def __init__(self, time_scale: float = 1.0, start: float | None = None) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self._lock = threading.Lock()
        self._scale = float(time_scale)
        self._real0 = time.monotonic()
        self._emu0 = time.time() if start is None else start

    @property
    def time_scale(self) -> float:
        """Emulated seconds per real second."""
        return self._scale

    def now(self) -> float:
        """The emulated time, in epoch seconds."""
        return self._emu0 + (time.monotonic() - self._real0) * self._scale

    def set_time_scale(self, time_scale: float) -> None:
        """Change the speed from now on (time already passed is kept)."""
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        with self._lock:
            self._emu0 = self.now()
            self._real0 = time.monotonic()
            self._scale = float(time_scale)

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` emulated seconds ahead; returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._emu0 += seconds
        return self.now()

    async def sleep_until(self, when: float, max_real: float) -> bool:
        """Wait (really) until emulated time reaches ``when``; ``False`` if ``max_real`` seconds pass first."""
        deadline = time.monotonic() + max_real
        while True:
            left = when - self.now()
            if left <= 0:
                return True
            real_left = deadline - time.monotonic()
            if real_left <= 0:
                return False
            step = left / self._scale if self._scale > 0 else 0.02
            # Short steps so an advance() or a time_scale change is noticed promptly.
            await asyncio.sleep(max(0.001, min(step, 0.05, real_left)))
