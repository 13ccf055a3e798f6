"""Experiments: suites as data, one runner, statistics and reports as pure functions.

- :mod:`lokirl.experiments.suites`: suites (cases x seeds) validated from YAML,
  frozen suites checked against their stored hash;
- :mod:`lokirl.experiments.runner`: every controller on every (case, seed) with common
  random numbers and deterministic solves, as a per-episode table;
- :mod:`lokirl.experiments.stats`: paired differences, IQM and probability of
  improvement with a hierarchical (cases, then seeds) bootstrap;
- :mod:`lokirl.experiments.report`: per-case tables, paired comparisons, the Pareto
  front (effective accuracy vs frame violations), markdown and JSON.

``lokirl bench`` (:mod:`lokirl.commands.bench`) is the command over them.
"""
