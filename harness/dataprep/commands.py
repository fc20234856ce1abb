"""The `harness data build` and `harness data check` commands: run, print, return the exit code."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from harness.builtin import resolve_model_path
from harness.data import load_rows
from harness.dataprep.build import build_dataset
from harness.dataprep.check import (CheckedRow, Finding, check_rows, exit_code, leakage_findings,
                                    length_finding, read_checked, read_checked_source)
from harness.dataprep.normalise import normalise_messages
from harness.dataprep.recipe import load_recipe
from harness.errors import DataError
from harness.suite import load_suite
from harness.tables import print_table

Log = Callable[[str], None]
_COLOUR = {"error": "red", "warning": "yellow", "info": "green"}


def data_build(recipe_path: str, out: str, console, log: Log, table: bool = True) -> int:
    """`table`: the per-source table before the final line (off under -q)."""
    from rich.table import Table

    manifest = build_dataset(load_recipe(recipe_path), Path(out), log=log)
    rows = Table(title=f"{manifest['recipe']}: rows per source and stage")
    cols = ("read", "invalid", "empty_rows", "duplicates_within", "duplicates_across", "near_duplicates",
            "kept", "mixed", "train", "validation")
    rows.add_column("source")
    for c in ("read", "invalid", "empty", "dup", "dup across", "near", "kept", "mixed", "train", "val", "ratio"):
        rows.add_column(c, justify="right")
    for name, rec in manifest["sources"].items():
        rows.add_row(name, *(f"{rec[c]:,}" for c in cols), f"{manifest['mix']['realised'][name]:.3f}")
    if table:
        print_table(console, rows)
    console.print(f"recipe hash {manifest['recipe_hash'][:16]}; wrote {', '.join(manifest['outputs'])} "
                  f"and manifest.json to {out}")
    return 0


def data_check(target: str, tokenizer: Optional[str], max_seq_len: Optional[int], json_path: Optional[Path],
               console, log: Log) -> int:
    from rich.table import Table


    path = Path(target)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix in (".yaml", ".yml") and _is_recipe(path):
        findings = _check_recipe(path, tokenizer, max_seq_len)
    elif path.suffix in (".yaml", ".yml"):
        findings = _check_suite(path, tokenizer, max_seq_len, log)
    else:
        rows, errors, empty = read_checked(path)
        tok = _load_tokenizer(tokenizer) if tokenizer else None
        findings = check_rows(rows, errors, empty, markers=_special_tokens(tok))
        if tok is not None:
            findings.append(length_finding(rows, tok, max_seq_len or 512, 0.05))
    table = Table(title=f"data check: {target}")
    for col in ("check", "level", "finding", "first examples"):
        table.add_column(col)
    for f in findings:
        table.add_row(f.check, f"[{_COLOUR[f.level]}]{f.level}[/]", f.message, "\n".join(map(str, f.examples[:3])))
    print_table(console, table)
    if json_path:
        json_path.write_text(json.dumps([f.as_dict() for f in findings], indent=1, ensure_ascii=False) + "\n")
    return exit_code(findings)


def _is_recipe(path: Path) -> bool:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return False   # the suite loader reports the YAML error with its line
    return isinstance(raw, dict) and "sources" in raw and "tasks" not in raw


def _check_recipe(path: Path, tokenizer: Optional[str], max_seq_len: Optional[int]) -> list[Finding]:
    """A recipe's sources, as they are (before `data build` cleans them)."""
    recipe = load_recipe(path)
    rows, errors, empty = [], [], 0
    for spec in recipe.sources:
        r, e, n = read_checked_source(spec, recipe)
        rows, errors, empty = rows + r, errors + e, empty + n
    tok = _load_tokenizer(tokenizer) if tokenizer else None
    findings = check_rows(rows, errors, empty, markers=_special_tokens(tok),
                          near_threshold=recipe.near_duplicates.threshold)
    if tok is not None:
        findings.append(length_finding(rows, tok, max_seq_len or 512, 0.05))
    return findings


def _check_suite(path: Path, tokenizer: Optional[str], max_seq_len: Optional[int], log: Log) -> list[Finding]:
    suite = load_suite(path)
    train_rows, errors, empty = [], [], 0
    for spec in suite.train.data if suite.train else []:
        rows, errs, e = _spec_rows(spec, suite)
        train_rows += rows
        errors += errs
        empty += e
    tok = _load_tokenizer(tokenizer or suite.models[0].path, log)
    findings = check_rows(train_rows, errors, empty, markers=_special_tokens(tok),
                          near_threshold=suite.diagnostics.audit.near_duplicate_threshold)
    tasks = {}
    for t in suite.tasks:
        rows, errs, _ = _spec_rows(t.data, suite)
        if errs:
            findings.append(Finding(f"schema.{t.name}", "error", f"{len(errs)} rows of task {t.name} are not valid",
                                    len(errs), errs))
        tasks[t.name] = rows
    if train_rows:
        findings += leakage_findings(train_rows, tasks, suite.diagnostics.audit.near_duplicate_threshold)
    if tok is not None and train_rows:
        findings.append(length_finding(train_rows, tok, max_seq_len or (suite.train.max_seq_len if suite.train else 512),
                                       suite.diagnostics.audit.max_truncated_share))
    elif train_rows:
        findings.append(Finding("lengths", "info", "token lengths not checked: no tokenizer could be loaded"))
    return findings


def _spec_rows(spec, suite) -> tuple[list[CheckedRow], list[str], int]:
    """A suite data source's rows; JSONL files are read row by row so every bad line is reported."""
    if spec.path is not None and not spec.system and spec.offset == 0 and spec.limit is None:
        return read_checked(suite.resolve(spec.path))
    rows = []
    for ex in load_rows(spec, suite):
        rows.append(CheckedRow(f"{ex.origin}#{ex.id}", normalise_messages(ex.messages).messages))
    return rows, [], 0


def _load_tokenizer(name: Optional[str], log: Log = lambda m: None):
    """A tokenizer for token lengths, or None when it cannot be had offline (then lengths are skipped)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(resolve_model_path(name, log=log)))
    except Exception as e:  # a hub id offline, a path without a tokenizer: report, do not fail the check
        log(f"tokenizer {name} not loaded ({str(e).splitlines()[0][:120]}): token lengths not checked")
        return None


def _special_tokens(tok) -> list[str]:
    if tok is None:
        return []
    return [t for t in getattr(tok, "all_special_tokens", []) or [] if len(t) >= 3]
