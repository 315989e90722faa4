"""Stage III and per-task fine-tuning trajectories from the scripted experts.

Two steps, so that the (history, chunk) layout is a cheap conversion, not a re-recording:

1. :func:`record_episodes` rolls the experts out (:func:`jvla.rollout.run_episodes`) and writes one
   row per episode to the ``episodes`` dataset: ``frames`` (JPEG bytes, one per step, the frame
   the expert saw), ``actions`` (the action-token text of each step, one
   ``<|reserved_special_token_178|>...179|>`` segment), ``task``, ``instruction``, ``seed``,
   ``success``, ``set`` (``stage3`` = the cross-task set, ``finetune`` = the per-task
   fine-tuning set, recorded from different seeds). Train / eval splits (whole episodes) are
   assigned when samples are built (:func:`assign_splits`).
2. :func:`samples` turns episodes into schema samples for a history ``H`` and a chunk ``c``;
   :func:`build` writes ``trajectory_c<c>`` (from the ``stage3`` episodes) and ``task_c<c>``
   (from the ``finetune`` episodes) for every chunk the variants use.

Sample layout (:mod:`jvla.prompts`, the official agent's): a sample at step ``t`` has the ``H``
previous *decisions* at steps ``t - c*H, ..., t - c`` (one model call per chunk at inference),
each a user turn with its frame and an assistant turn with that decision's ``c`` actions, then
the current frame; the target is the ``c`` actions ``t .. t+c-1`` (only full chunks: the last
``c - 1`` steps of an episode start no sample). Decisions before the episode start are padded
with the first frame and the null action. Labels are ``["trajectory", <task>, "h=<H>",
"c=<c>"]`` as in the released data; ``source`` holds ``task``, ``episode``, ``seed``, ``t``.

# NOTE(paper §4.2): the paper's Stage III data is human/agent gameplay (VPT contractors, JARVIS-1
# rollouts, synthetic GUI data, ~7.4M frames) and its fine-tuning set >100 trajectories per MCU
# task; ours are scripted-expert rollouts in the same game for both, with episode counts in
# ``data.trajectories``.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jvla.data.schema import normalise

if TYPE_CHECKING:
    from jvla.actions import ActionSpace
    from jvla.config import TrajectoryDataConfig
    from jvla.envs.tasks import Task

log = logging.getLogger(__name__)
SETS = {"stage3": ("trajectory", 10_000), "finetune": ("task", 20_000)}  # set -> (dataset prefix, seed base)


def token_strings(space: ActionSpace):
    """An :class:`~jvla.action_tokenizer.ActionTokenizer` that only needs to write strings."""
    from jvla.action_tokenizer import ActionTokenizer, action_token_strings

    return ActionTokenizer(space, {s: i for i, s in enumerate(action_token_strings(space))})


def encode_frame(frame, scale: float, quality: int) -> bytes:
    """HxWx3 uint8 -> JPEG bytes of the frame scaled by ``scale`` (area-averaged)."""
    from PIL import Image

    from jvla.data.schema import encode_image

    im = Image.fromarray(frame)
    if scale != 1.0:
        im = im.resize(
            (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BOX
        )
    return encode_image(im, quality=quality)


def episode_plan(tasks: list[Task], cfg: TrajectoryDataConfig, seed: int) -> list[dict]:
    """Every episode to record: task, set and seed (the two sets use disjoint seeds; a task's
    seeds depend on its index in ``tasks`` alone). The ``finetune`` set covers
    ``cfg.finetune_tasks`` (empty: every task)."""
    # NOTE(paper §4.2): fine-tuning data of every downstream task; the default narrows it to the
    # evaluated tasks (docs/deviations.md 40)
    tuned = set(cfg.finetune_tasks or (t.name for t in tasks))
    return [
        {"task": t.name, "set": set_name, "seed": seed * 100_000 + base + i * 1_000 + k}
        for set_name, (_, base) in SETS.items()
        for k, t in enumerate(tasks)
        if set_name == "stage3" or t.name in tuned
        for i in range(cfg.episodes_per_task if set_name == "stage3" else cfg.finetune_episodes_per_task)
    ]


def turns_yaw(actions_text: str, tok: Any) -> bool:
    """Whether any action of an action-token string (one step, or a chunk of steps) moves the
    camera's yaw (the mouse's x in a GUI) by at least one bin."""
    return any(abs(float(a["camera"][1])) > 1e-6 for a in tok.decode_text(actions_text).actions)


def assign_splits(meta: list[dict], fraction: float, seed: int) -> list[str]:
    """``train`` / ``eval`` per recorded episode (``meta``: dicts with ``set`` and ``task``).

    Per set, ``round(fraction * n)`` episodes (at least one when ``fraction > 0``) are held out,
    spread over the tasks round-robin and never a task's last episode, so every task keeps
    training data (the per-task fine-tune needs it); if no task has two episodes, one episode is
    held out anyway so an eval split exists."""
    splits = ["train"] * len(meta)
    rng = random.Random(seed)
    for set_name in sorted({m["set"] for m in meta}):
        idx = [i for i, m in enumerate(meta) if m["set"] == set_name]
        n_eval = round(fraction * len(idx))
        if fraction > 0 and len(idx) > 1:
            n_eval = max(1, n_eval)
        by_task: dict[str, list[int]] = {}
        for i in idx:
            by_task.setdefault(meta[i]["task"], []).append(i)
        order = sorted(by_task)
        rng.shuffle(order)
        for t in order:
            rng.shuffle(by_task[t])
        taken, progress = 0, True
        while taken < n_eval and progress:
            progress = False
            for t in order:
                if taken < n_eval and len(by_task[t]) > 1:
                    splits[by_task[t].pop()] = "eval"
                    taken += 1
                    progress = True
        if taken == 0 and n_eval > 0:
            splits[by_task[order[0]][0]] = "eval"
    return splits


def record_episodes(
    env_factory: Callable[[], Any],
    tasks: list[Task],
    cfg: TrajectoryDataConfig,
    space: ActionSpace,
    seed: int,
    scale: float,
    quality: int,
    stats: dict[str, Any] | None = None,
    envs: Sequence[Any] = (),
    slots: int = 1,
) -> Iterator[dict]:
    """Roll the experts out per :func:`episode_plan` through the rollout core
    (:func:`jvla.rollout.run_episodes`, the evaluation's crash handling); yield one ``episodes``
    row per episode as it finishes (failed ones too when ``success_only`` is False).

    ``env_factory`` starts a game with scripted experts (:class:`~jvla.envs.base.ScriptedExperts`);
    ``envs`` are games already started (handed over: closed at the end). The instruction of an
    episode is drawn from ``Random(seed)`` of its seed; ``cfg.max_steps`` (if set) replaces the
    tasks' step limits. ``stats`` (if given) is filled per task with ``episodes``, ``successes``,
    ``errors`` (the expert raised, or every game attempt crashed: the episode is dropped and
    recording goes on) and ``wall_s``."""
    import dataclasses

    from jvla.rollout import EpisodeSpec, ExpertPolicy, run_episodes

    tok = token_strings(space)
    plan = episode_plan(tasks, cfg, seed)
    by_name = {t.name: dataclasses.replace(t, max_steps=cfg.max_steps) if cfg.max_steps else t for t in tasks}
    specs = [EpisodeSpec(by_name[ep["task"]], i, ep["seed"]) for i, ep in enumerate(plan)]
    stats = stats if stats is not None else {}
    steps_ok: dict[str, list[int]] = {}
    episodes = run_episodes(
        specs, env_factory, functools.partial(ExpertPolicy, space), slots=slots, max_retries=3,
        instruction=lambda spec: spec.task.sample_instruction(random.Random(spec.seed)), record="full",
        envs=envs, desc="expert episodes",
    )  # fmt: skip
    for ep in episodes:
        task, meta = ep.spec.task, plan[ep.spec.episode]
        st = stats.setdefault(task.name, {"episodes": 0, "successes": 0, "errors": 0, "wall_s": 0.0})
        st["episodes"] += 1
        st["wall_s"] = round(st["wall_s"] + ep.wall_s, 1)
        if ep.gave_up or ep.status != "ok":
            why = ep.stats.get("error") or f"every game attempt crashed ({ep.infra_failures})"
            log.warning("expert %s seed %d: %s (episode dropped)", task.name, ep.spec.seed, why)
            st["errors"] += 1
            continue
        st["successes"] += int(ep.success)
        if ep.success:
            steps_ok.setdefault(task.name, []).append(ep.steps)
        if cfg.success_only and not ep.success:
            continue
        yield {
            "id": f"{task.name}-{ep.spec.seed}",
            "task": task.name,
            "category": task.category,
            "set": meta["set"],
            "split": "",  # assigned by assign_splits at build time
            "instruction": ep.instruction,
            "seed": ep.spec.seed,
            "success": ep.success,
            "steps": ep.steps,
            "frames": [encode_frame(f, scale, quality) for f in ep.frames],
            "actions": [tok.encode([a]) for a in ep.actions],
        }
    for name, st in stats.items():
        st |= step_quantiles(steps_ok.get(name, []))
        log.info(
            "expert %s: %d/%d successful (%d errors)", name, st["successes"], st["episodes"], st["errors"]
        )


def step_quantiles(steps: Sequence[int]) -> dict[str, float | None]:
    """``steps_p50``, ``steps_p95`` and ``steps_max`` of successful expert episodes (None when
    there are none): the evaluation's step limits follow ``steps_p95``
    (:class:`jvla.config.HorizonConfig`). Quantiles by linear interpolation (numpy's default)."""
    import numpy as np

    if not steps:
        return {"steps_p50": None, "steps_p95": None, "steps_max": None}
    a = np.asarray(steps, dtype=float)
    return {
        "steps_p50": round(float(np.percentile(a, 50)), 1),
        "steps_p95": round(float(np.percentile(a, 95)), 1),
        "steps_max": int(a.max()),
    }


def episode_features():
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "task": Value("string"),
            "category": Value("string"),
            "set": Value("string"),
            "split": Value("string"),
            "instruction": Value("string"),
            "seed": Value("int64"),
            "success": Value("bool"),
            "steps": Value("int64"),
            "frames": List(Value("binary")),
            "actions": List(Value("string")),
        }
    )


def save_episodes(rows, out_dir: str | Path):
    """Write ``episodes`` rows (any iterable, streamed) to ``out_dir`` as one ``Dataset``."""
    from jvla.data.store import save_one

    return save_one(rows, out_dir, episode_features())


def samples(episode: dict, history: int, chunk: int, stride: int, null_action: str) -> Iterator[dict]:
    """Schema samples of one ``episodes`` row for history ``H`` and chunk ``c`` (module docstring)."""
    from jvla import prompts

    frames, acts = episode["frames"], episode["actions"]
    T = len(acts)
    for t in range(0, T - chunk + 1, stride):
        past_f, past_a = [], []
        for k in range(history, 0, -1):
            d = t - k * chunk
            if d < 0:
                past_f.append(frames[0])
                past_a.append(null_action)
            else:
                past_f.append(frames[d])
                past_a.append("".join(acts[d : d + chunk]))
        msgs = prompts.training_messages(episode["instruction"], past_a, "".join(acts[t : t + chunk]))
        yield normalise(
            {
                "id": f"{episode['id']}-{t:04d}",
                "label": ["trajectory", episode["task"], f"h={history}", f"c={chunk}"],
                "conversations": msgs,
                "image_bytes": [*past_f, frames[t]],
                "source": {
                    "task": episode["task"],
                    "episode": episode["id"],
                    "seed": episode["seed"],
                    "t": t,
                    "category": episode["category"],
                    "set": episode["set"],
                },
            }
        )


def oversample(rows: Iterable[dict], times: int, tok: Any) -> Iterator[dict]:
    """``rows`` (schema samples of :func:`samples`) with every row whose target actions turn the
    camera's yaw (:func:`turns_yaw`) repeated ``times`` times in a row, copies sharing the id
    with a ``#<k>`` suffix for k >= 1 (the trainer shuffles; eval splits are never oversampled)."""
    # NOTE(paper): the paper trains on its data as collected; weighting the rare turn is ours,
    # measured by the learning study (docs/deviations.md 38).
    for row in rows:
        yield row
        if times > 1 and turns_yaw(target_text(row), tok):
            yield from ({**row, "id": f"{row['id']}#{k}"} for k in range(1, times))


def target_text(row: dict) -> str:
    """The action-token text of a schema row's last assistant turn (its target actions)."""
    return next(c["text"] for c in row["conversations"][-1]["content"] if c["type"] == "text")


def chunks_of(params) -> list[int]:
    """The chunk lengths to build: ``data.trajectories.chunks``, else every ``apt_chunk`` and
    ``ft_chunk`` of the variants (Table 4 needs 1 and 3)."""
    if params.data.trajectories.chunks:
        return sorted(set(params.data.trajectories.chunks))
    cs = {v.apt_chunk for v in params.variants.values()} | {v.ft_chunk for v in params.variants.values()}
    return sorted(cs or {1})


def build(
    episodes_ds: Any,
    cfg: TrajectoryDataConfig,
    chunks: list[int],
    space: ActionSpace,
    out_dir: str | Path,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``trajectory_c<c>`` and ``task_c<c>`` for each ``c`` in ``chunks`` into ``out_dir``
    (splits by :func:`assign_splits`: a cheap re-split or re-chunk needs no new rollouts)."""
    from jvla.data.store import save

    tok = token_strings(space)
    null = tok.encode([space.null_env_action()])
    meta = episodes_ds.select_columns(["set", "task"]).to_list()
    for m, sp in zip(meta, assign_splits(meta, cfg.eval_fraction, seed), strict=True):
        m["split"] = sp
    out = {}
    for set_name, (prefix, _) in SETS.items():
        for c in chunks:

            def gen(split: str, set_name=set_name, c=c) -> Iterator[dict]:
                for i, m in enumerate(meta):
                    if m["set"] == set_name and m["split"] == split:
                        rows = samples(episodes_ds[i], cfg.history, c, cfg.stride, null)
                        yield from (rows if split == "eval" else oversample(rows, cfg.oversample_turns, tok))

            out[f"{prefix}_c{c}"] = save(
                {"train": gen("train"), "eval": gen("eval")}, Path(out_dir) / f"{prefix}_c{c}"
            )
    return out


def summary(episodes_ds: Any, eval_fraction: float, seed: int) -> dict[str, Any]:
    """Episode counts per set / split / task and step totals (for the card)."""
    rows = episodes_ds.select_columns(["task", "set", "steps", "success"]).to_list()
    for r, sp in zip(rows, assign_splits(rows, eval_fraction, seed), strict=True):
        r["split"] = sp
    out: dict[str, Any] = {}
    for r in rows:
        s = out.setdefault(r["set"], {"episodes": {}, "steps": 0, "tasks": {}})
        s["episodes"][r["split"]] = s["episodes"].get(r["split"], 0) + 1
        s["steps"] += r["steps"]
        s["tasks"][r["task"]] = s["tasks"].get(r["task"], 0) + 1
    return json.loads(json.dumps(out, sort_keys=True))
