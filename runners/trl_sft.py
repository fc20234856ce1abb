"""TRL SFT runner: full fine-tuning, LoRA or QLoRA, graded at the end of every epoch.

Read it top to bottom, like a recipe:
  1. load    model and tokenizer (Unsloth when the suite asks and a GPU is there; PEFT for LoRA)
  2. data    conversations → token ids and assistant-only labels (harness.chat), as a Dataset
  3. config  the suite's hyper-parameters → SFTConfig
  4. loop    SFTTrainer.train(); at each epoch end: call the grading function the caller
             gave us (it saves the weights), stop early if it says so, then save the
             Trainer's state (optimizer, scheduler, RNG) for `--resume`
Reusable pieces (tokenization, grading, memory probes) live in the harness package.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from harness.chat import TokenizedExample, tokenize_conversation
from harness.errors import UserError
from harness.messages import Example
from harness.progress import OFF, Progress
from harness.suite import ModelSpec, TrainSpec

OPTIMIZERS = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "sgd": "sgd", "adafactor": "adafactor"}

# on_epoch_end(epoch, global_step, model, save_model) -> True to stop training. save_model(dir)
# is the trainer's own save: under DeepSpeed/FSDP every rank must call it (it gathers the shards)
EpochHook = Callable[[int, int, torch.nn.Module, Callable[[Path], None]], bool]
# on_state_saved(epoch, global_step, checkpoint_dir): the Trainer saved what resuming needs
StateHook = Callable[[int, int, Path], None]


class RunnerError(UserError):
    """A training setup problem with a fix the user can make (one line)."""


# ------------------------------------------------------------------ 1. load
def load(spec: ModelSpec, path: str, train: TrainSpec):
    """Model and tokenizer ready for training with the suite's method."""
    if train.backend == "unsloth":
        return _load_unsloth(path, train)
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path)
    kwargs: dict = {"dtype": torch.float32}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    if train.method == "qlora":
        kwargs.update(_qlora_kwargs())
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if train.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if train.method == "qlora":
            model = prepare_model_for_kbit_training(model, train.gradient_checkpointing)
        model = get_peft_model(model, LoraConfig(
            r=train.lora.r, lora_alpha=train.lora.alpha, lora_dropout=train.lora.dropout,
            target_modules=train.lora.target_modules, task_type="CAUSAL_LM",
        ))
    return model, tokenizer


def load_tokenizer(path: str):
    """The tokenizer as training uses it: a missing pad token becomes the EOS token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _qlora_kwargs() -> dict:
    if not torch.cuda.is_available():
        raise RunnerError("method: qlora needs a CUDA GPU (bitsandbytes 4-bit); use method: lora on CPU")
    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RunnerError("method: qlora needs bitsandbytes: pip install 'harness[qlora]'") from None
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16), "dtype": torch.bfloat16}


def _load_unsloth(path: str, train: TrainSpec):
    if not torch.cuda.is_available():
        raise RunnerError("backend: unsloth needs a CUDA GPU; use backend: trl on this machine")
    try:
        from unsloth import FastLanguageModel
    except ImportError:
        raise RunnerError("backend: unsloth is not installed: pip install 'harness[unsloth]'") from None
    model, tokenizer = FastLanguageModel.from_pretrained(
        path, max_seq_length=train.max_seq_len, load_in_4bit=train.method == "qlora")
    if tokenizer.pad_token_id is None:   # the collator pads with it (as load_tokenizer does)
        tokenizer.pad_token = tokenizer.eos_token
    if train.method in ("lora", "qlora"):
        targets = (["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
                   if train.lora.target_modules == "all-linear" else train.lora.target_modules)
        model = FastLanguageModel.get_peft_model(
            model, r=train.lora.r, lora_alpha=train.lora.alpha, lora_dropout=train.lora.dropout,
            target_modules=targets, use_gradient_checkpointing=train.gradient_checkpointing)
    return model, tokenizer


# ------------------------------------------------------------------ 2. data
def tokenize_rows(tokenizer, rows: list[Example], train: TrainSpec) -> list[TokenizedExample]:
    return [tokenize_conversation(tokenizer, ex.messages, train.max_seq_len, train.assistant_only_loss)
            for ex in rows]


def to_dataset(tokenized: list[TokenizedExample]):
    from datasets import Dataset

    # Labels are built here, so TRL leaves them as they are (assistant-only, end-of-turn learned).
    return Dataset.from_list([{"input_ids": t.input_ids, "labels": t.labels} for t in tokenized])


def collator(tokenizer, train: TrainSpec):
    """The batch collator handed to SFTTrainer: pads ids with the pad token and labels with -100.

    The pre-training label audit builds its batches with this same object, so what it checks
    is what the trainer sees.
    """
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=train.packing)


def batches(tokenizer, tokenized: list[TokenizedExample], train: TrainSpec, limit: int = 4096):
    """The first `limit` training examples as the trainer's collated batches, in dataset order."""
    rows = to_dataset(tokenized[:limit])
    collate = collator(tokenizer, train)
    for i in range(0, len(rows), train.batch_size):
        yield collate([rows[j] for j in range(i, min(i + train.batch_size, len(rows)))])


# ------------------------------------------------------------------ 3. config
def sft_config(train: TrainSpec, output_dir: Path, reporting: Optional[dict] = None):
    """`reporting`: where the Trainer logs (harness.tracking: report_to names and SFTConfig
    arguments such as run_name); None: nowhere."""
    from trl import SFTConfig

    # transformers 5.x renamed gradient_checkpointing (the old name warns); accept either version
    checkpointing = ("activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__
                     else "gradient_checkpointing")
    use_cpu = not torch.cuda.is_available()
    if train.precision == "fp16" and use_cpu:
        raise RunnerError("precision: fp16 needs a GPU; use fp32 or bf16 on CPU")
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=train.epochs,
        learning_rate=train.lr,
        lr_scheduler_type=train.scheduler,
        warmup_steps=train.warmup_ratio,           # a float below 1 is a ratio of total steps
        weight_decay=train.weight_decay,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        max_length=train.max_seq_len,
        packing=train.packing,
        optim=OPTIMIZERS[train.optimizer],
        bf16=train.precision == "bf16",
        fp16=train.precision == "fp16",
        **{checkpointing: train.gradient_checkpointing},
        seed=train.seed,
        data_seed=train.seed,
        logging_steps=train.logging_steps,
        # the Trainer's own checkpoint (weights, optimizer, scheduler, RNG) at each epoch end is
        # what `--resume` continues from; the caller keeps only the newest (on_state_saved)
        save_strategy="epoch",
        save_total_limit=None,
        eval_strategy="no",                        # validation is the harness's grading
        report_to=list((reporting or {}).get("report_to") or []),
        **(reporting or {}).get("args", {}),
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **_distributed_args(train),
    )


def _distributed_args(train: TrainSpec) -> dict:
    """The suite's train.distributed, as TrainingArguments takes it (DeepSpeed/FSDP run the sharding)."""
    d = train.distributed
    if d is None:
        return {}
    args: dict = {}
    if d.deepspeed is not None:
        args["deepspeed"] = d.deepspeed
    if d.fsdp:
        args["fsdp"] = d.fsdp
        if d.fsdp_config:
            args["fsdp_config"] = d.fsdp_config
    return args


# ------------------------------------------------------------------ 4. loop
@dataclass
class TrainRecord:
    log: list[dict] = field(default_factory=list)
    steps_per_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False

    def as_dict(self) -> dict:
        return {"log": self.log, "steps_per_epoch": self.steps_per_epoch,
                "seconds": round(self.seconds, 2), "stopped_early": self.stopped_early}


def train(model, tokenizer, tokenized: list[TokenizedExample], train_spec: TrainSpec, work_dir: Path,
          on_epoch_end: EpochHook, on_log: Optional[Callable[[dict], None]] = None,
          extra_callbacks: tuple = (), on_state_saved: Optional[StateHook] = None,
          resume_from: Optional[Path] = None, record: Optional[TrainRecord] = None,
          progress: Progress = OFF, reporting: Optional[dict] = None) -> TrainRecord:
    """Train, grading at each epoch end (on_epoch_end) and then saving the Trainer's checkpoint
    in work_dir (on_state_saved). With resume_from (such a checkpoint), training continues after
    it with the optimizer, scheduler and RNG state it holds; `record` then carries the log so far.
    `progress` shows one bar per epoch (step, loss, steps/s, ETA). `reporting`: the experiment
    trackers the Trainer logs to (harness.tracking.session.TrackingSession.trainer_reporting).
    """
    from transformers import TrainerCallback
    from trl import SFTTrainer

    record = record or TrainRecord()
    record.steps_per_epoch = math.ceil(math.ceil(len(tokenized) / train_spec.batch_size) / train_spec.grad_accum)
    seconds_before = record.seconds
    t0 = time.perf_counter()

    class EpochGrading(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                row = {"step": state.global_step, "epoch": round(state.epoch or 0, 4),
                       "loss": logs["loss"], "lr": logs.get("learning_rate"),
                       "grad_norm": logs.get("grad_norm")}
                record.log.append(row)
                if on_log:
                    on_log(row)

        def on_epoch_end(self, args, state, control, model=None, **kw):
            if on_epoch_end(round(state.epoch), state.global_step, model,
                            lambda directory: trainer.save_model(str(directory))):
                record.stopped_early = True
                control.should_training_stop = True

        def on_save(self, args, state, control, **kw):   # after on_epoch_end: RNG as it was after grading
            record.seconds = seconds_before + time.perf_counter() - t0
            if on_state_saved:
                on_state_saved(round(state.epoch), state.global_step,
                               Path(args.output_dir) / f"checkpoint-{state.global_step}")

    class EpochProgress(TrainerCallback):
        """One bar per epoch, closed before the epoch is graded (it runs before EpochGrading).

        A step that logs is shown from on_log, which the trainer calls after on_step_end, so
        the bar's loss is that step's, not the previous log's.
        """

        bar = closing = None
        first_step = 0

        def on_epoch_begin(self, args, state, control, **kw):
            self.first_step = state.global_step
            self.closing = progress.bar(f"epoch {int(round(state.epoch or 0)) + 1}/{train_spec.epochs}",
                                        record.steps_per_epoch)
            self.bar = self.closing.__enter__()

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None and not control.should_log:
                self.bar.update(state.global_step - self.first_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.update(state.global_step - self.first_step, logs["loss"])

        def on_epoch_end(self, args, state, control, **kw):
            if self.closing is not None:
                self.bar.update(state.global_step - self.first_step)
                self.closing.__exit__(None, None, None)
                self.bar = self.closing = None

        on_train_end = on_epoch_end

    bars = EpochProgress()
    trainer = SFTTrainer(
        model=model, args=sft_config(train_spec, work_dir, reporting), train_dataset=to_dataset(tokenized),
        processing_class=tokenizer, data_collator=collator(tokenizer, train_spec),
        callbacks=[bars, EpochGrading(), *extra_callbacks,   # the bar closes before grading
                   *(reporting or {}).get("callbacks", [])],
    )
    # under several processes each rank takes batch_size rows a step: the epoch has fewer steps
    record.steps_per_epoch = math.ceil(math.ceil(len(tokenized) / (train_spec.batch_size * trainer.args.world_size))
                                       / train_spec.grad_accum)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the harness prints its own progress lines
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:   # a step that raised (out of memory, interrupted) leaves no live bar behind
        if bars.closing is not None:
            bars.closing.__exit__(None, None, None)
    record.seconds = seconds_before + time.perf_counter() - t0
    return record
