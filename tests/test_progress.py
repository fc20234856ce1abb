"""Progress bars: rich on a terminal, plain lines every N steps in a log, nothing when quiet."""
from __future__ import annotations

import io

from rich.console import Console

from harness.progress import Progress


def _run(progress: Progress, total: int = 25) -> None:
    with progress.bar("epoch 1/4", total) as bar:
        for i in range(total):
            bar.advance(loss=1.0 / (i + 1))


def test_a_log_gets_a_plain_line_every_tenth_and_at_the_end():
    out = io.StringIO()
    progress = Progress.for_console(Console(file=out, width=200), quiet=False)
    assert progress.mode == "lines"
    _run(progress)
    lines = out.getvalue().splitlines()
    # every ceil(25 / 10) = 3 steps, then the last one
    assert [ln.split(": ")[1].split(",")[0] for ln in lines] == [
        "3/25 steps", "6/25 steps", "9/25 steps", "12/25 steps", "15/25 steps", "18/25 steps",
        "21/25 steps", "24/25 steps", "25/25 steps"]
    assert lines[0].startswith("epoch 1/4: 3/25 steps, loss 0.333, ") and "ETA " in lines[0]
    assert lines[-1].startswith("epoch 1/4: 25/25 steps, loss 0.040, ") and ", in 0:0" in lines[-1]
    assert "\x1b" not in out.getvalue()


def test_every_n_steps_is_configurable():
    out = io.StringIO()
    _run(Progress("lines", Console(file=out, width=200), every=10))
    assert [ln.split(": ")[1].split(",")[0] for ln in out.getvalue().splitlines()] == [
        "10/25 steps", "20/25 steps", "25/25 steps"]


def test_quiet_prints_nothing_even_on_a_terminal():
    out = io.StringIO()
    progress = Progress.for_console(Console(file=out, force_terminal=True), quiet=True)
    assert progress.mode == "off"
    _run(progress)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_rich_bar_with_loss_and_rate():
    out = io.StringIO()
    progress = Progress.for_console(Console(file=out, force_terminal=True, width=160), quiet=False)
    assert progress.mode == "bar"
    _run(progress)
    text = out.getvalue()
    assert "\x1b[" in text            # drawn in place with control codes
    final = text.rsplit("\r", 1)[-1]
    assert "epoch 1/4" in final and "25/25" in final and "loss 0.040" in final and "steps/s" in final
