"""Experiment trackers (harness/tracking/): one real train-and-grade run logged to TensorBoard,
MLflow (a SQLite store), W&B (offline) and trackio (its local store) at once, each read back
through that tracker's own reader (tests/tracker_readers.py); then `harness grade --track-run`
into the same runs, a tracker that cannot be reached, and the command line's refusals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.suite import parse_suite
from tracker_readers import read_mlflow, read_tensorboard, read_trackio, read_wandb

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["tensorboard", "mlflow", "wandb", "trackio"]
TRAINER_LOSS = {"tensorboard": "train/loss", "mlflow": "loss", "wandb": "train/loss", "trackio": "train/loss"}


def _suite_text(model_dir: Path, tracking: str = "") -> str:
    return f"""
name: tiny
models: [{{name: tiny, path: {model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 32}}}}]
  epochs: 2
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 96
  logging_steps: 1
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 6}}}}
    metrics: [bleu, chrf, usability]
    generation: {{max_new_tokens: 12, batch_size: 6}}
  - name: fr-en
    data: {{synthetic: {{kind: translation, direction: fr-en, split: val, n: 6}}}}
    metrics: [bleu]
    generation: {{max_new_tokens: 12, batch_size: 6}}
bootstrap: {{samples: 50}}
{tracking}
"""


def _env(tmp: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "TRACKIO_DIR": str(tmp / "trackio")}


def _harness(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    # cwd: MLflow keeps a SQLite store's artifacts in ./mlruns
    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def tracked(tiny_model_dir, tmp_path_factory):
    """One training run sent to all four trackers (the suite names two, --track the others), read back."""
    tmp = tmp_path_factory.mktemp("tracked")
    suite = tmp / "suite.yaml"
    suite.write_text(_suite_text(tiny_model_dir, "tracking: {backends: [tensorboard, mlflow], project: tinyproj, "
                                                 "run_name: tiny-run, tags: {team: eval}, group: study-1}"))
    env = _env(tmp)
    _harness(["train-and-grade", str(suite), "--run-dir", str(tmp / "run"), "--track", "wandb", "--track", "trackio"],
             env, tmp)
    results = json.loads((tmp / "run" / "results.json").read_text())
    return tmp, suite, env, results, _read_all(tmp, results)


def _read_all(tmp: Path, results: dict) -> dict:
    ids = {e["backend"]: e["run_id"] for e in results["tracking"]}
    wandb_dirs = sorted((tmp / "run" / "wandb").glob(f"offline-run-*-{ids['wandb']}"))
    return {"tensorboard": read_tensorboard(Path(ids["tensorboard"])),
            "mlflow": read_mlflow(f"sqlite:///{tmp / 'mlflow.db'}", ids["mlflow"]),
            "wandb": read_wandb(wandb_dirs[0]),
            "trackio": read_trackio(tmp / "trackio", "tinyproj", ids["trackio"])}


def _expected(results: dict, prefix: str = "eval") -> dict[str, list[tuple[int, float]]]:
    """Every score and interval bound of results.json, as (step, value) points per key."""
    out: dict[str, list] = {}
    for er in results["models"][0]["epochs"]:
        for task, record in er["tasks"].items():
            for metric, m in record["metrics"].items():
                if m.get("score") is None:
                    continue
                key = f"{prefix}/{task}/{metric}"
                out.setdefault(key, []).append((er["step"], m["score"]))
                if m.get("ci"):
                    out.setdefault(f"{key}/ci_low", []).append((er["step"], m["ci"][0]))
                    out.setdefault(f"{key}/ci_high", []).append((er["step"], m["ci"][1]))
    return out


@pytest.mark.slow
def test_every_tracker_run_is_recorded_in_results(tracked):
    tmp, _, _, results, _ = tracked
    assert [(e["backend"], e["status"]) for e in results["tracking"]] == [(b, "ok") for b in BACKENDS]
    assert results["suite"]["tracking"]["backends"] == BACKENDS   # --track added to the suite's two
    assert results["status"] == "complete"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_at_the_step_each_epoch_was_saved(tracked, backend):
    tmp, _, _, results, logged = tracked
    got = logged[backend].points
    expected = _expected(results)
    steps = [er["step"] for er in results["models"][0]["epochs"]]
    # epoch k's scores sit at the global step of its Trainer checkpoint (epoch 0 at step 0)
    per_epoch = results["models"][0]["train"]["steps_per_epoch"]
    assert steps == [0, per_epoch, 2 * per_epoch]
    assert {k for k in got if k.startswith("eval/")} == set(expected)
    for key, points in expected.items():
        assert [s for s, _ in got[key]] == [s for s, _ in points], key
        assert [v for _, v in got[key]] == pytest.approx([v for _, v in points], rel=1e-6), key
    epochs = list(zip(steps, range(3)))
    if backend == "mlflow":   # the Trainer's own `epoch` (0.5, 1.0, ...) shares the key there
        assert set(epochs) <= set(got["epoch"])
    else:
        assert got["epoch"] == epochs


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_trainer_logs_share_the_run_and_no_eval_key_is_a_training_key(tracked, backend):
    _, _, _, results, logged = tracked
    got = logged[backend].points
    loss = got[TRAINER_LOSS[backend]]   # the Trainer's own curve, in this same run
    assert [s for s, _ in loss] == [r["step"] for r in results["models"][0]["train"]["log"]]
    evalish = {k for k in got if "eval" in k}
    assert evalish == set(_expected(results)), f"training keys holding eval scores: {evalish - set(_expected(results))}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_verdicts_params_and_files(tracked, backend):
    _, _, _, results, logged = tracked
    run = logged[backend]
    record = results["models"][0]
    summary = {k: str(v) for k, v in run.summary.items()}
    assert summary["verdict/forgetting"] == record["diagnostics"]["forgetting"]["verdict"]["status"]
    assert summary["verdict/audit"] == record["audit"]["verdict"]["status"]
    assert summary["best/epoch"] == str(record["best"]["epoch"])
    assert summary["recommended/epoch"] == str(record["diagnostics"]["checkpoint"]["recommended"])
    assert str(run.params["suite/train/lr"]) == "0.002"
    assert str(run.params["suite/train/epochs"]) == "2"
    assert {"report.html", "results.json", "samples/tiny/epoch-2/en-fr.jsonl"} <= set(run.files)


@pytest.mark.slow
def test_name_tags_and_group_reach_the_run(tracked):
    tmp, _, _, results, logged = tracked
    assert logged["mlflow"].summary["team"] == "eval" and logged["mlflow"].summary["group"] == "study-1"
    assert logged["mlflow"].summary["mlflow.runName"] == "tiny-run"
    assert logged["wandb"].summary["_tags"] == ["team:eval"] and logged["wandb"].summary["_group"] == "study-1"
    assert logged["trackio"].runs == ["tiny-run"]


@pytest.mark.slow
def test_grade_with_track_run_logs_into_the_run_that_trained_it(tracked):
    tmp, suite, env, results, _ = tracked
    checkpoint = tmp / "run" / "checkpoints" / "tiny" / "epoch-2"
    _harness(["grade", str(suite), "--model", str(checkpoint), "--run-dir", str(tmp / "graded"), "--no-report",
              "--track", "mlflow", "--track", "tensorboard", "--track", "wandb", "--track", "trackio",
              "--track-run", str(tmp / "run")], env, tmp)
    graded = json.loads((tmp / "graded" / "results.json").read_text())
    trained_ids = {e["backend"]: e["run_id"] for e in results["tracking"]}
    assert {e["backend"]: e["run_id"] for e in graded["tracking"]} == trained_ids
    after = _read_all(tmp, results)
    step = results["models"][0]["epochs"][2]["step"]
    for backend in ("mlflow", "tensorboard", "trackio"):
        got = after[backend].points
        assert got["grade/en-fr/bleu"] == [(step, pytest.approx(graded["models"][0]["epochs"][0]["tasks"]["en-fr"]
                                                                ["metrics"]["bleu"]["score"]))], backend
        assert [s for s, _ in got["eval/en-fr/bleu"]] == [0, step // 2, step], backend   # the curve is untouched
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tinyproj")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [trained_ids["mlflow"]]
    assert after["trackio"].runs == ["tiny-run"]
    # W&B offline: the resumed run writes a second log under the same run id (wandb sync merges them)
    resumed = sorted((tmp / "graded" / "wandb").glob(f"offline-run-*-{trained_ids['wandb']}"))
    assert "grade/en-fr/bleu" in read_wandb(resumed[0]).points


def test_a_tracker_that_cannot_be_reached_is_a_warning_and_the_run_goes_on(tiny_model_dir, tmp_path, monkeypatch,
                                                                            capsys):
    import socket

    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite_text(tiny_model_dir))
    code = main(["-q", "grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report", "--track", "mlflow",
                 "--track", "tensorboard"])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: tracking: mlflow failed (start: " in err and "the run goes on" in err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "complete" and results["models"][0]["epochs"]
    mlflow_entry, tb_entry = results["tracking"]
    assert mlflow_entry["status"] == "failed" and mlflow_entry["error"].startswith("start: ")
    assert tb_entry["status"] == "ok"   # the other tracker still got the run
    assert "eval/en-fr/bleu" in read_tensorboard(tmp_path / "run" / "tensorboard").points


def test_tracking_off_writes_nothing_new(tiny_model_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite_text(tiny_model_dir))
    assert main(["-q", "grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "tracking" not in results and "tracking" not in results["suite"]
    assert "tracking" not in (tmp_path / "run" / "suite.yaml").read_text()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["results.json", "samples", "suite.yaml"]


def test_a_missing_tracker_package_names_its_extra(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)   # as if wandb were not installed
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite_text(tiny_model_dir))
    assert main(["train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--track", "wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: tracking backend wandb needs the wandb package: pip install 'harness[wandb]'"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("tracking, message", [
    ("tracking: {backends: [wandb, wandb]}", "backends listed twice: ['wandb']"),
    ("tracking: {backends: [neptune]}", "field 'tracking.backends.0': Input should be 'tensorboard', 'mlflow', 'wandb' "
                                        "or 'trackio'"),
    ("tracking: {backend: [wandb]}", "unknown key 'tracking.backend': did you mean 'backends'?"),
])
def test_bad_tracking_blocks_are_one_line(tiny_model_dir, tmp_path, tracking, message):
    from harness.errors import SuiteError

    with pytest.raises(SuiteError, match=None) as e:
        parse_suite(_suite_text(tiny_model_dir, tracking), file="s.yaml", base_dir=tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_track_run_needs_a_tracker(tiny_model_dir, tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite_text(tiny_model_dir))
    assert main(["grade", str(suite), "--run-dir", str(tmp_path / "run"), "--track-run", "abc123"]) == 2
    assert "--track-run abc123: name the tracker too" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_several_models_get_their_name_in_every_key(tmp_path):
    from harness.tracking import keys
    from run_fixtures import damage, make_run, sentences

    refs = {"en-fr": sentences(12, seed=1)}
    outputs = {0: {"en-fr": damage(refs["en-fr"], 0.5, seed=0)}, 1: {"en-fr": damage(refs["en-fr"], 0.1, seed=1)}}
    root = make_run(tmp_path / "run", None, refs, models={"base": outputs, "tuned": outputs}, bootstrap=50,
                    gates=[{"task": "en-fr", "metric": "bleu", "min": 1}],
                    results_hook=lambda r: r.update(gates={"verdict": {"status": "pass", "summary": "1 gate passed"}}))
    results = json.loads((root / "results.json").read_text())
    tuned = results["models"][1]
    scores = keys.epoch_scores(tuned["epochs"][1], "tuned")
    bleu = tuned["epochs"][1]["tasks"]["en-fr"]["metrics"]["bleu"]
    assert scores["eval/tuned/en-fr/bleu"] == bleu["score"]
    assert (scores["eval/tuned/en-fr/bleu/ci_low"], scores["eval/tuned/en-fr/bleu/ci_high"]) == tuple(bleu["ci"])
    assert all(k.startswith("eval/tuned/en-fr/") for k in scores)
    fields = keys.summary_fields(results)
    assert fields["best/base/epoch"] == results["models"][0]["best"]["epoch"]
    assert fields["best/tuned/score"] == tuned["best"]["score"]
    assert fields["verdict/gates"] == "pass" and fields["run/status"] == "complete"
    assert keys.epoch_scores(tuned["epochs"][1], None, keys.GRADE).keys() == {
        k.replace("eval/tuned/", "grade/") for k in scores}
