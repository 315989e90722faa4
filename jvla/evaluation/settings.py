"""The pipeline's evaluation settings: which tasks, which model, which policy; resumable runs.

:func:`run_setting` evaluates one ``evaluate.settings`` entry of ``params.yaml``: the tasks of its
entries (:func:`select_tasks`, with the step limits of ``evaluate``), the final model of its
variant, the VLA policy (:func:`jvla.agent.make_policy`) and the executor of ``evaluate``. Its
results folder persists between runs and is kept only while :func:`fingerprint` (model files,
parameters read, code run) is unchanged, so an interrupted run resumes and a changed one starts
over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jvla.agent.policy import make_policy
from jvla.envs.tasks import Task
from jvla.evaluation.executors import evaluate
from jvla.evaluation.summary import summarise
from jvla.rollout import plan_episodes
from jvla.stages import model_dir as model_dir_of
from jvla.variants import final_run

log = logging.getLogger(__name__)


def select_tasks(params: Any, entries: Sequence[str], data_results: Path | None = None) -> list[Task]:
    """The tasks of ``entries`` (:func:`setting_tasks`), each with its step limit from
    :meth:`EvaluateConfig.step_limit` (``evaluate.horizon`` and the experts' step quantiles of
    :func:`expert_steps_p95`)."""
    from jvla.envs.tasks import setting_tasks

    ev = params.evaluate
    chosen = setting_tasks(params, entries)
    p95 = expert_steps_p95(data_results) if ev.horizon.expert_factor else {}
    return [
        dataclasses.replace(t, max_steps=ev.step_limit(t.category, t.max_steps, p95.get(t.name)))
        for t in chosen
    ]


def expert_steps_p95(data_results: Path | None = None) -> dict[str, float]:
    """Task -> the 95th percentile of its successful expert episodes' steps, as the data stage
    measured it (``<data_results>/episodes.json``, default ``results/data``). Tasks without a
    measurement are absent (their limit falls back to ``evaluate.horizon.min_steps``)."""
    from jvla.paths import stage_dir

    path = Path(data_results or stage_dir("data")) / "episodes.json"
    if not path.exists():
        log.warning("%s: missing; step limits fall back to evaluate.horizon.min_steps", path)
        return {}
    experts = json.loads(path.read_text()).get("experts", {})
    return {t: float(v["steps_p95"]) for t, v in experts.items() if v.get("steps_p95") is not None}


def run_setting(params: Any, name: str, models_root: Path | None = None, out_root: Path | None = None,
                progress: bool = True, data_results: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Evaluate one ``evaluate.settings`` entry; resumable; returns its summary.

    ``data_results``: where the data stage's cards are (the experts' step quantiles that set the
    step limits; default ``results/data``).

    Writes ``<out_root>/<name>/episodes.jsonl`` (appended per episode), ``summary.json`` (per
    task, per category, the agent's actions/s) and the videos of the first episodes under
    ``<out_root>/<name>/videos/``.
    """
    import functools

    from jvla.envs.factory import make_env
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
    model_dir = model_dir_of(final_run(setting.variant), models_root) / "model"
    chunk = variant.ft_chunk
    execute = setting.inference_chunk or chunk
    if execute > chunk:
        raise ValueError(
            f"evaluate.settings.{name}: inference_chunk {execute} > the variant's ft_chunk {chunk}"
        )
    history = params.data.trajectories.history  # the prompt layout the model was trained on
    tasks = select_tasks(params, setting.tasks, data_results)
    _keep_or_clear(out, fingerprint(params, name, model_dir, limits={t.name: t.max_steps for t in tasks}))
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


def fingerprint(
    params: Any, name: str, model_dir: Path, root: Path | None = None, limits: dict[str, int] | None = None
) -> dict[str, str]:
    """What the episodes of setting ``name`` depend on, as sha256 digests: the model's files,
    every parameter the rollouts read (with ``limits``, the tasks' step limits, which also
    follow the experts' measured steps), and the source of the code the evaluation runs (the import
    closure of the evaluate stage, the same files ``dvc.yaml`` lists as its code deps: editing the
    policy loop re-evaluates, editing a report module does not). Episodes recorded under another
    fingerprint are stale. ``root``: the project whose code is hashed (default this one)."""
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
        "history": params.data.trajectories.history, "step_limits": limits or {},
    }  # fmt: skip
    plain = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in used.items()}
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return {
        "model_sha256": h.hexdigest(),
        "params_sha256": hashlib.sha256(blob).hexdigest(),
        "code_sha256": code_digest(root),
    }


def code_digest(root: Path | None = None) -> str:
    """sha256 of what the evaluate stage runs: its notebook, every file of the notebook's import
    closure and the task YAMLs (the code deps ``dvc.yaml`` lists for it), read under ``root``."""
    from jvla import closure
    from jvla.paths import PROJECT_ROOT
    from jvla.stages import STAGES

    root = Path(root or PROJECT_ROOT)
    nb = STAGES["evaluate"].notebook
    files = [nb, *closure.source_files(closure.notebook_modules(nb))]
    files += sorted(p.relative_to(root).as_posix() for p in (root / "tasks").rglob("*.yaml"))
    return closure.digest(files, root=root)


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
