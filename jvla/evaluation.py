"""Rollout evaluation: tasks x episodes, resumable episode records, success rates with CIs.

The protocol (paper §5; official ``evaluate.py``): an episode succeeds when the task's reward is
> 0 within ``task.max_steps`` env steps; each task runs ``n_episodes`` times; the reported
numbers are the per-task success rate and, per category, the mean over all its tasks.

Records. Every finished episode is appended at once, as one JSON line, to ``episodes.jsonl``
(see :class:`EpisodeRecord` for the keys). A rerun reads the file and skips the episodes already
there, so an interrupted evaluation resumes without redoing or losing finished episodes. An
episode whose game crashed is restarted on a fresh game and retried (``infra_failures`` counts
the attempts lost; a fresh game that fails to start counts as a crash); only if every retry
crashes is it written with ``status = "infra_failed"``, and such episodes are excluded from
success rates (as the official code excludes them). A game that fails to start at the beginning
is tried again as often; if it still fails, the evaluation stops with that error.

Parallelism. One process steps ``slots`` environments in lock-step, with one batched policy call
per tick for all slots that need a decision and the env steps in threads (they mostly wait for
the game tick); a slot's reset or game restart runs in a thread while the others play on.
``workers > 1`` runs several such processes locally; ``executor="ray"`` sends the same shards to
Ray workers on a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from jvla.envs.base import Env, EnvCrashed
from jvla.envs.tasks import Task
from jvla.stats import category_average, wilson_interval

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode, one line of ``episodes.jsonl``.

    Attributes:
        variant: model variant evaluated (e.g. ``actvlp``), or ``expert``.
        setting: evaluation setting within the variant (e.g. ``chunk2``), ``""`` by default.
        backend: ``minetest`` | ``minestudio`` | ``fake``.
        task, category: the task name and its category.
        episode: index within the task, 0-based.
        seed: the env seed used (derived from the base seed, task and episode).
        status: ``ok`` or ``infra_failed`` (every attempt crashed; excluded from rates).
        success: reward > 0 within ``max_steps``.
        steps: env steps taken (the success step, or ``max_steps``).
        wall_s: wall time of the successful attempt, seconds.
        infra_failures: attempts lost to game crashes before this record.
        n_decisions: policy calls (one per executed action chunk).
        agent_s: wall time the policy spent deciding for this episode, seconds (its share of
            batched calls); ``n_actions / agent_s`` is the agent's decision rate without the game.
        n_actions: actions executed.
        n_malformed: decoded segments replaced by the null action.
        instruction: the instruction given to the policy.
        video: repo-relative path of the rollout video, or ``""``.
    """

    variant: str
    setting: str
    backend: str
    task: str
    category: str
    episode: int
    seed: int
    status: str
    success: bool
    steps: int
    wall_s: float
    infra_failures: int = 0
    n_decisions: int = 0
    n_actions: int = 0
    n_malformed: int = 0
    instruction: str = ""
    video: str = ""
    agent_s: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.variant, self.setting, self.task, self.episode)


class EpisodeLog:
    """Append-only JSONL of :class:`EpisodeRecord` with crash-safe appends and resume."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> list[EpisodeRecord]:
        """All complete records; a torn last line (crash mid-write) is dropped with a warning."""
        if not self.path.exists():
            return []
        names = {f.name for f in dataclasses.fields(EpisodeRecord)}
        out = []
        for i, line in enumerate(self.path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(EpisodeRecord(**{k: v for k, v in d.items() if k in names}))
            except (json.JSONDecodeError, TypeError) as e:
                log.warning("%s line %d is not a complete record (%s); ignoring it", self.path.name, i + 1, e)
        return out

    def done(self) -> set[tuple[str, str, str, int]]:
        return {r.key for r in self.read()}

    def append(self, record: EpisodeRecord) -> None:
        # Repair a torn last line first so the new record starts on its own line.
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                with open(self.path, "a") as f:
                    f.write("\n")
        line = json.dumps(dataclasses.asdict(record), sort_keys=True) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def episode_seed(base_seed: int, task: str, episode: int) -> int:
    """A stable per-(task, episode) seed, independent of ordering and of Python's hash salt."""
    h = hashlib.sha256(f"{base_seed}/{task}/{episode}".encode()).digest()
    return int.from_bytes(h[:4], "little")


@dataclass(frozen=True)
class EpisodeSpec:
    task: Task
    episode: int
    seed: int


def plan_episodes(tasks: Sequence[Task], n_episodes: int, base_seed: int) -> list[EpisodeSpec]:
    """Episodes in round-robin order over tasks (so partial runs cover every task evenly)."""
    return [EpisodeSpec(t, e, episode_seed(base_seed, t.name, e)) for e in range(n_episodes) for t in tasks]


# ----------------------------------------------------------------------------------- policies
class Policy(Protocol):
    """What the rollout loop drives. Slots are independent episodes run side by side."""

    def reset(self, slot: int, task: Task, instruction: str, env: Env) -> None: ...

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict]:
        """One env action per slot, for the frames (HxWx3 uint8) just observed."""
        ...

    def episode_stats(self, slot: int) -> dict[str, float]:
        """``n_decisions``, ``n_actions``, ``n_malformed`` of the slot's current episode."""
        ...


class ExpertPolicy:
    """Wraps scripted experts (privileged state) as a :class:`Policy`, for sanity runs."""

    def __init__(self, make_expert: Callable[[Task], Any]):
        self.make_expert = make_expert
        self._slots: dict[int, tuple[Any, Env]] = {}
        self._n: dict[int, int] = {}

    def reset(self, slot: int, task: Task, instruction: str, env: Env) -> None:
        self._slots[slot] = (self.make_expert(task), env)
        self._n[slot] = 0

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict]:
        out = []
        for s in slots:
            expert, env = self._slots[s]
            self._n[s] += 1
            out.append(expert.act(env))
        return out

    def episode_stats(self, slot: int) -> dict[str, float]:
        return {"n_decisions": self._n[slot], "n_actions": self._n[slot], "n_malformed": 0}


# ------------------------------------------------------------------------------------ rollouts
@dataclass
class _Slot:
    env: Env | None  # None between a given-up episode and the next one's fresh game
    spec: EpisodeSpec | None = None
    instruction: str = ""
    steps: int = 0
    start: float = 0.0
    frame: np.ndarray | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    failures: int = 0
    record_video: bool = False


def run_episodes(
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
    """Run ``specs`` on ``slots`` environments side by side; yield each record when it finishes.

    The caller appends each yielded record to the log at once. Envs are created by
    ``env_factory`` (one per slot, started concurrently, re-created after a crash) and closed on
    exit, including on exceptions and KeyboardInterrupt. The policy is built by
    ``policy_factory`` in a thread while the games start (a model load and a game start take
    seconds each, and overlap). A slot's reset (and a crashed game's restart) runs in a thread
    while the other slots keep playing. The instruction of an episode
    is drawn from its own seed (``instruction_seed``, task, episode), so it does not depend on
    which slot runs it or when.
    """
    import random

    from tqdm import tqdm

    queue = list(specs)
    bar = tqdm(total=len(queue), desc=f"eval {variant}{'/' + setting if setting else ''}",
               disable=not progress, mininterval=5, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}")  # fmt: skip
    n_slots = max(1, min(slots, len(queue)))
    active: list[_Slot] = []
    resetting: dict[int, Future] = {}  # slot -> its reset job (the frame, or None if given up)
    step_pool = ThreadPoolExecutor(max_workers=n_slots, thread_name_prefix="step")
    reset_pool = ThreadPoolExecutor(max_workers=n_slots, thread_name_prefix="reset")
    policy_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")

    def reset_job(slot: _Slot, crash: Exception | None) -> np.ndarray | None:
        """(Thread) restart a crashed game, reset onto ``slot.spec``; None once it is given up."""
        spec = slot.spec
        while True:
            if crash is not None:
                slot.failures += 1
                log.warning("game crashed on %s/%d (%s); restarting", spec.task.name, spec.episode,
                            crash)  # fmt: skip
                if slot.env is not None:
                    with contextlib.suppress(Exception):
                        slot.env.close()
                slot.env = None  # a fresh game below, or for the next episode once this one is given up
                if slot.failures > max_retries:
                    return None
            try:
                if slot.env is None:
                    slot.env = env_factory()  # a game that fails to start counts as a crash
                obs, _ = slot.env.reset(spec.task, seed=spec.seed)
                return obs["image"]
            except EnvCrashed as e:
                crash = e

    def begin(i: int, crash: Exception | None = None) -> None:
        """Start resetting slot ``i`` onto its retried (after ``crash``) or its next episode."""
        slot = active[i]
        if slot.spec is None:
            if not queue:
                return
            slot.spec, slot.failures = queue.pop(0), 0
        spec = slot.spec
        slot.instruction = spec.task.sample_instruction(
            random.Random(f"{instruction_seed}:{spec.task.name}:{spec.episode}")
        )
        slot.steps, slot.frames, slot.frame = 0, [], None
        slot.record_video = bool(video_dir) and spec.episode < videos_per_task
        resetting[i] = reset_pool.submit(reset_job, slot, crash)

    try:
        building = policy_pool.submit(policy_factory)
        active = [_Slot(env) for env in _start_envs(env_factory, n_slots, step_pool, max_retries)]
        policy = building.result()
        _one_intra_op_thread()  # in this thread, which runs the policy
        for i in range(len(active)):
            begin(i)
        while True:
            for i in [i for i, f in resetting.items() if f.done()]:
                frame, slot = resetting.pop(i).result(), active[i]
                if frame is None:  # every retry crashed
                    yield _record(slot, variant, setting, backend, status="infra_failed", success=False,
                                  stats={}, wall=0.0, video="")  # fmt: skip
                    bar.update(1)
                    slot.spec, slot.failures = None, 0
                    begin(i)
                    continue
                slot.frame = frame
                if slot.record_video:
                    slot.frames.append(frame)
                policy.reset(i, slot.spec.task, slot.instruction, slot.env)
                slot.start = time.perf_counter()
            live = [i for i, s in enumerate(active) if s.spec is not None and i not in resetting]
            if not live:
                if not resetting:
                    break
                wait(list(resetting.values()), return_when=FIRST_COMPLETED)
                continue
            actions = policy.act(live, [active[i].frame for i in live])
            step = lambda ia: _safe_step(active[ia[0]].env, ia[1])  # noqa: E731
            results = list(step_pool.map(step, zip(live, actions, strict=True)))
            for i, res in zip(live, results, strict=True):
                slot = active[i]
                if isinstance(res, EnvCrashed):
                    begin(i, crash=res)
                    continue
                obs, reward, terminated, truncated, _info = res
                slot.steps += 1
                slot.frame = obs["image"]
                if slot.record_video:
                    slot.frames.append(slot.frame)
                success = reward > 0
                if success or terminated or truncated or slot.steps >= slot.spec.task.max_steps:
                    wall = time.perf_counter() - slot.start
                    video = ""
                    if slot.record_video and slot.frames:
                        video = _write_video(slot, video_dir, variant, setting, video_fps)
                    rec = _record(slot, variant, setting, backend, status="ok", success=success,
                                  stats=policy.episode_stats(i), wall=wall, video=video)  # fmt: skip
                    slot.spec, slot.failures = None, 0
                    yield rec
                    bar.update(1)
                    begin(i)
    finally:
        bar.close()
        policy_pool.shutdown(wait=True, cancel_futures=True)
        reset_pool.shutdown(wait=True, cancel_futures=True)
        step_pool.shutdown(wait=True)
        _close_all([slot.env for slot in active if slot.env is not None])


def _one_intra_op_thread() -> None:
    """One torch intra-op thread for the policy: the games and the step threads need the other
    cores. The setting is per OS thread (OpenMP), so it is made in the thread that runs the policy,
    not in the one that built it."""
    import torch

    torch.set_num_threads(1)


def _close_all(envs: Sequence[Env]) -> None:
    """Close ``envs`` side by side (a game takes about a second to shut down); errors ignored."""

    def close(env: Env) -> None:
        with contextlib.suppress(Exception):
            env.close()

    with ThreadPoolExecutor(max_workers=max(1, len(envs)), thread_name_prefix="close") as pool:
        list(pool.map(close, envs))


def _start_envs(
    env_factory: Callable[[], Env], n: int, pool: ThreadPoolExecutor, max_retries: int = 0
) -> list[Env]:
    """``n`` envs started side by side (one in this thread, so that a backend can install its
    signal handlers). A start that raises :class:`EnvCrashed` is tried again, up to ``max_retries``
    times; if one still fails (or fails otherwise), the others are closed and the error raised."""

    def start() -> Env:
        for attempt in range(max_retries + 1):
            try:
                return env_factory()
            except EnvCrashed as e:
                if attempt == max_retries:
                    raise
                log.warning("a game failed to start (%s); starting another", e)
        raise AssertionError("unreachable")

    futures = [pool.submit(start) for _ in range(n - 1)]
    envs, error = [], None
    try:
        envs.append(start())
    except BaseException as e:
        error = e
    for f in futures:
        try:
            envs.append(f.result())
        except BaseException as e:
            error = error or e
    if error is not None:
        _close_all(envs)
        raise error
    return envs


def _safe_step(env: Env, action: dict):
    try:
        return env.step(action)
    except EnvCrashed as e:
        return e


def _record(slot: _Slot, variant, setting, backend, *, status, success, stats, wall, video) -> EpisodeRecord:
    spec = slot.spec
    return EpisodeRecord(
        variant=variant, setting=setting, backend=backend, task=spec.task.name, category=spec.task.category,
        episode=spec.episode, seed=spec.seed, status=status, success=bool(success), steps=slot.steps,
        wall_s=round(wall, 3), infra_failures=slot.failures, n_decisions=int(stats.get("n_decisions", 0)),
        n_actions=int(stats.get("n_actions", 0)), n_malformed=int(stats.get("n_malformed", 0)),
        instruction=slot.instruction, video=video, agent_s=float(stats.get("agent_s", 0.0)),
    )  # fmt: skip


def _write_video(slot: _Slot, video_dir: Path, variant: str, setting: str, fps: int) -> str:
    from jvla.paths import rel
    from jvla.video import write_mp4

    name = f"{variant}{'-' + setting if setting else ''}_{slot.spec.task.name}_{slot.spec.episode}.mp4"
    path = Path(video_dir) / name
    write_mp4(slot.frames, path, fps=fps)
    return rel(path)


# ------------------------------------------------------------------------------ orchestration
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
            for rec in run_episodes(todo, env_factory, policy_factory, **run_kw):
                ep_log.append(rec)
        else:
            _run_processes(todo, ep_log, env_factory, policy_factory, workers, run_kw)
    return [r for r in ep_log.read() if r.variant == variant and r.setting == setting]


def _shard(todo: Sequence[EpisodeSpec], n: int) -> list[list[EpisodeSpec]]:
    return [list(todo[i::n]) for i in range(n) if todo[i::n]]


def _worker(specs, env_factory, policy_factory, run_kw, queue) -> None:
    try:
        for rec in run_episodes(specs, env_factory, policy_factory, progress=False, **run_kw):
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
            for r in run_episodes(specs, env_factory, policy_factory, progress=False, **run_kw)
        ]

    # Small shards (one round of tasks each) so a lost worker costs little and records land early.
    shard_size = max(1, run_kw.get("slots", 1))
    pending = [shard_task.remote(list(todo[i : i + shard_size])) for i in range(0, len(todo), shard_size)]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for payload in ray.get(ready[0]):
            ep_log.append(EpisodeRecord(**payload))


# ------------------------------------------------------------------------------------- summary
def summarise(records: Iterable[EpisodeRecord]) -> tuple[list[dict], list[dict]]:
    """Per-task and per-category success rates.

    Returns ``(per_task, per_category)`` lists of dicts. Per task: ``variant, setting, task,
    category, n, successes, success_rate, ci_low, ci_high`` (Wilson 95 %), ``infra_failed``,
    ``mean_steps_success``, ``malformed_rate``. Per category: ``variant, setting, category,
    n_tasks, success_rate`` (mean over the category's tasks, as in the paper).
    """
    groups: dict[tuple[str, str, str], list[EpisodeRecord]] = {}
    for r in records:
        groups.setdefault((r.variant, r.setting, r.task), []).append(r)
    per_task = []
    for (variant, setting, task), recs in sorted(groups.items()):
        ok = [r for r in recs if r.status == "ok"]
        s = sum(r.success for r in ok)
        lo, hi = wilson_interval(s, len(ok))
        steps = [r.steps for r in ok if r.success]
        acts = sum(r.n_actions for r in ok)
        per_task.append({
            "variant": variant, "setting": setting, "task": task, "category": recs[0].category,
            "n": len(ok), "successes": s, "success_rate": s / len(ok) if ok else float("nan"),
            "ci_low": lo, "ci_high": hi, "infra_failed": len(recs) - len(ok),
            "mean_steps_success": float(np.mean(steps)) if steps else float("nan"),
            "malformed_rate": (sum(r.n_malformed for r in ok) / acts) if acts else 0.0,
        })  # fmt: skip
    per_cat = []
    by_vs: dict[tuple[str, str], list[dict]] = {}
    for row in per_task:
        by_vs.setdefault((row["variant"], row["setting"]), []).append(row)
    for (variant, setting), rows in sorted(by_vs.items()):
        rates = {r["task"]: r["success_rate"] for r in rows if r["n"]}
        cats = {r["task"]: r["category"] for r in rows}
        for cat, avg in category_average(rates, cats).items():
            n_tasks = sum(1 for r in rows if r["category"] == cat and r["n"])
            per_cat.append({"variant": variant, "setting": setting, "category": cat,
                            "n_tasks": n_tasks, "success_rate": avg})  # fmt: skip
    return per_task, per_cat


# ------------------------------------------------------------------------- pipeline settings
def select_tasks(params: Any, entries: Sequence[str]) -> list[Task]:
    """The tasks of ``entries`` (names, ``all``, ``tag:<t>``) in ``evaluate.suite`` that the
    backend can run, each with its step limit from :meth:`EvaluateConfig.step_limit`
    (``evaluate.max_steps_cap`` and ``evaluate.max_steps_cap_by_category``)."""
    from jvla.envs.tasks import CATEGORIES, load_tasks

    ev = params.evaluate
    pool = load_tasks(suite=ev.suite, backend=params.env.backend)
    chosen: dict[str, Task] = {}
    for e in entries:
        if e == "all":
            picked = pool
            if ev.tasks_per_category:
                picked = [
                    t
                    for c in CATEGORIES
                    for t in [t for t in pool if t.category == c][: ev.tasks_per_category]
                ]
        elif e.startswith("tag:"):
            picked = [t for t in pool if e[4:] in t.tables]
        else:
            picked = [t for t in pool if t.name == e]
            if not picked:
                raise ValueError(
                    f"evaluate: task {e!r} is not in suite {ev.suite!r} for backend {params.env.backend!r}"
                )
        for t in picked:
            chosen.setdefault(t.name, t)
    return [dataclasses.replace(t, max_steps=ev.step_limit(t.category, t.max_steps)) for t in chosen.values()]


def make_policy(params: Any, model_dir: str, history: int, chunk: int, execute: int, seed: int = 0):
    """The VLA policy of a model directory (module-level so worker processes can build it)."""
    from jvla import models
    from jvla.action_tokenizer import ActionTokenizer
    from jvla.actions import ActionSpace
    from jvla.agent import Decoder, OpenAIDecoder, VLAPolicy

    space = ActionSpace.from_config(params.action)
    if params.agent.server_url:
        from transformers import AutoTokenizer

        atok = ActionTokenizer.from_tokenizer(AutoTokenizer.from_pretrained(model_dir), space,
                                              params.action.encode_inventory)  # fmt: skip
        return VLAPolicy(OpenAIDecoder(params.agent.server_url, atok, params.agent), history, chunk, execute)
    model, processor = models.load(model_dir, params)
    atok = ActionTokenizer.from_tokenizer(processor.tokenizer, space, params.action.encode_inventory)
    return VLAPolicy(Decoder(model, processor, atok, params.agent, seed=seed), history, chunk, execute)


def run_setting(params: Any, name: str, models_root: Path | None = None, out_root: Path | None = None,
                progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Evaluate one ``evaluate.settings`` entry; resumable; returns its summary.

    Writes ``<out_root>/<name>/episodes.jsonl`` (appended per episode), ``summary.json`` (per
    task, per category, the agent's actions/s) and the videos of the first episodes under
    ``<out_root>/<name>/videos/``.
    """
    import functools

    from jvla.envs import make_env
    from jvla.paths import MODELS_DIR, RESULTS_DIR

    if params.evaluate.fps_max and params.env.backend == "minetest":
        mt = dataclasses.replace(params.env.minetest, fps_max=params.evaluate.fps_max)
        params = dataclasses.replace(params, env=dataclasses.replace(params.env, minetest=mt))
    setting = params.evaluate.settings[name]
    if setting.variant not in params.variants:
        raise KeyError(f"evaluate.settings.{name}.variant: unknown variant {setting.variant!r}")
    variant = params.variants[setting.variant]
    models_root = models_root or MODELS_DIR
    out = (out_root or RESULTS_DIR / "evaluate") / name
    model_dir = models_root / "finetune" / setting.variant / "model"
    chunk = variant.ft_chunk
    execute = setting.inference_chunk or chunk
    if execute > chunk:
        raise ValueError(
            f"evaluate.settings.{name}: inference_chunk {execute} > the variant's ft_chunk {chunk}"
        )
    history = params.data.trajectories.history  # the prompt layout the model was trained on
    _keep_or_clear(out, fingerprint(params, name, model_dir))
    tasks = select_tasks(params, setting.tasks)
    ev = params.evaluate
    specs = plan_episodes(tasks, ev.episodes_of(name), ev.seed)
    recs = evaluate(
        specs, out / "episodes.jsonl", functools.partial(make_env, params),
        functools.partial(make_policy, params, str(model_dir), history, chunk, execute, params.seed),
        variant=setting.variant, setting=name, backend=params.env.backend, slots=ev.slots,
        workers=ev.workers, executor=ev.executor, max_retries=ev.max_retries,
        videos_per_task=setting.videos_per_task, video_dir=out / "videos", instruction_seed=ev.seed,
        progress=progress,
    )  # fmt: skip
    planned = {(s.task.name, s.episode) for s in specs}
    recs = [r for r in recs if (r.task, r.episode) in planned]
    per_task, per_cat = summarise(recs)
    actions, agent_s = sum(r.n_actions for r in recs), sum(r.agent_s for r in recs)
    summary = {
        "setting": name, "variant": setting.variant, "backbone": variant.backbone,
        "apt_chunk": variant.apt_chunk, "ft_chunk": chunk, "inference_chunk": execute, "history": history,
        "episodes": len(recs), "tasks": [t.name for t in tasks],
        "fps": round(actions / agent_s, 2) if agent_s else None,
        "malformed_rate": (sum(r.n_malformed for r in recs) / actions) if actions else 0.0,
        "infra_failures": sum(r.infra_failures for r in recs),
        "per_task": per_task, "per_category": per_cat,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def fingerprint(params: Any, name: str, model_dir: Path) -> dict[str, str]:
    """What the episodes of setting ``name`` depend on: the model's files and every parameter
    the rollouts read (sha256 of each). Episodes recorded under another fingerprint are stale."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
        h.update(f.relative_to(model_dir).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    setting = params.evaluate.settings[name]
    used = {
        "setting": setting, "variant": params.variants[setting.variant], "seed": params.seed,
        "evaluate": dataclasses.replace(params.evaluate, settings={}), "env": params.env,
        "agent": params.agent, "action": params.action, "model": params.model,
        "history": params.data.trajectories.history,
    }  # fmt: skip
    plain = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in used.items()}
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return {"model_sha256": h.hexdigest(), "params_sha256": hashlib.sha256(blob).hexdigest()}


def _keep_or_clear(out: Path, fp: dict[str, str]) -> None:
    """Resume in ``out`` only if its episodes were recorded with fingerprint ``fp``.

    The DVC stage keeps its results folder between runs (``persist: true``) so that an
    interrupted ``dvc repro`` resumes; when the model or a parameter changed, the recorded
    episodes, videos and summary are deleted first, so a stale episode is never reused.
    """
    path = out / "fingerprint.json"
    if out.exists():
        old = json.loads(path.read_text()) if path.exists() else None
        if old != fp:
            if old is not None or any(out.iterdir()):
                log.warning("%s: recorded with another model or parameters; starting over", out.name)
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fp, indent=1, sort_keys=True) + "\n")
