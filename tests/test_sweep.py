"""`harness sweep`: the block refused before any trial (fast), and real sweeps on the built-in
tiny model (slow): six trials with pruning on SQLite, two workers sharing one study on SQLite
and on a PostgreSQL server started here, a worker killed mid-trial whose trial another resumes."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

import pytest

from harness.cli import main
from harness.suite import parse_suite
from harness.sweep.space import grid_points, plan_sweep, trial_suite

SUITE = """\
name: tiny-sweep
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 32}}}}]
  epochs: {epochs}
  batch_size: 8
  max_seq_len: 64
  logging_steps: 1
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 6}}}}
    metrics: [chrf, bleu]
    generation: {{max_new_tokens: 12, batch_size: 8}}
bootstrap: {{samples: 20}}
diagnostics: {{forgetting: {{samples: 100}}}}
gates: [{{task: en-fr, metric: chrf, min: 0}}]
output_dir: {out}
sweep:
  params:
    train.lr: {lrs}
    train.precision: {precisions}
  sampler: grid
  pruner: {pruner}
  objective: {{metric: en-fr/chrf, at: best}}
  constraints: {{forgetting: none}}
"""


def _write_suite(tmp_path: Path, model="builtin:tiny-translator", epochs=2, lrs="[1.0e-3, 1.0e-2, 3.0e-2]",
                 precisions="[fp32, bf16]", pruner="median", edit=None) -> Path:
    text = SUITE.format(model=model, epochs=epochs, out=tmp_path / "runs", lrs=lrs, precisions=precisions,
                        pruner=pruner)
    if edit:
        text = edit(text)
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- fast: refused up front
@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace("train.lr:", "train.learning_rate:"), "unknown parameter path 'train.learning_rate'"),
    (lambda t: t.replace("train.lr: [1.0e-3, 1.0e-2, 3.0e-2]", "train.lr: {uniform: [0.01, 0.01]}")
     .replace("sampler: grid", "sampler: tpe"), "empty or inverted range"),
    (lambda t: t.replace("train.lr: [1.0e-3, 1.0e-2, 3.0e-2]", "train.lr: {uniform: [0.1, 0.01]}")
     .replace("sampler: grid", "sampler: random"), "empty or inverted range"),
    (lambda t: t.replace("train.lr: [1.0e-3, 1.0e-2, 3.0e-2]", "train.lr: {log_uniform: [0, 0.01]}")
     .replace("sampler: grid", "sampler: tpe"), "touches 0"),
    (lambda t: t.replace("metric: en-fr/chrf", "metric: en-fr/rouge"), "task 'en-fr' produces no 'rouge'"),
    (lambda t: t.replace("metric: en-fr/chrf", "metric: de-fr/chrf"), "no task 'de-fr'"),
    (lambda t: t.replace("train.precision: [fp32, bf16]", "train.precision: [fp32, fp64]"), "value 'fp64'"),
    (lambda t: t.replace("train.precision: [fp32, bf16]", "train.precision: [fp32, fp16]"), "fp16 needs a CUDA"),
    (lambda t: t.replace("train.lr: [1.0e-3, 1.0e-2, 3.0e-2]", "train.lr: {log_uniform: [1.0e-4, 1.0e-2]}"),
     "the grid sampler needs a list of choices"),
    (lambda t: t.replace("train.precision:", "train.lora:"), "a whole section"),
])
def test_a_bad_sweep_block_is_one_line_exit_2_before_any_trial(tmp_path, capsys, edit, words):
    suite = _write_suite(tmp_path, edit=edit)
    if "fp16" in words:
        import torch

        if torch.cuda.is_available():
            pytest.skip("fp16 runs on this machine")
    assert main(["sweep", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err and "Traceback" not in err, err
    assert str(suite) in err                      # names the file (and its line)
    assert not (tmp_path / "runs").exists()       # refused before the sweep directory exists


def test_an_unreachable_storage_is_one_line_exit_2_before_any_trial(tmp_path, capsys):
    suite = _write_suite(tmp_path)
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["sweep", str(suite), "--storage", f"postgresql://someone:secret@127.0.0.1:{port}/db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot open the study storage" in err and "secret" not in err, err
    assert "OperationalError" in err     # the server was asked (psycopg2 is installed with the test extra)
    assert not list((tmp_path / "runs").glob("*/trials"))


def test_a_trial_suite_carries_its_values_and_seed_and_no_sweep(tmp_path):
    suite = parse_suite(_write_suite(tmp_path).read_text(), file="suite.yaml", base_dir=tmp_path)
    plan = plan_sweep(suite)
    assert (plan.key, plan.direction) == ("en-fr/chrf", "maximize")
    points = grid_points(plan.spec)
    assert len(points) == 6 and points[1] == {"train.lr": 1e-3, "train.precision": "bf16"}
    t = trial_suite(plan, points[1], seed=7)
    assert (t.train.lr, t.train.precision, t.train.seed, t.sweep) == (1e-3, "bf16", 7, None)
    assert suite.train.seed == 0 and suite.sweep is not None    # the suite itself is untouched


# ----------------------------------------------------------------------------- slow: real sweeps
def _cli(*args: str, timeout: float = 900, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _scores(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    return {e["epoch"]: {m: v["score"] for m, v in e["tasks"]["en-fr"]["metrics"].items()}
            for e in results["models"][0]["epochs"]}


def _study_trials(url: str, name: str = "tiny-sweep"):
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def six_trial_sweep(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep6")
    suite = _write_suite(tmp, model=tiny_model_dir)
    done = _cli("sweep", str(suite))
    return tmp, suite, done


@pytest.mark.slow
def test_six_trials_with_pruning_end_with_a_report_naming_the_best_config_and_its_tie_set(six_trial_sweep):
    import optuna

    tmp, suite, done = six_trial_sweep
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sweep_dir = tmp / "runs" / "tiny-sweep"
    trials = _study_trials(f"sqlite:///{sweep_dir / 'study.db'}")
    states = [t.state for t in trials]
    assert len(trials) == 6 and set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert sorted(tuple(t.params.values()) for t in trials) == sorted(
        (lr, p) for lr in (1e-3, 1e-2, 3e-2) for p in ("fp32", "bf16"))          # the grid, each point once
    assert sum(line.startswith("trial ") for line in done.stdout.splitlines()) == 6   # one line per trial
    summary = next(line for line in done.stdout.splitlines() if line.startswith("sweep: use trial"))
    best = min((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE),
               key=lambda t: (-t.value, t.number))
    assert f"use trial {best.number} " in summary
    html = (sweep_dir / "report.html").read_text()
    assert "Trials, best first" in html and "tie set" in html.lower() and html.count("<svg") >= 2
    for t in trials:   # every trial an ordinary run directory, its values in its suite.yaml
        run = sweep_dir / "trials" / f"trial-{t.number:04d}" / "seed-0"
        stored = parse_suite((run / "suite.yaml").read_text(), base_dir=run)
        assert (stored.train.lr, stored.train.precision, stored.train.seed) == (t.params["train.lr"],
                                                                                 t.params["train.precision"], 0)
        results = json.loads((run / "results.json").read_text())
        assert results["status"] == "complete"
        if t.state == optuna.trial.TrialState.PRUNED:
            assert "pruned" in results["models"][0]["stopped"]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the median pruner stopped nothing: lr 3e-2 should trail lr 1e-3 after epoch 1"
    gate = _cli("gate", str(sweep_dir / "trials" / f"trial-{best.number:04d}" / "seed-0"))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    again = _cli("report", str(sweep_dir))
    assert again.returncode == 0 and "use trial" in again.stdout


@pytest.mark.slow
def test_a_trial_scores_what_the_same_suite_run_alone_scores(six_trial_sweep, tiny_model_dir):
    import yaml

    tmp, suite, done = six_trial_sweep
    assert done.returncode == 0
    trial = tmp / "runs" / "tiny-sweep" / "trials" / "trial-0000" / "seed-0"
    raw = yaml.safe_load(suite.read_text())
    raw.pop("sweep")
    raw["train"].update(lr=1e-3, precision="fp32", seed=0)       # trial 0: the grid's first point
    alone_suite = tmp / "alone.yaml"
    alone_suite.write_text(yaml.safe_dump(raw))
    alone = _cli("-q", "train-and-grade", str(alone_suite), "--run-dir", str(tmp / "alone"), "--no-report")
    assert alone.returncode == 0, alone.stderr[-2000:]
    a, b = _scores(trial), _scores(tmp / "alone")
    assert list(a) == list(b) == [0, 1, 2]
    for epoch in a:
        assert b[epoch] == pytest.approx(a[epoch], rel=1e-6)


def _two_workers(tmp: Path, suite: Path, storage: str) -> list[str]:
    workers = [_worker(str(suite), "--storage", storage, "--no-report", "--heartbeat", "2") for _ in range(2)]
    outs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outs)
    return outs


def _check_shared(tmp: Path, url: str, outs: list[str], n: int) -> None:
    import optuna

    trials = _study_trials(url)
    assert len(trials) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), \
        [t.state for t in trials]
    assert len({tuple(t.params.items()) for t in trials}) == n               # no grid point run twice
    ran = [int(line.split()[1]) for o in outs for line in o.splitlines() if line.startswith("trial ")]
    assert sorted(ran) == list(range(n))                                       # each once, by one worker
    for k in range(n):
        results = json.loads((tmp / "runs" / "tiny-sweep" / "trials" / f"trial-{k:04d}" / "seed-0" /
                              "results.json").read_text())
        assert results["status"] == "complete" and "resumed" not in results


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_and_run_each_trial_once(tiny_model_dir, tmp_path):
    """...and a suite that tracks its runs gets one tracker run per trial, grouped by the study."""
    from tests.tracker_readers import read_tensorboard

    suite = _write_suite(tmp_path, model=tiny_model_dir, epochs=1, lrs="[1.0e-3, 1.0e-2]",
                         precisions="[fp32]", pruner="none",
                         edit=lambda t: t + "tracking: {backends: [tensorboard]}\n")
    (tmp_path / "runs" / "tiny-sweep").mkdir(parents=True)
    url = f"sqlite:///{tmp_path / 'runs' / 'tiny-sweep' / 'study.db'}"
    outs = _two_workers(tmp_path, suite, url)
    _check_shared(tmp_path, url, outs, 2)
    for k in range(2):
        run = tmp_path / "runs" / "tiny-sweep" / "trials" / f"trial-{k:04d}" / "seed-0"
        results = json.loads((run / "results.json").read_text())
        assert results["suite"]["tracking"]["group"] == "tiny-sweep"
        logged = read_tensorboard(run / "tensorboard")
        assert [step for step, _ in logged.points["eval/en-fr/chrf"]][0] == 0     # epoch 0 at step 0
        assert len(logged.points["eval/en-fr/chrf"]) == 2                          # and the trained epoch


@pytest.fixture
def postgres_url():
    """A PostgreSQL server started here on 127.0.0.1 (Debian's package: .ci/run installs it)."""
    bins = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    if os.geteuid() == 0:   # postgres refuses to run as root: run it as the package's postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start postgres as another user")
        try:
            shutil.chown(data, "postgres")
        except (LookupError, PermissionError):
            pytest.skip("running as root and no postgres user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "harness", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w",
                    "-o", f"-p {port} -h 127.0.0.1 -k {data}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://harness@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study_and_run_each_trial_once(tiny_model_dir, tmp_path, postgres_url):
    pytest.importorskip("psycopg2")
    suite = _write_suite(tmp_path, model=tiny_model_dir, epochs=1, lrs="[1.0e-3, 1.0e-2]",
                         precisions="[fp32]", pruner="none")
    outs = _two_workers(tmp_path, suite, postgres_url)       # a bare postgresql:// URL: the harness picks psycopg2
    _check_shared(tmp_path, postgres_url.replace("postgresql://", "postgresql+psycopg2://"), outs, 2)
    report = _cli("report", str(tmp_path / "runs" / "tiny-sweep"))   # the report needs the files, not the database
    assert report.returncode == 0 and "use trial" in report.stdout


@pytest.mark.slow
def test_a_worker_killed_mid_trial_has_its_trial_retried_and_resumed_by_another(tiny_model_dir, tmp_path):
    import optuna

    suite = _write_suite(tmp_path, model=tiny_model_dir, epochs=2, lrs="[1.0e-3]", precisions="[fp32]",
                         pruner="none")   # one trial: the second worker has nothing to do but wait for it
    sweep_dir = tmp_path / "runs" / "tiny-sweep"
    first = _worker(str(suite), "--no-report", "--heartbeat", "1")
    results = sweep_dir / "trials" / "trial-0000" / "seed-0" / "results.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and first.poll() is None:
        try:   # epoch 1 graded and the Trainer's state saved after it
            if (json.loads(results.read_text())["models"][0].get("resume_state") or {}).get("epoch") == 1:
                break
        except (FileNotFoundError, json.JSONDecodeError, IndexError, KeyError):
            pass
        time.sleep(0.05)
    assert first.poll() is None, "the worker finished before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = _worker(str(suite), "--no-report", "--heartbeat", "1")
    out = second.communicate(timeout=900)[0]
    assert second.returncode == 0, out[-3000:]
    trials = _study_trials(f"sqlite:///{sweep_dir / 'study.db'}")
    by_state = {s: [t for t in trials if t.state == s] for s in optuna.trial.TrialState}
    assert [t.number for t in by_state[optuna.trial.TrialState.FAIL]] == [0]         # failed by heartbeat
    done = by_state[optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1 and len(trials) == 2                                        # none lost, none twice
    retry = done[0]
    assert retry.system_attrs.get("failed_trial") == 0 and retry.params == trials[0].params
    resumed = json.loads(results.read_text())
    assert resumed["status"] == "complete" and resumed["resumed"][0]["epochs_before"] == {"tiny": [0, 1]}
    assert [e["epoch"] for e in resumed["models"][0]["epochs"]] == [0, 1, 2]
    assert f"trial {retry.number} complete" in out
