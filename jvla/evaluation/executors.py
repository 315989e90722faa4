"""Where evaluation episodes run: in this process, in local worker processes, or on Ray.

Every executor runs the same thing, :func:`records`: the rollout core
(:func:`jvla.rollout.run_episodes`) on ``slots`` games, each finished episode turned into an
:class:`~jvla.evaluation.records.EpisodeRecord` (and its video written). :func:`evaluate` skips
the episodes already in ``episodes.jsonl`` and appends each new record as soon as it arrives, in
whichever process it was made, so an interrupted or crashed evaluation resumes where it stopped.

* ``local`` with ``workers == 1``: the core in this process.
* ``local`` with ``workers > 1``: one spawned process per shard (``todo[i::workers]``), records
  sent back through a queue; a failed worker stops the evaluation with its error.
* ``ray``: the same shards as Ray tasks (a local instance, or the cluster in ``$RAY_ADDRESS``),
  records streamed back as each episode finishes; a shard whose worker is lost is resubmitted with
  the episodes it had not finished (``tests/test_scale_out.py`` kills one).
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
    max_retries: int = 2,
    **kwargs: Any,
) -> list[EpisodeRecord]:
    """Run the episodes of ``specs`` not yet in ``log_path``, appending each as it finishes.

    ``env_factory`` and ``policy_factory`` must be picklable (module-level functions or
    ``functools.partial``) when ``workers > 1`` or ``executor == "ray"``. ``max_retries``: game
    starts after a crash per episode, and, on Ray, resubmissions of a shard whose worker was lost.
    Returns every record of this variant/setting in the log (old and new).
    """
    ep_log = EpisodeLog(log_path)
    done = ep_log.done()
    todo = [s for s in specs if (variant, setting, s.task.name, s.episode) not in done]
    if len(todo) < len(specs):
        log.info(
            "resuming %s: %d of %d episodes already recorded", variant, len(specs) - len(todo), len(specs)
        )
    run_kw = dict(
        variant=variant, backend=backend, setting=setting, slots=slots, max_retries=max_retries, **kwargs
    )
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


def _ray_init(workers: int) -> bool:
    """Connect to the cluster in ``$RAY_ADDRESS``, or start a local instance; True if we started it.

    A local instance has ``workers`` CPUs (one shard task each) and no dashboard. Ray 2.60 has no
    loopback-only mode: it replaces 127.0.0.1 by the machine's address
    (``ray._private.services.resolve_ip_for_localhost``) and its gRPC servers listen on every
    interface; they accept only clients holding the session's token (Ray's default token auth).
    """
    import os

    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)  # fmt: skip
    return True


def _run_ray(todo, ep_log, env_factory, policy_factory, workers, run_kw) -> None:
    """Shards (``todo[i::workers]``, as the local executor) run as Ray generator tasks, at most
    ``workers`` at a time; each record is appended here as soon as its episode finishes.

    A shard whose worker is lost (killed, crashed, its node gone) is submitted again with only its episodes not yet
    in ``episodes.jsonl``, at most ``max_retries`` times (``evaluate.max_retries``); finished
    episodes are never rerun or duplicated. Ray itself does not retry (``max_retries=0``): its
    retry of a generator task would replay the shard from its first episode. A Ray instance started
    here is shut down before returning, also on an error or Ctrl-C; a connected cluster is left up.
    """
    import ray

    def shard_task(specs):  # a generator: one record dict per finished episode
        for rec in records(specs, env_factory, policy_factory, progress=False, **run_kw):
            yield dataclasses.asdict(rec)

    remote = ray.remote(max_retries=0)(shard_task)
    started = _ray_init(workers)
    # Lost with its process or node (a killed or crashed worker, an OOM kill, a lost node): the
    # shard is resubmitted. An exception raised by the rollout code itself is a bug: it stops the run.
    lost = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
            ray.exceptions.OwnerDiedError, ray.exceptions.LocalRayletDiedError)  # fmt: skip
    done = ep_log.done()
    key = lambda s: (run_kw["variant"], run_kw["setting"], s.task.name, s.episode)  # noqa: E731
    queue = [(shard, 0) for shard in _shard(todo, workers)]  # (specs, retries so far)
    running: dict[Any, tuple[list[EpisodeSpec], int]] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                shard, tries = queue.pop(0)
                running[remote.remote(shard)] = (shard, tries)
            (gen,), _ = ray.wait(list(running), num_returns=1)
            shard, tries = running[gen]
            try:
                payload = ray.get(next(gen))
            except StopIteration:
                del running[gen]
                continue
            except ray.exceptions.RayError as e:
                del running[gen]
                if not isinstance(e, lost):
                    raise RuntimeError(f"evaluation worker failed: {e}") from e
                rest = [s for s in shard if key(s) not in done]
                if tries >= run_kw["max_retries"]:
                    raise RuntimeError(f"a Ray worker was lost {tries + 1} times on one shard: {e}") from e
                log.warning("ray: a worker was lost (%s); %d episodes of its shard left, resubmitting",
                            type(e).__name__, len(rest))  # fmt: skip
                if rest:
                    queue.append((rest, tries + 1))
                continue
            rec = EpisodeRecord(**payload)
            if rec.key not in done:  # a replayed episode is never recorded twice
                ep_log.append(rec)
                done.add(rec.key)
    finally:
        for gen in running:
            ray.cancel(gen, force=True)
        if started:
            ray.shutdown()
