"""Hyperparameter sweeps with Optuna: many ordinary ``cnnlab train`` runs, one study.

Each trial is a complete run folder under ``SWEEP/trials/``, reported to Optuna after every
epoch so that a pruner can stop hopeless trials; TPE draws the values; the objective is the
validation metric ``--monitor``, never a test-set figure. The study lives in a database
(``SWEEP/sweep.db`` by default, PostgreSQL to share it between machines), so an interrupted
sweep continues where it stopped.

:mod:`.space` parses the search space, :mod:`.study` holds the settings and opens the study,
:mod:`.worker` runs trials, :mod:`.run` puts it together (:func:`run_sweep`), and
:mod:`.results` and :mod:`.report` write the table, the plots and ``sweep.html``. Optuna is
imported only when a sweep runs: ``pip install 'cnnlab[sweep]'``.
"""

from __future__ import annotations

from cnnlab.sweep.results import SweepResult
from cnnlab.sweep.run import run_sweep
from cnnlab.sweep.space import Param, load_space, parse_search

__all__ = ["Param", "SweepResult", "load_space", "parse_search", "run_sweep"]
