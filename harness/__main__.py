"""`python -m harness ...` and the `harness` command (pyproject's entry point `harness.__main__:run`)."""
import atexit
import os
import sys


def run() -> None:
    """The `harness` command and `python -m harness`: `main()`, then the exit.

    Once torch is loaded, Python's own finalization after the work (every module torn down, torch's
    and its thread pools' destructors) takes about a second on a CPU, a tenth of a 1,000-item
    `harness grade`. With the work done and its files written and closed, the process leaves as
    Python would up to that point (the exit handlers run: loggers, trackers, temporary directories,
    child processes; the standard streams flushed) and skips the teardown. Not with other
    non-daemon threads alive (Python would wait for them), nor for a `main()` called in-process."""
    import threading

    from harness.cli import main

    code = main()
    exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if "torch" not in sys.modules or exit_handlers is None or any(
            not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (`harness ... | head`): nothing left to say
            pass
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    run()
