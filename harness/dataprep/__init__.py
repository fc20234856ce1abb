"""`harness data`: messy sources → one clean, de-duplicated, mixed and split training set.

    recipe.py     recipe YAML → typed Recipe (file:line errors), recipe hash
    sources.py    readers (JSONL, CSV, Parquet, datasets dirs, the hub, parallel text) and
                  row formats (messages, prompt/completion, Alpaca, ShareGPT) → messages
    normalise.py  NFC, trim, empty turns dropped; de-duplication keys
    rows.py       the corpus as Arrow strings + numpy keys between stages
    dedup.py      exact (keys) and near (MinHash LSH) duplicates
    mix.py        concat / interleave / resample by weight
    split.py      train/validation with a floor, grouped by prompt, optionally stratified
    export.py     JSONL + Parquet
    manifest.py   manifest.json and the record a run stores
    build.py      the stages top to bottom; build_or_reuse by recipe hash
    check.py      `harness data check`: findings on a data file or a suite's data

Stage definitions: docs/data.md.
"""
