"""Drift probes: how far each epoch's next-token distribution has moved from the base model's.

No labels needed: teacher-forced scoring of a probe set (and of the suite's task prompts) at
every graded epoch, against the base model's distributions captured once at epoch 0.
  spec      the suite's `diagnostics.probe` and `diagnostics.drift` blocks (pydantic)
  probe     probe sources → tokenized items (text lines, messages, recipe, hub, built-in)
  scoring   the base's top-k log-probabilities + tail mass; per-item KL and NLL (torch)
  measure   one model's probe: captured at epoch 0, compared at every later epoch, on disk
The verdict (paired tests, Holm family, thresholds) is harness/diagnose/drift.py.
Definitions: docs/diagnostics.md ("Drift").
"""
