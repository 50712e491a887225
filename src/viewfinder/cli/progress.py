"""Progress of a command's long steps on stderr: a count, the rate and the time left.

On a terminal one line is redrawn in place (at most ten times a second). Anywhere else (piped,
redirected to a log, under a test) it writes a plain line every ``every_s`` seconds and one at
the end, with no carriage returns or bar characters, so the output stays clean. Nothing is
written for a step with nothing to do. stdout is never touched: it carries the command's result.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

REDRAW_S = 0.1
RATE_WINDOW_S = 30.0  # the rate (and the time left) follows the last half minute


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``with Progress("embed", unit="images") as bar: ... bar.advance(n)``.

    ``total`` may be unknown at the start: ``remaining(n)`` sets it from the first count of work
    left (the form ``TaskWorker.drain`` reports), ``set_total`` sets it outright."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "items",
        stream: TextIO | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = _is_tty(self._stream)
        self._every_s = every_s
        self._clock = clock
        self._start = clock()
        self._samples: deque[tuple[float, int]] = deque([(self._start, 0)])
        self._last_write = self._start
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(interrupted=exc_type is not None)

    # --- updates --------------------------------------------------------------------------------

    def set_total(self, total: int) -> None:
        self.total = total
        self._show()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def remaining(self, left: int) -> None:
        """``left`` items still to do: the first call fixes the total (grown if more appear)."""
        if self.total is None or left > self.total - self.done:
            self.total = self.done + left
        self.update(self.total - left)

    def update(self, done: int) -> None:
        now = self._clock()
        self.done = done
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        self._show()

    def close(self, *, interrupted: bool = False) -> None:
        """The last line: how many, how long, how fast (nothing if there was nothing to do)."""
        if self._closed:
            return
        self._closed = True
        if not self.total and not self.done:
            return
        elapsed = self._clock() - self._start
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        rate = f", {self.done / elapsed:.1f} {self.unit}/s" if elapsed > 0 and self.done else ""
        stopped = " (interrupted)" if interrupted else ""
        line = f"{self.label}: {count} {self.unit} in {duration(elapsed)}{rate}{stopped}"
        self._write(line, final=True)

    def echo(self, text: str) -> None:
        """A message on its own line (a file skipped, say), the bar redrawn below it."""
        if self._tty:
            width = shutil.get_terminal_size((80, 20)).columns
            self._stream.write("\r" + text.ljust(width - 1) + "\n")
            self._last_write = float("-inf")
            self._show()
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    # --- rendering ------------------------------------------------------------------------------

    def rate(self) -> float | None:
        """Items per second over the last ``RATE_WINDOW_S`` (None before any progress)."""
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    def status(self) -> str:
        """``embed: 12/40 images (30%), 3.1 images/s, 0:09 left``."""
        rate = self.rate()
        parts = [f"{self.label}: {self.done}"]
        if self.total:
            parts[0] += f"/{self.total} {self.unit} ({100 * self.done // self.total}%)"
        else:
            parts[0] += f" {self.unit}"
        if rate is not None:
            parts.append(f"{rate:.1f} {self.unit}/s")
            if self.total:
                parts.append(f"{duration((self.total - self.done) / rate)} left")
        else:
            parts.append(f"{duration(self._clock() - self._start)} elapsed")
        return ", ".join(parts)

    def _show(self) -> None:
        if self._closed or not self.total:
            return
        now = self._clock()
        interval = REDRAW_S if self._tty else self._every_s
        if now - self._last_write < interval and self.done < self.total:
            return
        if not self._tty and self.done >= self.total:
            return  # the closing line says it
        self._last_write = now
        self._write(self.status(), final=False)

    def _write(self, text: str, *, final: bool) -> None:
        if not self._tty:
            self._stream.write(text + "\n")
        else:
            width = shutil.get_terminal_size((80, 20)).columns
            line = text if final else _with_bar(text, self.done, self.total or 0, width)
            self._stream.write("\r" + line[: width - 1].ljust(width - 1) + ("\n" if final else ""))
        self._stream.flush()


def _with_bar(text: str, done: int, total: int, width: int) -> str:
    """``embed [#####-----] 12/40 ...``: a bar after the label where the terminal has room."""
    room = 25
    if width - len(text) - 4 < room or total <= 0:
        return text
    filled = room * min(done, total) // total
    label, _, rest = text.partition(": ")
    return f"{label} [{'#' * filled}{'-' * (room - filled)}] {rest}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
