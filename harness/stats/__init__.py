"""Statistics behind every verdict: resampling, rate intervals, paired tests, power, families.

One concern a module, none of them knowing about runs or suites:
  resampling  bootstrap index sets over items or clusters, standard errors, percentile intervals
  rates       0/1 per-item metrics: Wilson score interval, exact McNemar test
  paired      one paired comparison (new vs old on the same items), the right test per metric
  power       minimum detectable effect and the items needed to see a threshold
  family      Holm's step-down adjustment: family-wise error control for a run's many tests
Definitions and the reasons for each choice: docs/diagnostics.md.
"""
