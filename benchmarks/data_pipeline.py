"""`harness data build` on a 1,000,000-row, three-source recipe, beside plain pandas doing the same steps.

Sources (written to a temp dir first, not timed): 500k chat `messages` JSONL, 300k Alpaca
JSONL, 200k prompt/completion Parquet, with planted duplicates — exact copies within a source,
copies across sources, and copies that differ only in whitespace or Unicode form — whose
expected count is known. Both pipelines: read, normalise (NFC, trim), exact de-duplication
within and across sources, interleave by weight, split (validation floor), write JSONL and
Parquet. Near-duplicate detection is off in both (plain pandas has none; MinHash cost is
measured separately on --near-rows rows). Each runs in its own process; wall time and peak
RSS (ru_maxrss of the child) are printed with their ratio.

    ./run python benchmarks/data_pipeline.py [--rows 1000000] [--near-rows 20000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

WORDS = ("river house green small quickly letter city morning open table bird window garden "
         "teacher reads writes under over bright cold warm music paper light stone road").split()

PANDAS_SCRIPT = r'''
import hashlib, json, sys, unicodedata
import numpy as np, pandas as pd
d, out = sys.argv[1], sys.argv[2]
def norm(t): return unicodedata.normalize("NFC", t).strip()
def key(ms): return hashlib.blake2b("\x1e".join(m["role"] + "\x1f" + " ".join(unicodedata.normalize("NFKC", m["content"]).casefold().split()) for m in ms).encode(), digest_size=16).hexdigest()
chat = pd.read_json(f"{d}/chat.jsonl", lines=True)
chat["messages"] = chat["messages"].map(lambda ms: [{"role": m["role"], "content": norm(m["content"])} for m in ms])
alp = pd.read_json(f"{d}/alpaca.jsonl", lines=True)
alp["messages"] = [[{"role": "user", "content": norm(i + ("\n\n" + x if x.strip() else ""))},
                    {"role": "assistant", "content": norm(o)}] for i, x, o in zip(alp.instruction, alp.input, alp.output)]
pc = pd.read_parquet(f"{d}/pc.parquet")
pc["messages"] = [[{"role": "user", "content": norm(p)}, {"role": "assistant", "content": norm(c)}]
                  for p, c in zip(pc.prompt, pc.completion)]
frames = []
for name, df in (("chat", chat), ("alpaca", alp), ("pc", pc)):
    df = df[["messages"]].copy(); df["source"] = name; df["key"] = df.messages.map(key)
    frames.append(df.drop_duplicates("key"))
allr = pd.concat(frames, ignore_index=True).drop_duplicates("key")
rng = np.random.default_rng(0)
w = {"chat": 0.5, "alpaca": 0.3, "pc": 0.2}
n = min(int((allr.source == s).sum() / w[s]) for s in w)
mixed = pd.concat([allr[allr.source == s].sample(n=int(w[s] * n), random_state=0) for s in w]).sample(frac=1, random_state=0)
val = mixed.iloc[: max(100, int(0.05 * len(mixed)))]; train = mixed.iloc[len(val):]
for part, df in (("train", train), ("validation", val)):
    df[["source", "messages"]].to_json(f"{out}/{part}.jsonl", orient="records", lines=True, force_ascii=False)
    df[["source", "messages"]].to_parquet(f"{out}/{part}.parquet")
print(len(allr), len(train), len(val))
'''


def sentence(i: int, k: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 13 + (i >> j)) % len(WORDS)] for j in range(k)) + f" {i}"


def write_sources(d: Path, rows: int) -> int:
    """Three sources; returns the number of planted exact duplicates."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n_chat, n_alp = rows // 2, rows * 3 // 10
    n_pc = rows - n_chat - n_alp
    planted = 0
    def chat_row(j: int) -> tuple[str, str]:
        q = sentence(j, 12) + (" café" if j % 10 == 0 else "")
        return q, sentence(j + 1, 14)

    with open(d / "chat.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_chat):
            q, a = chat_row(i)
            if i % 50 == 49:          # exact copy of an earlier row
                (q, a), planted = chat_row(i - 17), planted + 1
            elif i % 100 == 98:       # whitespace variant of an earlier row
                q, a = chat_row(i - 5)
                q, planted = "  " + q.replace(" ", "  ") + "\n", planted + 1
            elif i % 100 == 97:       # Unicode variant (NFD) of an earlier row ending in "café"
                q, a = chat_row(i - 7)
                q, planted = unicodedata.normalize("NFD", q), planted + 1
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                               ensure_ascii=False) + "\n")
    with open(d / "alpaca.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_alp):
            if i % 40 == 39:          # a plain chat row, across sources
                j = (i * 3) % n_chat
                while j % 10 == 0 or j % 50 == 49 or j % 100 in (97, 98):
                    j += 1
                planted += 1
                f.write(json.dumps({"instruction": sentence(j, 12), "input": "", "output": sentence(j + 1, 14)}) + "\n")
                continue
            f.write(json.dumps({"instruction": sentence(10**7 + i, 10), "input": sentence(i, 5),
                                "output": sentence(2 * 10**7 + i, 12)}) + "\n")
    prompts = [sentence(3 * 10**7 + i, 11) for i in range(n_pc)]
    comps = [sentence(4 * 10**7 + i, 13) for i in range(n_pc)]
    for i in range(29, n_pc, 30):     # exact copies within the table
        prompts[i], comps[i], planted = prompts[i - 3], comps[i - 3], planted + 1
    pq.write_table(pa.table({"prompt": prompts, "completion": comps}), d / "pc.parquet")
    (d / "recipe.yaml").write_text(
        "name: bench\nseed: 0\nsources:\n"
        "  - {name: chat, path: chat.jsonl, weight: 0.5}\n"
        "  - {name: alpaca, path: alpaca.jsonl, weight: 0.3}\n"
        "  - {name: pc, path: pc.parquet, weight: 0.2}\n"
        "near_duplicates: {action: off}\nmix: {strategy: interleave}\n")
    return planted


def run_child(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS GiB, stdout) of one child process. CPU time is printed
    too because on a shared machine wall time mostly measures the neighbours."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(cmd[:6])} failed: {out.stderr.strip()[-2000:]}")
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu0
    if peak <= before:
        print("note: this child's peak RSS is not above an earlier child's; the number is an upper bound")
    return wall, cpu, peak / 2**20, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--near-rows", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        planted = write_sources(d, args.rows)
        (d / "pandas").mkdir()
        # The lighter child first: ru_maxrss of children is a running maximum.
        t_h, cpu_h, rss_h, _ = run_child([sys.executable, "-m", "harness.cli", "-q", "data", "build",
                                   str(d / "recipe.yaml"), "--out", str(d / "harness")])
        manifest = json.loads((d / "harness" / "manifest.json").read_text())
        t_p, cpu_p, rss_p, out_p = run_child([sys.executable, "-c", PANDAS_SCRIPT, str(d), str(d / "pandas")])
        found = manifest["stages"]["loaded"] - manifest["stages"]["after_exact_dedup"]
        print(f"rows {args.rows:,}; planted exact duplicates {planted:,}; harness removed {found:,}; "
              f"pandas kept {out_p.split()[0]} of {manifest['stages']['loaded']:,}")
        print(f"realised ratios {json.dumps({k: round(v, 4) for k, v in manifest['mix']['realised'].items()})}")
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"harness data build: {t_h:6.1f} s wall  {cpu_h:6.1f} s CPU  peak RSS {rss_h:.2f} GiB")
        print(f"plain pandas:       {t_p:6.1f} s wall  {cpu_p:6.1f} s CPU  peak RSS {rss_p:.2f} GiB")
        print(f"ratio harness/pandas: wall {t_h / t_p:.2f}, CPU {cpu_h / cpu_p:.2f}, memory {rss_h / rss_p:.2f}")
        near_ms = _near_cost(d / "harness" / "train.jsonl", args.near_rows)
        print(f"near-duplicate detection (MinHash, 128 perms): {near_ms:.2f} ms/row on {args.near_rows:,} rows")


def _near_cost(train: Path, n: int) -> float:
    from harness.dataprep.dedup import near_duplicates

    with open(train, encoding="utf-8") as f:
        lines = [line for _, line in zip(range(n), f)]
    t0 = time.perf_counter()
    near_duplicates(lines, 0.8, 128)
    return (time.perf_counter() - t0) / max(1, len(lines)) * 1000


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
