"""Each tracker's run read back through that tracker's own reader, as one shape:

    Logged(points={key: [(step, value), ...]}, summary={field: value}, params={name: value}, files=[name, ...])

`points` holds every scalar the run logged (the Trainer's and the harness's) at the step the
tracker files it under: TensorBoard's event step, MLflow's metric step, W&B's and trackio's
`train/global_step` (the x axis the Trainer's callbacks declare).

    read_tensorboard(log_dir)            tensorboard's EventAccumulator
    read_mlflow(tracking_uri, run_id)    MlflowClient (a SQLite store in the tests)
    read_wandb(run_dir)                  the offline run's .wandb log, record by record, as wandb's
                                         protobuf `Record`s (W&B ships no reader of its own for them)
    read_trackio(trackio_dir, project, run)   trackio's SQLiteStorage, in a subprocess (trackio reads
                                         TRACKIO_DIR once, when it is first imported)
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

STEP = "train/global_step"


@dataclass
class Logged:
    points: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def add(self, key: str, step: int, value) -> None:
        self.points.setdefault(key, []).append((int(step), value))


def read_tensorboard(log_dir: Path) -> Logged:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out = Logged()
    for tag in acc.Tags()["scalars"]:
        for e in acc.Scalars(tag):
            out.add(tag, e.step, e.value)
    tables = {"summary/text_summary": out.summary, "suite/params/text_summary": out.params, "artifacts/text_summary": {}}
    for tag in set(acc.Tags()["tensors"]) & set(tables):   # the harness's add_text: `| key | value |` tables
        for e in acc.Tensors(tag):
            lines = e.tensor_proto.string_val[0].decode().splitlines()[2:]
            tables[tag].update(dict((part.strip() for part in line.strip("|").split(" | ", 1)) for line in lines))
    out.files = sorted(tables["artifacts/text_summary"])
    return out


def read_mlflow(tracking_uri: str, run_id: str) -> Logged:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    out = Logged(summary=dict(run.data.tags), params=dict(run.data.params))
    for key in run.data.metrics:
        for m in client.get_metric_history(run_id, key):
            out.add(key, m.step, m.value)

    def walk(path=None):
        for f in client.list_artifacts(run_id, path):
            yield from (walk(f.path) if f.is_dir else [f.path])

    out.files = sorted(walk())
    out.status = run.info.status
    return out


def _wandb_records(path: Path):
    """The records of a .wandb file: W&B's LevelDB-style log (a 7-byte header, then 32 KiB blocks of
    chunks, each `crc32 u32, length u16, type u8` then data; types full 1, first 2, middle 3, last 4)."""
    data, block = path.read_bytes(), 32768
    ident, _magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B", f"{path} is not a W&B run log"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:                  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def read_wandb(run_dir: Path) -> Logged:
    from wandb.proto import wandb_internal_pb2

    out = Logged()
    (log,) = Path(run_dir).glob("run-*.wandb")
    for raw in _wandb_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            for key, value in row.items():
                if not key.startswith("_") and key != STEP and isinstance(value, (int, float)):
                    out.add(key, row[STEP], value)
        elif kind == "summary":
            out.summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                for i in record.summary.update if not (i.key or "").startswith("_")})
        elif kind in ("config", "run"):
            items = record.config.update if kind == "config" else record.run.config.update
            out.params.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
            if kind == "run":
                out.summary.update({"_tags": list(record.run.tags), "_group": record.run.run_group})
        elif kind == "artifact" and record.artifact.type == "harness-run":
            out.files += [e.path for e in record.artifact.manifest.contents]
    return out


READ_TRACKIO = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
project, run = sys.argv[1:3]
artifacts = SQLiteStorage.get_run_artifacts(project, run, None)["output"]
files = [f["path"] for a in artifacts for f in SQLiteStorage.get_artifact_manifest(project, a["name"], None)["manifest"]]
print(json.dumps({"logs": SQLiteStorage.get_logs(project, run), "config": SQLiteStorage.get_run_config(project, run),
                  "runs": SQLiteStorage.get_runs(project), "files": files}, default=str))
"""


def read_trackio(trackio_dir: Path, project: str, run: str) -> Logged:
    got = subprocess.run([sys.executable, "-c", READ_TRACKIO, project, run], capture_output=True, text=True,
                         env={**os.environ, "TRACKIO_DIR": str(trackio_dir)}, check=True)
    data = json.loads(got.stdout.strip().splitlines()[-1])
    out = Logged(params={k: v for k, v in (data["config"] or {}).items() if not k.startswith("_")})
    out.summary, out.files = dict(out.params), sorted(data["files"])
    out.runs = data["runs"]
    for row in data["logs"]:
        for key, value in row.items():
            if key not in ("step", "timestamp", STEP) and isinstance(value, (int, float)) and STEP in row:
                out.add(key, row[STEP], value)
    return out
