"""Built-in tiny base model, so the default suite runs offline on a CPU.

`builtin:tiny-translator` is a small Qwen3-style model with a BPE tokenizer trained
locally on the synthetic English/French corpus, pre-trained on translation in *both*
directions (French→English more than English→French, so the base is stronger in one
direction than the other, as real base models are).

Its weights and tokenizer ship with the package (`harness/builtin_models/NAME/`, with
`recipe.json` naming the recipe that made them), so every machine grades the same model:
training the same recipe on another CPU or another torch build gives slightly different
weights, and with them different BLEU. When the recipe in this file changes, the shipped
copy no longer matches; the model is then built on first use and cached under
$HARNESS_CACHE (default ~/.cache/harness) until someone refreshes the shipped copy with

    python -m harness.builtin            # rebuilds every built-in model into the package
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from harness.builtin_recipes import BUILTIN_PREFIX, RECIPES, TinyRecipe, cache_root, is_builtin
from harness.chat import IGNORE_INDEX, tokenize_conversation
from harness.messages import translation_messages
from harness.suite import DataSpec, SyntheticSource
from harness.synthetic import translation_rows
from harness.synthetic.translation import GENERATOR_VERSION

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


SHIPPED_ROOT = Path(__file__).resolve().parent / "builtin_models"
RECIPE_FILE = "recipe.json"


def recipe_id(name: str) -> str:
    """'g{generator version}-{hash of the recipe}': changes whenever the built model would."""
    if name not in RECIPES:
        raise ValueError(f"unknown built-in model {name!r}; available: {', '.join(RECIPES)}")
    digest = hashlib.sha1(repr(RECIPES[name]).encode()).hexdigest()[:8]
    return f"g{GENERATOR_VERSION}-{digest}"


def shipped_path(name: str) -> Path:
    return SHIPPED_ROOT / name


def shipped_recipe_id(name: str) -> str | None:
    """The recipe id written next to the shipped weights, or None when nothing is shipped."""
    try:
        return json.loads((shipped_path(name) / RECIPE_FILE).read_text(encoding="utf-8"))["recipe_id"]
    except (OSError, ValueError, KeyError):
        return None


def builtin_path(name: str) -> Path:
    """Where the model lives: the shipped copy when it matches the recipe, else the cache."""
    rid = recipe_id(name)
    if shipped_recipe_id(name) == rid and (shipped_path(name) / "config.json").exists():
        return shipped_path(name)
    return cache_root() / "builtin" / f"{name}-{rid}"


def resolve_model_path(path: str, log=print) -> str:
    """'builtin:NAME' → the shipped directory (or a cached build); anything else unchanged."""
    if not is_builtin(path):
        return path
    name = path[len(BUILTIN_PREFIX):]
    target = builtin_path(name)
    if not (target / "config.json").exists():
        log(f"building built-in model {name}: the shipped copy is from recipe "
            f"{shipped_recipe_id(name)}, the code's recipe is {recipe_id(name)} (cached in {target}; "
            "refresh the shipped copy with `python -m harness.builtin`)")
        build_tiny_translator(target, RECIPES[name], log=log)
    return str(target)


def ship_builtin(name: str, log=print) -> Path:
    """Rebuild NAME from its recipe into the package directory, with its recipe id."""
    target = shipped_path(name)
    with tempfile.TemporaryDirectory() as tmp:
        built = build_tiny_translator(Path(tmp) / name, RECIPES[name], log=log)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(built, target)
    write_recipe_file(target, name)
    return target


def write_recipe_file(target: Path, name: str) -> None:
    import torch
    import transformers

    record = {"name": name, "recipe_id": recipe_id(name), "recipe": asdict(RECIPES[name]),
              "built_with": {"torch": torch.__version__, "transformers": transformers.__version__}}
    (target / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _pretraining_conversations(recipe: TinyRecipe) -> list[list[dict]]:
    prompt = DataSpec.model_fields["prompt"].default
    rng = random.Random(recipe.seed)
    spec = SyntheticSource(kind="translation", direction="en-fr", split="train",
                           n=recipe.pretrain_pairs, seed=recipe.seed + 1000)
    convs = []
    for row in translation_rows(spec):
        en, fr = (m["content"] for m in row["messages"])
        src, tgt, direction = (en, fr, "en-fr") if rng.random() < recipe.share_en_fr else (fr, en, "fr-en")
        convs.append(translation_messages(prompt, src, tgt, direction))
    return convs


def build_tiny_translator(target: Path, recipe: TinyRecipe, log=print) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    t0 = time.time()
    torch.manual_seed(recipe.seed)
    convs = _pretraining_conversations(recipe)
    texts = [m["content"] for c in convs for m in c]
    tokenizer = train_tokenizer(texts, recipe.vocab_size)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.kv_heads,
        head_dim=recipe.hidden_size // recipe.heads, max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    model = Qwen3ForCausalLM(config)
    rows = [tokenize_conversation(tokenizer, c, recipe.max_positions) for c in convs]
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    warmup = max(1, recipe.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / recipe.pretrain_steps)))
    )
    rng = random.Random(recipe.seed)
    model.train()
    for step in range(recipe.pretrain_steps):
        batch = rng.sample(rows, recipe.batch_size)
        width = max(len(r.input_ids) for r in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), IGNORE_INDEX)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
            labels[i, : len(r.labels)] = torch.tensor(r.labels)
            attn[i, : len(r.input_ids)] = 1
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == recipe.pretrain_steps - 1:
            log(f"  pre-training step {step + 1}/{recipe.pretrain_steps}: loss {loss.item():.3f}")
    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process won the race; keep its copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"built {target.name} in {time.time() - t0:.0f}s ({sum(p.numel() for p in model.parameters()):,} parameters)")
    return target


if __name__ == "__main__":
    for model_name in RECIPES:
        print(f"shipped {ship_builtin(model_name)}")
