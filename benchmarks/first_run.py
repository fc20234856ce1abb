"""A newcomer's first ten minutes, measured: fresh clone → install → the README's first command.

Clones the repository's committed HEAD into a temporary directory, then times separately
  1. install: `./run true` (creates .venv: CPU torch, the package, test extras; needs PyPI)
  2. run:     `./run harness train-and-grade suites/translation.yaml` with an empty
              $HARNESS_CACHE, as on a machine that never ran the harness
on the cores given (default 2, as the README's target machine). The issue's target is a
first run of at most 3 minutes after installation. A machine shared with other jobs runs
slower: the load average before and after is printed so a reader can tell.

    python benchmarks/first_run.py [--cores 2] [--venv PATH] [--keep]

`--venv PATH` skips the install and runs with that virtualenv's Python (offline machines).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_RUN_SECONDS = 180


def timed(cmd: list[str], cwd: Path, env: dict, cores: list[int], log: Path) -> tuple[float, int]:
    def pin():  # the child (and what it starts) runs on these cores only
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)

    t0 = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin)
    return time.perf_counter() - t0, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2, help="cores the install and run may use")
    ap.add_argument("--venv", help="an existing virtualenv: skip the install, run with its python")
    ap.add_argument("--suite", default="suites/translation.yaml")
    ap.add_argument("--keep", action="store_true", help="keep the clone (and its run directory)")
    ap.add_argument("--install-only", action="store_true", help="time the install, not the run")
    args = ap.parse_args()

    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cores = available[: args.cores]
    work = Path(tempfile.mkdtemp(prefix="harness-first-run-"))
    clone, cache = work / "harness", work / "cache"
    env = {**os.environ, "HARNESS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    load_before = os.getloadavg()
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                              text=True, check=True).stdout.strip()
        if args.venv:
            install_s, code = 0.0, 0
            env["PYTHONPATH"] = str(clone)
            run_cmd = [str(Path(args.venv) / "bin" / "python"), "-m", "harness.cli"]
        else:
            install_s, code = timed(["./run", "true"], clone, env, cores, work / "install.log")
            if code:
                print(f"install failed (exit {code}); see {work / 'install.log'}")
                return 1
            run_cmd = ["./run", "harness"]
        if args.install_only:
            print(f"commit {head}; cores {len(cores) or os.cpu_count()}; load average before "
                  f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (1 min)")
            print(f"install: {install_s:7.1f} s  (run not timed: --install-only)")
            return 0
        run_s, code = timed(run_cmd + ["train-and-grade", args.suite, "--run-dir", "runs/first"],
                            clone, env, cores, work / "run.log")
        load_after = os.getloadavg()
        lines = (work / "run.log").read_text(errors="replace").splitlines()
        print(f"commit {head}; cores {len(cores) or os.cpu_count()}; "
              f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
        print(f"install: {install_s:7.1f} s" + ("  (skipped: --venv)" if args.venv else ""))
        print(f"run:     {run_s:7.1f} s  (exit {code}; target {TARGET_RUN_SECONDS} s: "
              f"{'met' if run_s <= TARGET_RUN_SECONDS else 'missed'}; run / target {run_s / TARGET_RUN_SECONDS:.2f})")
        for ln in lines:
            if ln.startswith(("epoch ", "best epoch", "forgetting:", "building built-in")):
                print(f"  {ln}")
        return code
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
