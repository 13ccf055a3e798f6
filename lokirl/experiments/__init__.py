"""Experiments: suites as data, one runner, statistics and reports as pure functions.

- :mod:`lokirl.experiments.suites`: suites (cases x seeds) validated from YAML,
  frozen suites checked against their stored hash;
- :mod:`lokirl.experiments.runner`: every controller on every (case, seed) with common
  random numbers and deterministic solves, as a per-episode table;
- :mod:`lokirl.experiments.stats`: paired differences, IQM and probability of
  improvement with a hierarchical (cases, then seeds) bootstrap;
- :mod:`lokirl.experiments.report`: per-case tables, paired comparisons, the Pareto
  front (effective accuracy vs frame violations) and tuning grids, markdown and JSON;
- :mod:`lokirl.experiments.tuning` and :mod:`lokirl.experiments.tuned`: budgeted
  tuning of the baselines on ``validation`` and the committed choices
  (``periodic-tuned``, ``trigger-tuned``);
  :mod:`lokirl.experiments.hindsight_tuning`: the hindsight bound's knobs;
- :mod:`lokirl.experiments.compare`: ``lokirl evaluate``'s comparison on traces;
- :mod:`lokirl.experiments.reproduction` and
  :mod:`lokirl.experiments.reproduction_report`: ``lokirl reproduce`` (the Loki
  paper's experiments); :mod:`lokirl.experiments.fidelity`: against the authors'
  simulator;
- :mod:`lokirl.experiments.simvslive`: ``lokirl simvslive`` (simulator vs live runtime);
- :mod:`lokirl.experiments.capacity`: effective capacity per accuracy level.

The commands over them (``bench``, ``tune``, ``evaluate``, ``reproduce``,
``simvslive``) only parse, check and print.
"""
