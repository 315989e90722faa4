"""Rollout evaluation (paper §5): tasks x episodes, resumable episode records, success rates
with confidence intervals.

The protocol (official ``evaluate.py``): an episode succeeds when the task's reward is > 0 within
its step limit; each task runs ``n_episodes`` times; the reported numbers are the per-task success
rate (Wilson 95 % interval) and, per category, the mean over all its tasks. Episodes whose every
game attempt crashed are recorded as ``infra_failed`` and excluded, as the official code does.

One concept per module:

* :mod:`~jvla.evaluation.records`: :class:`EpisodeRecord` and the append-only, resumable
  :class:`EpisodeLog` (``episodes.jsonl``);
* :mod:`~jvla.evaluation.executors`: :func:`evaluate` runs the episodes not yet recorded, in this
  process, in worker processes or on Ray, through the one rollout core (:mod:`jvla.rollout`,
  shared with the experts' data collection);
* :mod:`~jvla.evaluation.summary`: :func:`summarise`, per task and per category;
* :mod:`~jvla.evaluation.settings`: the pipeline's settings (:func:`run_setting`), their tasks
  and the fingerprint that decides whether recorded episodes can be resumed.
"""

from jvla.evaluation.executors import evaluate, records
from jvla.evaluation.records import EpisodeLog, EpisodeRecord
from jvla.evaluation.settings import fingerprint, run_setting, select_tasks
from jvla.evaluation.summary import summarise
from jvla.rollout import EpisodeSpec, ExpertPolicy, Policy, episode_seed, plan_episodes

__all__ = [
    "EpisodeLog", "EpisodeRecord", "EpisodeSpec", "ExpertPolicy", "Policy", "episode_seed", "evaluate",
    "fingerprint", "plan_episodes", "records", "run_setting", "select_tasks", "summarise",
]  # fmt: skip
