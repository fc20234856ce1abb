"""Progress of the long loops (training steps, graded items), three ways:

- on a terminal: a rich progress bar (done/total, loss, rate, ETA), redrawn in place;
- elsewhere (CI logs, a file): a plain line every `every` steps and at the end, with no
  control codes, so a log stays readable and short;
- quiet (`harness -q`): nothing.

The loops report through a `ProgressBar` and never know which of the three is showing.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterator, Optional

MODES = ("bar", "lines", "off")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """One loop's progress; `update` takes the number done so far and any fields (loss=...)."""

    def __init__(self, description: str, total: int, unit: str, emit=None, rich_task=None,
                 every: Optional[int] = None):
        self.description, self.total, self.unit = description, total, unit
        self.completed, self.loss = 0, None
        self._emit, self._rich = emit, rich_task
        self._every = every or max(1, math.ceil(total / 10))
        self._t0 = time.perf_counter()
        self._last_line = 0

    def update(self, completed: int, loss: Optional[float] = None) -> None:
        self.completed = min(completed, self.total) if self.total else completed
        if loss is not None:
            self.loss = loss
        if self._rich is not None:
            progress, task_id = self._rich
            progress.update(task_id, completed=self.completed, info=", ".join(self._parts()[1:]))
        elif self._emit is not None and self.completed - self._last_line >= self._every:
            self._line()

    def advance(self, n: int = 1, loss: Optional[float] = None) -> None:
        self.update(self.completed + n, loss)

    def finish(self) -> None:
        if self._emit is not None and self.completed != self._last_line:
            self._line()

    def rate(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self.completed / elapsed if elapsed > 0 and self.completed else 0.0

    def _parts(self) -> list[str]:
        parts = [f"{self.description}: {self.completed}/{self.total} {self.unit}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        rate = self.rate()
        if rate:
            parts.append(f"{rate:.1f} {self.unit}/s")
            if self.completed < self.total:
                parts.append(f"ETA {_clock((self.total - self.completed) / rate)}")
            else:
                parts.append(f"in {_clock(time.perf_counter() - self._t0)}")
        return parts

    def line(self) -> str:
        """The plain line: 'DESC: 12/125 steps, loss 1.234, 3.1 steps/s, ETA 0:36'."""
        return ", ".join(self._parts())

    def _line(self) -> None:
        self._last_line = self.completed
        self._emit(self.line())


class Progress:
    """Makes progress bars in one mode: 'bar' (rich, terminal), 'lines' (plain), 'off'."""

    def __init__(self, mode: str = "off", console=None, every: Optional[int] = None):
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}: one of {', '.join(MODES)}")
        self.mode, self.console, self.every = mode, console, every

    @classmethod
    def for_console(cls, console, quiet: bool) -> "Progress":
        """Quiet → off; a terminal → rich bars; anything else (a CI log) → plain lines."""
        if quiet:
            return cls("off")
        return cls("bar" if console.is_terminal else "lines", console)

    def quiet_library_bars(self) -> None:
        """datasets' and transformers' own tqdm bars ('Loading weights', 'Truncating train
        dataset') write control codes into logs: shown on a terminal only, like ours."""
        if self.mode == "bar":
            return
        import os
        import sys

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
        else:   # read when datasets is imported (only a hub source or training does): not imported for this
            os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"

    @contextmanager
    def bar(self, description: str, total: int, unit: str = "steps") -> Iterator[ProgressBar]:
        if self.mode == "off":
            yield ProgressBar(description, total, unit)
        elif self.mode == "lines":
            emit = (lambda s: self.console.print(s, markup=False, highlight=False)) if self.console else print
            bar = ProgressBar(description, total, unit, emit=emit, every=self.every)
            yield bar
            bar.finish()
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as RichProgress

            # the ETA is in `info` (from the bar's own rate), so all three modes say the same
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn(unit), TextColumn("{task.fields[info]}"))
            with RichProgress(*columns, console=self.console) as rich:
                task_id = rich.add_task(description, total=total, info="")
                yield ProgressBar(description, total, unit, rich_task=(rich, task_id))


OFF = Progress("off")
