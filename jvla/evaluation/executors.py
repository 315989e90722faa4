"""Where evaluation episodes run: in this process, in local worker processes, or on Ray.

Every executor runs the same thing, :func:`records`: the rollout core
(:func:`jvla.rollout.run_episodes`) on ``slots`` games, each finished episode turned into an
:class:`~jvla.evaluation.records.EpisodeRecord` (and its video written). :func:`evaluate` skips
the episodes already in ``episodes.jsonl`` and appends each new record as soon as it arrives, in
whichever process it was made, so an interrupted or crashed evaluation resumes where it stopped.

* ``local`` with ``workers == 1``: the core in this process.
* ``local`` with ``workers > 1``: one spawned process per shard (``todo[i::workers]``), records
  sent back through a queue; a failed worker stops the evaluation with its error.
* ``ray``: shards of one round of tasks each sent to Ray workers on a cluster.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jvla.envs.base import Env
from jvla.evaluation.records import EpisodeLog, EpisodeRecord
from jvla.rollout import Episode, EpisodeSpec, Policy, run_episodes, seeded_instruction

log = logging.getLogger(__name__)


def records(
    specs: Sequence[EpisodeSpec],
    env_factory: Callable[[], Env],
    policy_factory: Callable[[], Policy],
    *,
    variant: str,
    backend: str,
    setting: str = "",
    slots: int = 1,
    max_retries: int = 2,
    videos_per_task: int = 0,
    video_dir: Path | None = None,
    video_fps: int = 20,
    instruction_seed: int = 0,
    progress: bool = True,
) -> Iterator[EpisodeRecord]:
    """Run ``specs`` through the rollout core; yield each episode's record as it finishes.

    The instruction of an episode is drawn from ``Random(f"{instruction_seed}:{task}:{episode}")``;
    the first ``videos_per_task`` episodes of each task are recorded as mp4 under ``video_dir``
    (the reset frame, then the frame after every step). An episode whose every game attempt
    crashed is recorded with ``status = "infra_failed"`` (excluded from success rates)."""
    record = lambda spec: "frames" if video_dir and spec.episode < videos_per_task else "none"  # noqa: E731
    episodes = run_episodes(
        specs, env_factory, policy_factory, slots=slots, max_retries=max_retries,
        instruction=seeded_instruction(instruction_seed), record=record,
        desc=f"eval {variant}{'/' + setting if setting else ''}", progress=progress, one_policy_thread=True,
    )  # fmt: skip
    for ep in episodes:
        video = ""
        if ep.frames and ep.status == "ok":
            video = _write_video(ep, video_dir, variant, setting, video_fps)
        yield _record(ep, variant, setting, backend, video)


def _record(ep: Episode, variant: str, setting: str, backend: str, video: str) -> EpisodeRecord:
    spec, stats, ok = ep.spec, ep.stats, ep.status == "ok"
    return EpisodeRecord(
        variant=variant, setting=setting, backend=backend, task=spec.task.name, category=spec.task.category,
        episode=spec.episode, seed=spec.seed, status=ep.status, success=bool(ep.success),
        steps=ep.steps if ok else 0, wall_s=round(ep.wall_s, 3), infra_failures=ep.infra_failures,
        n_decisions=int(stats.get("n_decisions", 0)), n_actions=int(stats.get("n_actions", 0)),
        n_malformed=int(stats.get("n_malformed", 0)), instruction=ep.instruction, video=video,
        agent_s=float(stats.get("agent_s", 0.0)),
    )  # fmt: skip


def _write_video(ep: Episode, video_dir: Path, variant: str, setting: str, fps: int) -> str:
    from jvla.paths import rel
    from jvla.video import write_mp4

    name = f"{variant}{'-' + setting if setting else ''}_{ep.spec.task.name}_{ep.spec.episode}.mp4"
    path = Path(video_dir) / name
    write_mp4([*ep.frames, ep.final_frame], path, fps=fps)
    return rel(path)


def evaluate(
    specs: Sequence[EpisodeSpec],
    log_path: str | Path,
    env_factory: Callable[[], Env],
    policy_factory: Callable[[], Policy],
    *,
    variant: str,
    backend: str,
    setting: str = "",
    slots: int = 1,
    workers: int = 1,
    executor: str = "local",
    **kwargs: Any,
) -> list[EpisodeRecord]:
    """Run the episodes of ``specs`` not yet in ``log_path``, appending each as it finishes.

    ``env_factory`` and ``policy_factory`` must be picklable (module-level functions or
    ``functools.partial``) when ``workers > 1`` or ``executor == "ray"``. Returns every record of
    this variant/setting in the log (old and new).
    """
    ep_log = EpisodeLog(log_path)
    done = ep_log.done()
    todo = [s for s in specs if (variant, setting, s.task.name, s.episode) not in done]
    if len(todo) < len(specs):
        log.info(
            "resuming %s: %d of %d episodes already recorded", variant, len(specs) - len(todo), len(specs)
        )
    run_kw = dict(variant=variant, backend=backend, setting=setting, slots=slots, **kwargs)
    if todo:
        if executor == "ray":
            _run_ray(todo, ep_log, env_factory, policy_factory, workers, run_kw)
        elif workers <= 1:
            for rec in records(todo, env_factory, policy_factory, **run_kw):
                ep_log.append(rec)
        else:
            _run_processes(todo, ep_log, env_factory, policy_factory, workers, run_kw)
    return [r for r in ep_log.read() if r.variant == variant and r.setting == setting]


def _shard(todo: Sequence[EpisodeSpec], n: int) -> list[list[EpisodeSpec]]:
    return [list(todo[i::n]) for i in range(n) if todo[i::n]]


def _worker(specs, env_factory, policy_factory, run_kw, queue) -> None:
    try:
        for rec in records(specs, env_factory, policy_factory, progress=False, **run_kw):
            queue.put(("rec", dataclasses.asdict(rec)))
    except BaseException as e:  # reported to the parent, which re-raises
        queue.put(("error", repr(e)))
    finally:
        queue.put(("done", None))


def _run_processes(todo, ep_log, env_factory, policy_factory, workers, run_kw) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh interpreters: no forked X11/torch state
    queue = ctx.Queue()
    shards = _shard(todo, workers)
    procs = [ctx.Process(target=_worker, args=(s, env_factory, policy_factory, run_kw, queue), daemon=False)
             for s in shards]  # fmt: skip
    for p in procs:
        p.start()
    running, errors = len(procs), []
    try:
        while running:
            kind, payload = queue.get()
            if kind == "rec":
                ep_log.append(EpisodeRecord(**payload))
            elif kind == "error":
                errors.append(payload)
            else:
                running -= 1
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker's env cleanup handlers kill its games
            p.join(timeout=30)
    if errors:
        raise RuntimeError(f"evaluation worker failed: {errors[0]}")


def _run_ray(todo, ep_log, env_factory, policy_factory, workers, run_kw) -> None:  # pragma: no cover
    import ray

    @ray.remote
    def shard_task(specs):
        return [
            dataclasses.asdict(r)
            for r in records(specs, env_factory, policy_factory, progress=False, **run_kw)
        ]

    # Small shards (one round of tasks each) so a lost worker costs little and records land early.
    shard_size = max(1, run_kw.get("slots", 1))
    pending = [shard_task.remote(list(todo[i : i + shard_size])) for i in range(0, len(todo), shard_size)]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for payload in ray.get(ready[0]):
            ep_log.append(EpisodeRecord(**payload))
