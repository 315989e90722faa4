"""The data stage in one call: :func:`build_all` generates every dataset and writes the cards.

Output layout under ``out_dir`` (each a ``save_to_disk`` folder; the pipeline's ``data/``)::

    registry.json        the game's registry dump the knowledge QA came from (Minetest)
    knowledge/           Stage I QA              train (dialogues) / eval (Table 5 categories)
    frames/              captured frames + annotations (intermediate; columns id, scene, image,
                         annotation JSON)
    vision/              Stage II captions + VQA train / eval (Table 6 categories)
    grounding/           Stage II points         train / eval (Table 7: gui / embodied)
    episodes/            expert episodes (intermediate; one row per episode)
    trajectory_c<k>/     Stage III samples, chunk k (cross-task set)     train / eval
    task_c<k>/           per-task fine-tuning samples, chunk k           train / eval
    vla_sft/, vlp_<kind>/  the released hub data, when ``data.released`` points at local copies

Cards: ``<results_dir>/<name>.json`` and ``.md`` for knowledge, vision, grounding, episodes and
every trajectory_c / task_c dataset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jvla.config import Params, to_dict

log = logging.getLogger(__name__)
KINDS = ("knowledge", "vision", "trajectories", "released")


def frame_features():
    from datasets import Features, Value

    return Features(
        {
            "id": Value("string"),
            "scene": Value("string"),
            "image": Value("binary"),
            "annotation": Value("string"),
        }
    )


def save_frames(pairs: Iterable[tuple[Any, dict]], out_dir: str | Path, scale: float, quality: int):
    """``(frame, annotation)`` pairs -> the ``frames`` dataset (annotations stay in env pixels)."""
    from jvla.data.store import save_one
    from jvla.data.trajectories import encode_frame

    rows = (
        {
            "id": f"{ann['scene']}-{ann['step']:05d}",
            "scene": ann["scene"],
            "image": encode_frame(img, scale, quality),
            "annotation": json.dumps(ann, sort_keys=True),
        }
        for img, ann in pairs
    )
    return save_one(rows, out_dir, frame_features())


def tasks_for(env: Any, params: Params):
    """The tasks the trajectories cover: the backend's suite (all tasks in a synthetic world)."""
    from jvla.envs.base import SyntheticWorld
    from jvla.envs.tasks import load_tasks

    names = params.data.trajectories.tasks or None
    if isinstance(env, SyntheticWorld):
        return load_tasks(names=names)
    backend = params.env.backend
    return load_tasks(suite=backend if backend == "minetest" else "paper", backend=backend, names=names)


def build_all(
    params: Params,
    out_dir: str | Path,
    env_factory: Callable[[], Any] | None = None,
    results_dir: str | Path | None = None,
    registry: dict | None = None,
    kinds: Iterable[str] = KINDS,
) -> dict[str, Any]:
    """Generate the datasets of ``kinds`` into ``out_dir`` and write their cards.

    Args:
        env_factory: builds the env (default :func:`jvla.envs.factory.make_env`); called once, closed at
            the end. Knowledge needs its ``dump_registry()`` unless ``registry`` is given.
        results_dir: where the cards go (default ``results/data``).
        registry: a registry dump to use instead of the env's (tests, FakeEnv).
        kinds: a subset of ``knowledge``, ``vision`` (vision + grounding), ``trajectories``,
            ``released``.

    Returns:
        ``{"cards": {name: card}, "wall_s": {step: seconds}, "experts": {task: {episodes,
        successes, errors, wall_s}}}``.
    """
    from jvla.actions import ActionSpace
    from jvla.data import knowledge, trajectories, vision
    from jvla.data.cards import describe, write_card
    from jvla.envs.base import Registry
    from jvla.paths import stage_dir

    kinds = set(kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"kinds: unknown {sorted(unknown)}; expected a subset of {KINDS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = Path(results_dir) if results_dir is not None else stage_dir("data")
    d, seed = params.data, params.seed
    space = ActionSpace.from_config(params.action)
    cards: dict[str, Any] = {}
    wall: dict[str, float] = {}

    def card(name: str, dd: Any, config: Any, extra: dict | None = None) -> None:
        cards[name] = write_card(name, out / name, describe(dd), to_dict(config), seed, results, extra)

    need_env = bool(kinds & {"vision", "trajectories"}) or (
        "knowledge" in kinds and d.knowledge.source == "minetest" and registry is None
    )
    if need_env:
        if env_factory is None:
            from jvla.envs.factory import make_env

            env_factory = lambda: make_env(params)  # noqa: E731
        env = env_factory()
    else:
        env = None
    with contextlib.ExitStack() as stack:
        if env is not None:
            stack.callback(env.close)
        if "knowledge" in kinds:
            t0 = time.monotonic()
            if d.knowledge.source == "minetest" and registry is None:
                if isinstance(env, Registry):
                    registry = env.dump_registry()
                elif (out / "registry.json").exists():  # e.g. a FakeEnv run after a game run
                    registry = json.loads((out / "registry.json").read_text())
                else:
                    raise ValueError(
                        "data.knowledge.source=minetest needs the game's registry: run with the Minetest "
                        "backend, pass registry=, or put a registry.json dump in the output folder"
                    )
            if registry is not None:
                (out / "registry.json").write_text(json.dumps(registry, sort_keys=True))
            dd = knowledge.build(d.knowledge, registry, out / "knowledge", seed)
            wall["knowledge"] = time.monotonic() - t0
            card("knowledge", dd, d.knowledge)
        if "vision" in kinds:
            from tqdm.auto import tqdm

            from jvla.data.frames import capture

            t0 = time.monotonic()
            tasks = tasks_for(env, params)
            bar = tqdm(total=d.capture.scenes * d.capture.frames_per_scene, desc="frames", unit="frame")
            frames = save_frames(
                capture(env, d.capture, space, seed, tasks, progress=bar.update),
                out / "frames",
                d.image_scale,
                d.jpeg_quality,
            )
            bar.close()
            wall["capture"] = time.monotonic() - t0
            t0 = time.monotonic()
            dds = vision.build(frames, d.vision, d.grounding, d.capture.eval_fraction, out, seed)
            wall["vision"] = time.monotonic() - t0
            for name, dd in dds.items():
                card(
                    name,
                    dd,
                    {"capture": to_dict(d.capture), name: to_dict(getattr(d, name))},
                    {"frames": len(frames), "scenes": len(set(frames["scene"]))},
                )
        if "trajectories" in kinds:
            t0 = time.monotonic()
            tasks = tasks_for(env, params)
            expert_stats: dict[str, Any] = {}
            # the game started above is handed over (the rollout core closes it) and replaced by
            # a fresh one from env_factory if it crashes
            rows = trajectories.record_episodes(
                env_factory, tasks, d.trajectories, space, seed, d.image_scale, d.jpeg_quality,
                expert_stats, envs=[env], slots=d.trajectories.slots,
            )  # fmt: skip
            episodes = trajectories.save_episodes(rows, out / "episodes")
            wall["episodes"] = time.monotonic() - t0
            summ = trajectories.summary(episodes, d.trajectories.eval_fraction, seed)
            experts = {
                k: {kk: vv for kk, vv in v.items() if kk != "wall_s"} for k, v in sorted(expert_stats.items())
            }
            write_card(
                "episodes",
                out / "episodes",
                summ,
                to_dict(d.trajectories),
                seed,
                results,
                {"tasks": [t.name for t in tasks], "experts": experts},
            )
            t0 = time.monotonic()
            dds = trajectories.build(
                episodes, d.trajectories, trajectories.chunks_of(params), space, out, seed
            )
            wall["trajectories"] = time.monotonic() - t0
            for name, dd in dds.items():
                card(name, dd, d.trajectories)
    if "released" in kinds and (d.released.vla_sft or d.released.vlp):
        from jvla.data import released

        t0 = time.monotonic()
        for name, dd in released.build(d.released, out).items():
            card(name, dd, d.released)
        wall["released"] = time.monotonic() - t0
    log.info("data stage wall time (s): %s", {k: round(v, 1) for k, v in wall.items()})
    return {"cards": cards, "wall_s": wall, "experts": expert_stats if "trajectories" in kinds else {}}


def _main(argv: list[str] | None = None) -> int:
    """``python -m jvla.data.build [--profile P] [--out DIR] [--kinds ...] [--fake]``."""
    import argparse

    from jvla import config
    from jvla.paths import DATA_DIR

    ap = argparse.ArgumentParser(
        description="Generate the post-training datasets and eval sets (jvla data stage)."
    )
    ap.add_argument("--profile", default=None, help="params profile (default: the file's)")
    ap.add_argument("--out", default=str(DATA_DIR), help="output folder of the datasets")
    ap.add_argument("--results", default=None, help="folder of the cards (default results/data)")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    ap.add_argument("--fake", action="store_true", help="use the in-process FakeEnv (no game)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = config.load(profile=args.profile)
    factory = None
    if args.fake:
        from jvla.envs.fake import FakeEnv

        factory = lambda: FakeEnv(width=params.env.width, height=params.env.height, seed=params.seed)  # noqa: E731
    res = build_all(params, args.out, env_factory=factory, results_dir=args.results, kinds=args.kinds)
    print(json.dumps({"wall_s": {k: round(v, 1) for k, v in res["wall_s"].items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
