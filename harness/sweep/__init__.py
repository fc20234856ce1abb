"""`harness sweep`: experiments, not runs. One Optuna study over suite fields (docs/sweep.md).

    spec.py      the suite's `sweep:` block (pydantic; harness/suite.py imports it)
    space.py     the block checked against the loaded suite; a trial's suite from its overrides
    study.py     storage (SQLite by default, any RDB URL), sampler, pruner, the study itself
    runner.py    one worker: trials run as ordinary train-and-grade runs, pruned per graded epoch
    analysis.py  a finished sweep directory → trials ranked, the tie set, seed bands, importance
    command.py   the CLI command

This file imports nothing: the suite model loads spec.py on every command.
"""
