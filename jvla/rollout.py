"""The one rollout core: episodes on ``slots`` games side by side, for experts and agents alike.

Both the data stage (scripted experts recording demonstrations, :mod:`jvla.data.trajectories`)
and the evaluation (the trained agent, :mod:`jvla.evaluation`) run their episodes through
:func:`run_episodes`, so a crashed game, a game that fails to start and a policy that gives up
are handled the same way everywhere:

* **Slots.** One process steps ``slots`` games in lock-step: one batched policy call per tick for
  every slot that needs a decision, the env steps in threads (they mostly wait for the game
  tick). A slot's reset, and a crashed game's restart, runs in a thread while the other slots
  play on.
* **Crashes.** A step or reset that raises :class:`~jvla.envs.base.EnvCrashed` closes that game,
  starts a fresh one (``env_factory``) and retries the episode from its reset, counting the lost
  attempt in ``infra_failures``. A fresh game that fails to start counts as a crash. After
  ``max_retries`` retries the episode is given up and yielded with ``status="infra_failed"``; the
  slot's next episode gets a fresh game. At the very beginning a game that fails to start is tried
  again as often (not counted against an episode); if it still fails, the error is raised.
* **Giving up.** A policy returns ``None`` instead of an action for a slot to end that episode as
  failed (e.g. a scripted expert that raised); its ``episode_stats`` say why.
* **Cleanup.** Every game is closed on exit, including on exceptions and Ctrl-C.

Results are :class:`Episode` objects, yielded as each episode finishes (round-robin order in, in
finishing order out). What an episode records is chosen per episode (``record``): ``"none"``,
``"frames"`` (the observed frames, e.g. for a video) or ``"full"`` (frames, actions, privileged
states, infos, rewards and game events: a demonstration).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from jvla.envs.base import Env, EnvCrashed, EventLog, PrivilegedState, ScriptedExperts
from jvla.envs.tasks import Task

log = logging.getLogger(__name__)

Record = Literal["none", "frames", "full"]


# ------------------------------------------------------------------------------------ episodes
@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: ``task`` (its ``max_steps`` is the step limit), the index ``episode``
    within the task (0-based) and the env ``seed`` of its reset."""

    task: Task
    episode: int
    seed: int


def episode_seed(base_seed: int, task: str, episode: int) -> int:
    """A stable per-(task, episode) seed, independent of ordering and of Python's hash salt."""
    h = hashlib.sha256(f"{base_seed}/{task}/{episode}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def plan_episodes(tasks: Sequence[Task], n_episodes: int, base_seed: int) -> list[EpisodeSpec]:
    """Episodes in round-robin order over tasks (so partial runs cover every task evenly)."""
    return [EpisodeSpec(t, e, episode_seed(base_seed, t.name, e)) for e in range(n_episodes) for t in tasks]


@dataclass
class Episode:
    """One finished episode.

    Attributes:
        spec: what was run.
        instruction: the instruction given to the policy.
        status: ``ok``, or ``infra_failed`` when every attempt crashed (nothing else is valid then).
        success: some reward > 0 (the episode ends at that step).
        steps: env steps taken in the last attempt (the success step, or the limit).
        wall_s: wall time of the last attempt from its first observation, seconds.
        infra_failures: attempts lost to crashed games before this result.
        stats: the policy's :meth:`Policy.episode_stats` for the episode.
        gave_up: the policy ended the episode by returning ``None``.
        frames: ``frames[t]`` (HxWx3 uint8) is the observation ``actions[t]`` was chosen from
            (``record`` ``frames`` or ``full``); ``final_frame`` is the one after the last step.
        actions, states, infos, rewards, events: per step ``t`` (``record="full"``): the env-form
            action, the privileged state read before it (None without that capability), and what
            the step returned: info, reward and the game's raw events (empty without an event log).
    """

    spec: EpisodeSpec
    instruction: str
    status: str = "ok"
    success: bool = False
    steps: int = 0
    wall_s: float = 0.0
    infra_failures: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    gave_up: bool = False
    frames: list[np.ndarray] = field(default_factory=list)
    final_frame: np.ndarray | None = None
    actions: list[dict] = field(default_factory=list)
    states: list[dict | None] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    events: list[list[dict]] = field(default_factory=list)


# ----------------------------------------------------------------------------------- policies
class Policy(Protocol):
    """What the rollout core drives. Slots are independent episodes run side by side."""

    def reset(self, slot: int, task: Task, instruction: str, env: Env) -> None: ...

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict | None]:
        """One env action per slot for the frames (HxWx3 uint8) just observed; ``None`` gives the
        slot's episode up (it ends as failed)."""
        ...

    def episode_stats(self, slot: int) -> dict[str, Any]:
        """Per-episode counters, e.g. ``n_decisions``, ``n_actions``, ``n_malformed``."""
        ...


class ExpertPolicy:
    """Scripted experts (privileged state) as a :class:`Policy`.

    ``make_expert(task)`` builds the expert of an episode; by default the env supplies it
    (:class:`~jvla.envs.base.ScriptedExperts`). An expert that raises gives its episode up
    (``episode_stats`` has ``error``), so one expert bug loses one episode, not the run.
    """

    def __init__(self, space: Any, make_expert: Callable[[Task], Any] | None = None):
        self.space, self.make_expert = space, make_expert
        self._slots: dict[int, tuple[Any, Env]] = {}
        self._n: dict[int, int] = {}
        self._error: dict[int, str] = {}

    def reset(self, slot: int, task: Task, instruction: str, env: Env) -> None:
        if self.make_expert is not None:
            expert = self.make_expert(task)
        elif isinstance(env, ScriptedExperts):
            expert = env.expert(task, self.space)
        else:
            raise TypeError(f"{type(env).__name__} has no scripted experts (ScriptedExperts)")
        self._slots[slot], self._n[slot], self._error[slot] = (expert, env), 0, ""

    def act(self, slots: Sequence[int], frames: Sequence[np.ndarray]) -> list[dict | None]:
        out: list[dict | None] = []
        for s in slots:
            expert, env = self._slots[s]
            try:
                out.append(expert.act(env))
                self._n[s] += 1
            except EnvCrashed:
                raise
            except Exception as e:  # an expert bug loses its episode, not the run
                self._error[s] = f"{type(e).__name__}: {e}"
                log.warning("expert on slot %d raised %s (episode given up)", s, self._error[s])
                out.append(None)
        return out

    def episode_stats(self, slot: int) -> dict[str, Any]:
        n = self._n.get(slot, 0)
        return {"n_decisions": n, "n_actions": n, "n_malformed": 0, "error": self._error.get(slot, "")}


# ------------------------------------------------------------------------------------ the core
@dataclass
class _Slot:
    env: Env | None  # None between a given-up episode and the next one's fresh game
    spec: EpisodeSpec | None = None
    ep: Episode | None = None
    mode: Record = "none"
    frame: np.ndarray | None = None
    start: float = 0.0
    failures: int = 0


def run_episodes(
    specs: Sequence[EpisodeSpec],
    env_factory: Callable[[], Env],
    policy_factory: Callable[[], Policy],
    *,
    slots: int = 1,
    max_retries: int = 2,
    instruction: Callable[[EpisodeSpec], str],
    record: Record | Callable[[EpisodeSpec], Record] = "none",
    envs: Sequence[Env] = (),
    desc: str = "episodes",
    progress: bool = True,
    one_policy_thread: bool = False,
) -> Iterator[Episode]:
    """Run ``specs`` on ``slots`` games side by side; yield each :class:`Episode` as it finishes.

    Args:
        env_factory: starts one game (called per slot, concurrently, and again after a crash).
        policy_factory: builds the policy, in a thread while the games start (a model load and a
            game start take seconds each, and overlap).
        instruction: the instruction of an episode, from its spec alone (so it does not depend on
            which slot runs it or when).
        record: what each episode records (see :class:`Episode`), or a function of its spec.
        envs: games already started, used for the first slots (their ownership passes here: they
            are closed on exit like the others).
        one_policy_thread: run the policy with one torch intra-op thread (the games and the step
            threads need the other cores); set in the thread that runs it.
    """
    from tqdm import tqdm

    queue = list(specs)
    bar = tqdm(total=len(queue), desc=desc, disable=not progress, mininterval=5,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}")  # fmt: skip
    n_slots = max(1, min(slots, len(queue)))
    given = list(envs)
    active: list[_Slot] = []
    resetting: dict[int, Future] = {}  # slot -> its reset job (the first frame, or None if given up)
    step_pool = ThreadPoolExecutor(max_workers=n_slots, thread_name_prefix="step")
    reset_pool = ThreadPoolExecutor(max_workers=n_slots, thread_name_prefix="reset")
    policy_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
    mode_of = record if callable(record) else (lambda _spec: record)

    def reset_job(slot: _Slot, crash: Exception | None) -> np.ndarray | None:
        """(Thread) restart a crashed game, reset onto ``slot.spec``; None once it is given up."""
        spec = slot.spec
        while True:
            if crash is not None:
                slot.failures += 1
                log.warning("game crashed on %s/%d (%s); restarting", spec.task.name, spec.episode, crash)
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
        slot.mode = mode_of(slot.spec)
        slot.ep = Episode(slot.spec, instruction(slot.spec))
        slot.frame = None
        resetting[i] = reset_pool.submit(reset_job, slot, crash)

    def finish(i: int, **kw: Any) -> Episode:
        slot = active[i]
        ep = slot.ep
        ep.infra_failures = slot.failures
        for k, v in kw.items():
            setattr(ep, k, v)
        if slot.mode != "none" and ep.status == "ok":
            ep.final_frame = slot.frame
        slot.spec, slot.ep, slot.failures = None, None, 0
        bar.update(1)
        return ep

    def step(i: int, action: dict):
        """(Thread) the privileged state before ``action`` (``full`` recording), then the step."""
        slot = active[i]
        try:
            state = None
            if slot.mode == "full" and isinstance(slot.env, PrivilegedState):
                state = slot.env.privileged_state()
            res = slot.env.step(action)
            events = list(slot.env.last_events) if isinstance(slot.env, EventLog) else []
            return state, res, events
        except EnvCrashed as e:
            return e

    try:
        building = policy_pool.submit(policy_factory)
        started = _start_envs(env_factory, n_slots - min(len(given), n_slots), step_pool, max_retries)
        active = [_Slot(env) for env in [*given[:n_slots], *started]]
        _close_all(given[n_slots:])
        policy = building.result()
        if one_policy_thread:
            _one_intra_op_thread()
        for i in range(len(active)):
            begin(i)
        while True:
            for i in [i for i, f in resetting.items() if f.done()]:
                frame, slot = resetting.pop(i).result(), active[i]
                if frame is None:  # every retry crashed
                    yield finish(i, status="infra_failed")
                    begin(i)
                    continue
                slot.frame = frame
                policy.reset(i, slot.spec.task, slot.ep.instruction, slot.env)
                slot.start = time.perf_counter()
            live = [i for i, s in enumerate(active) if s.spec is not None and i not in resetting]
            if not live:
                if not resetting:
                    break
                wait(list(resetting.values()), return_when=FIRST_COMPLETED)
                continue
            actions = policy.act(live, [active[i].frame for i in live])
            for i, a in zip(live, actions, strict=True):
                if a is None:
                    yield finish(i, gave_up=True, stats=policy.episode_stats(i),
                                 wall_s=time.perf_counter() - active[i].start)  # fmt: skip
                    begin(i)
            moves = [(i, a) for i, a in zip(live, actions, strict=True) if a is not None]
            results = list(step_pool.map(lambda ia: step(*ia), moves))
            for (i, action), res in zip(moves, results, strict=True):
                slot = active[i]
                if isinstance(res, EnvCrashed):
                    begin(i, crash=res)
                    continue
                state, (obs, reward, terminated, truncated, info), events = res
                ep = slot.ep
                if slot.mode != "none":
                    ep.frames.append(slot.frame)
                if slot.mode == "full":
                    ep.actions.append(action)
                    ep.states.append(state)
                    ep.infos.append(info)
                    ep.rewards.append(reward)
                    ep.events.append(events)
                ep.steps += 1
                slot.frame = obs["image"]
                success = reward > 0
                if success or terminated or truncated or ep.steps >= slot.spec.task.max_steps:
                    yield finish(i, success=success, stats=policy.episode_stats(i),
                                 wall_s=time.perf_counter() - slot.start)  # fmt: skip
                    begin(i)
    finally:
        bar.close()
        policy_pool.shutdown(wait=True, cancel_futures=True)
        reset_pool.shutdown(wait=True, cancel_futures=True)
        step_pool.shutdown(wait=True)
        _close_all([slot.env for slot in active if slot.env is not None] or given)


def seeded_instruction(base_seed: int | str) -> Callable[[EpisodeSpec], str]:
    """Instructions drawn from ``Random(f"{base_seed}:{task}:{episode}")`` (the evaluation's rule)."""

    def draw(spec: EpisodeSpec) -> str:
        return spec.task.sample_instruction(random.Random(f"{base_seed}:{spec.task.name}:{spec.episode}"))

    return draw


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

    if not envs:
        return
    with ThreadPoolExecutor(max_workers=len(envs), thread_name_prefix="close") as pool:
        list(pool.map(close, envs))


def _start_envs(
    env_factory: Callable[[], Env], n: int, pool: ThreadPoolExecutor, max_retries: int = 0
) -> list[Env]:
    """``n`` envs started side by side (one in this thread, so that a backend can install its
    signal handlers). A start that raises :class:`EnvCrashed` is tried again, up to ``max_retries``
    times; if one still fails (or fails otherwise), the others are closed and the error raised."""
    if n <= 0:
        return []

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
