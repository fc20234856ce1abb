"""One model's training job as a recipe object: setup, train (graded at every epoch end), finish, cleanup.

The shape of torchtune's recipe classes: the job's state lives on `self`, and the runner
(runners/trl_sft.py) calls back into it through bound methods:

    setup      the model's memory plan, built once from the rows already loaded; the fit check;
               the model and tokenizer; the grading batch; the tokenized rows; the model's record
               (continued after its resume point, or new and audited)
    train      grade epoch 0, then train; the runner calls
                 on_epoch_end    save the epoch's weights, grade them, write results.json, stop early?
                 on_state_saved  record the Trainer's checkpoint (what --resume continues from)
                 on_log          rewrite train_log.jsonl
               and after every graded epoch the run's epoch_hooks (experiment trackers, harness/tracking/),
               after every trained one its epoch_callbacks (a sweep's pruner, harness/sweep/)
               and returns the memory measured while training
    finish     the memory record (estimate vs measured), diagnostics, the Trainer's state removed
    cleanup    the model and grading backends let go before the next model loads

Several processes (`accelerate launch`): rank 0 writes and grades (or each rank a shard of the
items) while the others wait at the barriers.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from harness import diagnose, memory
from harness import resume as resuming
from harness.backends import backend_class
from harness.best_epoch import best_epoch, default_best_metric, rotate_checkpoints, score_of
from harness.distributed import Processes, ShardedBackend, follow_grading
from harness.drift.measure import probe_for
from harness.early_stopping import EarlyStopper
from harness.errors import DoesNotFit, UserError
from harness.grade import LoadedTask, grade_epoch, with_grading_batch
from harness.out_of_memory import TrainingOutOfMemory, is_out_of_memory, training_remedy
from harness.progress import OFF, Progress
from harness.results import RunDir, model_record, write_atomic
from harness.resume import ResumePoint
from harness.suite import ModelSpec, Suite

Log = Callable[[str], None]


class AuditFailed(UserError):
    """A pre-training audit found an error and the suite says to stop (exit code 2)."""


@dataclass
class TrainingRun:
    """What every model's job in one train-and-grade run shares (harness.pipeline.train_and_grade)."""

    suite: Suite
    run: RunDir
    results: dict                     # results.json as written so far: the model's record goes in models
    save: Callable[[], None]          # rewrites results.json atomically (a no-op on ranks other than 0)
    tasks: list[LoadedTask]           # the graded tasks, loaded once for the run
    train_rows: list                  # the training rows (harness.data.Example), loaded once for the run
    probe_items: list = field(default_factory=list)   # diagnostics.probe's items (harness/drift/probe.py)
    gpu_memory: Optional[str] = None  # --gpu-memory, else the suite's memory.gpu_memory
    force: bool = False               # train even when the memory preflight says it does not fit
    procs: Processes = field(default_factory=lambda: Processes(0, 1))
    log: Log = print
    bars: Progress = OFF
    # called after each trained epoch is graded and saved, with (model record, epoch record); a
    # callback returning a reason stops training after this epoch, recorded as the record's `stopped`
    epoch_callbacks: tuple[Callable[[dict, dict], Optional[str]], ...] = ()
    # observers of every graded epoch, epoch 0 included, on rank 0: hook(model name, epoch record),
    # e.g. harness.tracking's; unlike epoch_callbacks they cannot stop training
    epoch_hooks: list[Callable[[str, dict], None]] = field(default_factory=list)
    # what each model's Trainer reports to (runners.trl_sft.train's `reporting`); None: nothing
    trainer_reporting: Optional[Callable[[], dict]] = None
    # --measure-memory: the grading phase's memory counted on CPU too (harness.memory.measured_epoch)
    measure_memory: bool = False


def pretraining_audit(suite: Suite, tasks: list[LoadedTask], train_rows, tokenizer=None, tokenized=None) -> dict:
    """The pre-training audits; without a tokenizer, only the template and data audits."""
    from harness import audit

    batches = ()
    if tokenizer is not None:
        from runners import trl_sft

        batches = trl_sft.batches(tokenizer, tokenized, suite.train)
    return audit.run_audits(train_examples=train_rows, tokenized=tokenized or [], tokenizer=tokenizer,
                            eval_sets={t.spec.name: t.examples for t in tasks}, suite=suite, batches=batches)


class TrainingJob:
    """One model of a train-and-grade run: trained through runners/trl_sft.py, graded every epoch.

    `record`: the model's record from an interrupted run (None: the model starts); `point`:
    where its training continues (harness/resume.py; None: from the start).
    """

    def __init__(self, ctx: TrainingRun, spec: ModelSpec, path: str, record: Optional[dict] = None,
                 point: Optional[ResumePoint] = None):
        self.ctx, self.spec, self.path = ctx, spec, path   # path: resolved (a built-in model's directory)
        self.suite, self.run, self.procs, self.log, self.bars = ctx.suite, ctx.run, ctx.procs, ctx.log, ctx.bars
        self.record, self.point = record, point
        # setup
        self.model = self.tokenizer = None
        self.memory_plan: Optional[memory.SharedPlan] = None
        self.grading: dict = {}               # memory.grading_estimate: the batch every epoch uses, its terms
        self.tasks: list[LoadedTask] = []     # the run's tasks at that grading batch
        self.tokenized: list = []
        # train
        self.vllm = self.backend = None
        self.gathered = self.sharded = False
        self.best_key = ""
        self.stopper: Optional[EarlyStopper] = None
        self.train_record = None              # runners.trl_sft.TrainRecord: the loss log so far
        self.drift = None                     # harness.drift.measure.DriftProbe: scored at every graded epoch

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from runners import trl_sft

        ctx, suite, spec = self.ctx, self.suite, self.spec
        # the plan every estimate of this model shares, counted with the training tokenizer (loaded
        # alone first: a model that does not fit is refused before its weights load)
        self.memory_plan = memory.SharedPlan(
            suite, spec, self.path, trl_sft.load_tokenizer(self.path), _device(),
            memory.LoadedRows(train=ctx.train_rows, tasks=[t.examples for t in ctx.tasks]))
        fits, explanation = memory.fits_or_explain(suite, spec, ctx.gpu_memory, shared=self.memory_plan)
        if not fits and not ctx.force:
            raise DoesNotFit(explanation)
        self.model, self.tokenizer = trl_sft.load(spec, self.path, suite.train)
        self.grading = memory.grading_estimate(suite, spec, self.path, gpu_memory=ctx.gpu_memory,
                                               shared=self.memory_plan)
        self.log(f"grading batch {self.grading['batch']} ({self.grading['why']})")
        self.tasks = with_grading_batch(ctx.tasks, self.grading["batch"])
        self.tokenized = trl_sft.tokenize_rows(self.tokenizer, ctx.train_rows, suite.train)
        self.drift = probe_for(suite, self.run, spec.name, self.tokenizer, ctx.probe_items, ctx.tasks,
                               self.grading["batch"])
        self._open_record()

    def _open_record(self) -> None:
        """The model's record: kept up to its resume point, or a new one with the pre-training audit."""
        from harness.backends.transformers_backend import parameter_summary

        ctx, suite, spec, run, record, point = self.ctx, self.suite, self.spec, self.run, self.record, self.point
        if record is not None and record["epochs"]:
            dropped = resuming.keep_epochs_up_to(record, point)
            if self.procs.is_main:
                resuming.remove_other_states(run, spec.name, point.path if point else None)
            self.log(f"{spec.name}: resuming after epoch {point.epoch if point else 0}"
                     + (f" (epochs {dropped} are graded again)" if dropped else ""))
            return
        if record is not None:        # started, but nothing graded: start it again
            ctx.results["models"].remove(record)
        record = self.record = model_record(spec.name, spec.path, spec.adapter, suite.train.method,
                                            parameter_summary(self.model), resume_state=None)
        ctx.results["models"].append(record)
        record["audit"] = pretraining_audit(suite, ctx.tasks, ctx.train_rows, self.tokenizer, self.tokenized)
        ctx.save()
        self.log(f"pre-training audit: {record['audit']['verdict']['status']}: "
                 f"{record['audit']['verdict']['summary']}")
        if record["audit"]["verdict"]["status"] == "fail" and suite.diagnostics.audit.fail_on_error:
            raise AuditFailed(f"pre-training audit failed: {record['audit']['verdict']['summary']} "
                              f"(set diagnostics.audit.fail_on_error: false to train anyway)")

    # ------------------------------------------------------------------ train
    def train(self) -> Optional[dict]:
        """Grade epoch 0, then train with grading at each epoch end (continuing after the resume
        point); returns the memory measured while training (None when there was nothing to train).
        Out of GPU memory: a TrainingOutOfMemory naming the graded epochs and the preflight's remedy."""
        try:
            return self._train()
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            graded = [x["epoch"] for x in self.record["epochs"]]
            raise TrainingOutOfMemory(
                f"training {self.spec.name} ran out of GPU memory after epoch {graded[-1] if graded else 0} "
                f"(graded epochs {graded} are kept in {self.run.root}); the preflight's remedy: "
                f"{training_remedy(self.suite, self.spec, self.ctx.gpu_memory, shared=self.memory_plan)}") from None

    def _train(self) -> Optional[dict]:
        from runners import trl_sft

        suite, record, procs = self.suite, self.record, self.procs
        self._start_grading()
        es = suite.train.early_stopping
        if procs.is_main:
            if not record["epochs"]:
                self.grade(0, 0)
                self._state_power()
            if self.vllm:
                self.vllm.pause_for_training(suite.train.method)
            record["best"] = best_epoch(record, self.best_key)
            if self.stopper:   # a resumed run replays the epochs it keeps
                for er in record["epochs"]:
                    self.stopper.update(er["epoch"], *score_of(er, es.metric))
        elif self.sharded and not record["epochs"]:
            follow_grading(self.backend, self.tasks)
        procs.barrier()   # the other ranks wait for rank 0's grading (here and at every epoch end)
        if record.get("early_stopped") or record.get("stopped"):
            return None   # it had stopped early: training was over before the interruption

        prior = record.get("train") or {}
        self.train_record = trl_sft.TrainRecord(log=list(prior.get("log") or []),
                                                seconds=float(prior.get("seconds") or 0.0))
        measure = memory.MemoryCallback()
        result = trl_sft.train(self.model, self.tokenizer, self.tokenized, suite.train,
                               resuming.trainer_dir(self.run, self.spec.name), self.on_epoch_end,
                               on_log=self.on_log, extra_callbacks=(measure,), on_state_saved=self.on_state_saved,
                               resume_from=self.point.path if self.point else None, record=self.train_record,
                               progress=self.bars,
                               reporting=self.ctx.trainer_reporting() if self.ctx.trainer_reporting else None)
        record["train"] = result.as_dict()
        return measure.measured

    def _significantly_better(self, epoch: int, best: int) -> bool:
        """The tie-set rule: is `epoch` significantly better than `best` on the early-stopping metric?"""
        task, name = self.suite.train.early_stopping.metric.split("/", 1)
        by_epoch = {e["epoch"]: e for e in self.record["epochs"]}
        confidence = self.suite.diagnostics.forgetting.confidence
        test = diagnose.ItemStats(self.run, self.suite).paired(
            task, name, by_epoch[best]["tasks"][task], by_epoch[epoch]["tasks"][task], confidence)
        return test is not None and test["p_value"] is not None and test["p_value"] < 1 - confidence

    def _state_power(self) -> None:
        """What each task's test set can see, said before training changes anything (docs/diagnostics.md);
        results.json keeps it in diagnostics.power."""
        section = diagnose.power_section(self.record, diagnose.ItemStats(self.run, self.suite), self.suite)
        for line in diagnose.power_lines(section):
            self.log(line)

    def _start_grading(self) -> None:
        """The backend grading every epoch of this model (several processes: who grades what), the
        metric that names the best epoch, and the early stopper."""
        from harness.backends.transformers_backend import TransformersBackend
        from harness.sharding import WEIGHTS_SHARDED, strategy_of

        suite, spec, procs, model, tokenizer = self.suite, self.spec, self.procs, self.model, self.tokenizer
        dist = suite.train.distributed
        # ZeRO-3 / FSDP full_shard: rank 0's model object holds only its shard; grade a gathered checkpoint
        self.gathered = procs.distributed and dist is not None and \
            strategy_of(dist.deepspeed, dist.fsdp)[0] in WEIGHTS_SHARDED
        # grading: sharded: every rank answers 1/N of the items (full weights on every rank only)
        sharded = self.sharded = procs.distributed and dist is not None and dist.grading == "sharded" \
            and not self.gathered
        vllm = _vllm_grader(suite, spec, model) if backend_class(suite.grading.backend).sleeps_during_training \
            and procs.is_main else None
        backend = vllm or (TransformersBackend(model, tokenizer) if procs.is_main or sharded else None)
        if sharded and vllm is None:
            backend = ShardedBackend(backend, procs)
        self.vllm, self.backend = vllm, backend
        self.best_key = default_best_metric(suite, self.tasks)
        es = suite.train.early_stopping
        self.stopper = EarlyStopper(patience=es.patience, min_delta=es.min_delta,
                                    significantly_better=self._significantly_better
                                    if es.rule == "tie_set" else None) if es else None

    def grade(self, epoch: int, step: int, saved: Optional[Path] = None) -> dict:
        """Grade the model as `epoch` (`saved`: gathered weights, loaded as `harness grade` would),
        record the epoch and write results.json."""
        from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer

        suite, record = self.suite, self.record
        t0 = time.perf_counter()
        by = self.backend
        if saved is not None:   # the gathered weights, as `harness grade` would load them
            adapter = (saved / "adapter_config.json").is_file()
            by = TransformersBackend(*load_model_and_tokenizer(self.path if adapter else str(saved),
                                                               str(saved) if adapter else None))
        # no autograd, the training's autocast, freed before training resumes; its own peak measured
        # (vLLM's memory is its engine's, not this process's tensors: not measured here)
        device = getattr(by, "device", _device())
        with memory.grading_phase(device, suite.train.precision,
                                  memory.measured_epoch(device, epoch, self.ctx.measure_memory)
                                  and not self.vllm) as probe:
            er = grade_epoch(probe.wrap(by), self.tasks, suite.bootstrap, self.run, self.spec.name, epoch, step,
                             bars=self.bars)
            if self.drift is not None and self.procs.is_main:   # teacher-forced, against epoch 0's capture
                er["drift"] = self.drift.measure(by.model if saved is not None else self.model, epoch)
        er["grading_memory"] = probe.record(self.grading)
        record["epochs"].append(er)
        record["best"] = best_epoch(record, self.best_key)
        self.ctx.save()
        for hook in self.ctx.epoch_hooks:
            hook(self.spec.name, er)
        scores = ", ".join(f"{t}: " + " ".join(f"{m} {v['score']:.2f}" for m, v in r["metrics"].items()
                                                if v.get("score") is not None)
                           for t, r in er["tasks"].items())
        self.log(f"epoch {epoch} graded in {time.perf_counter() - t0:.1f}s: {scores}")
        return er

    # ------------------------------------------------------------------ the runner's hooks
    def on_epoch_end(self, epoch: int, step: int, trained_model, save_model=None) -> bool:
        """Save the epoch's weights when they are needed, grade them on rank 0, and tell every
        rank alike whether to stop early."""
        suite, run, procs = self.suite, self.run, self.procs
        ckpt = None
        if suite.train.save_checkpoints or self.gathered or self.vllm:   # vLLM reads the epoch from its checkpoint
            ckpt = run.checkpoint_path(self.spec.name, epoch) if suite.train.save_checkpoints or self.vllm \
                else run.root / ".gathered" / f"epoch-{epoch}"
            if procs.distributed:
                save_model(ckpt)          # every rank: DeepSpeed/FSDP gather the shards; rank 0 writes
            else:
                trained_model.save_pretrained(ckpt)
            if procs.is_main:
                self.tokenizer.save_pretrained(ckpt)
        stop = False
        if procs.is_main:
            stop = self._grade_epoch_end(epoch, step, ckpt)
        elif self.sharded:
            follow_grading(self.backend, self.tasks)
        procs.barrier()
        return procs.broadcast(stop)      # every rank stops early together

    def _grade_epoch_end(self, epoch: int, step: int, ckpt: Optional[Path]) -> bool:
        """Rank 0 at an epoch end: grade, the epoch's training loss, its checkpoint kept or not,
        results.json written; True when early stopping says to stop."""
        suite, record, vllm = self.suite, self.record, self.vllm
        if vllm:
            vllm.grade_checkpoint(str(ckpt), suite.train.method)
        er = self.grade(epoch, step, ckpt if self.gathered and not vllm else None)
        if vllm:
            vllm.pause_for_training(suite.train.method)
        steps = [r["loss"] for r in self.train_record.log if epoch - 1 < r["epoch"] <= epoch + 1e-9]
        er["train_loss"] = sum(steps) / len(steps) if steps else None
        if suite.train.save_checkpoints:
            er["checkpoint"] = self.run.rel(ckpt)
            record["best"] = best_epoch(record, self.best_key)
            rotate_checkpoints(record, suite.train.keep_checkpoints, self.run)
        elif ckpt is not None:
            shutil.rmtree(ckpt, ignore_errors=True)
        self.ctx.save()
        for callback in self.ctx.epoch_callbacks:
            reason = callback(record, er)
            if reason:
                self.log(f"stopped after epoch {epoch}: {reason}")
                record["stopped"] = reason
                self.ctx.save()
                return True
        es = suite.train.early_stopping
        if self.stopper and self.stopper.update(epoch, *score_of(er, es.metric)):
            how = "significantly " if es.rule == "tie_set" else ""
            self.log(f"early stopping after epoch {epoch}: {es.metric} has not improved {how}for {es.patience} epochs "
                     f"(best epoch {self.stopper.best_epoch})")
            record["early_stopped"] = True
            return True
        return False

    def on_state_saved(self, epoch: int, step: int, path: Path) -> None:
        # recorded first, then the older state deleted: a kill in between leaves one usable state
        self.record["resume_state"] = {"epoch": epoch, "step": step, "path": self.run.rel(path)}
        self.record["train"] = self.train_record.as_dict()
        self.ctx.save()
        if self.procs.is_main:
            resuming.remove_other_states(self.run, self.spec.name, path)

    def on_log(self, row: dict) -> None:   # the runner has appended the row to the train record's log
        if self.procs.is_main:
            write_atomic(self.run.root / "train_log.jsonl",
                         "".join(json.dumps(r) + "\n" for r in self.train_record.log))

    # ------------------------------------------------------------------ finish, cleanup
    def finish(self, measured: Optional[dict]) -> None:
        """The model has trained: the memory record (the estimate next to `measured`, what `train`
        returned), diagnostics, and its Trainer state deleted (nothing left to resume)."""
        suite, spec, run, record = self.suite, self.spec, self.run, self.record
        if self.procs.is_main:
            resuming.remove_other_states(run, spec.name, None)   # finished: the Trainer state is not needed
            record["resume_state"] = None
            record["memory"] = memory.memory_record(suite, spec, self.path, measured, self.tokenizer,
                                                    shared=self.memory_plan)
            record["memory"]["grading"] = memory.grading_record(
                self.grading, [e.get("grading_memory") for e in record["epochs"]])
            diagnose.diagnose_model(record, run, suite)
        self.ctx.save()
        _log_best(record, self.log)

    def cleanup(self) -> None:
        """Let go of the model and its grading backends (a vLLM engine too), finished or not: the
        next model loads without them."""
        self.model = self.backend = self.vllm = None


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _vllm_grader(suite: Suite, spec: ModelSpec, model):
    """The one engine (vLLM) that grades every epoch of this model, started on the weights the
    trainer loaded (as TRL's colocated mode does, from `model.name_or_path`)."""
    engine = backend_class(suite.grading.backend)
    return engine.for_training(spec, model.name_or_path, suite.train.method, suite.train.lora.r,
                               suite.grading.gpu_memory_utilization)


def _log_best(record: dict, log: Log) -> None:
    """The verdicts themselves are printed by the CLI's summary; this names the checkpoint to keep."""
    best = record.get("best")
    if best:
        where = f", checkpoint {best['checkpoint']}" if best.get("checkpoint") else ""
        log(f"best epoch for {best['metric']}: {best['epoch']} ({best['score']:.2f}{where})")
