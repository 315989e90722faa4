"""The learning study: what the embedded agents reach for the data, steps and model size spent.

One *probe* is the pipeline in miniature on a fixed subset of tasks that covers the four
categories: expert demonstrations from the game (:func:`jvla.data.build.build_all`, trajectories
only), the base build, Stage III, the task fine-tune (:func:`jvla.training.run_named`, the "IL"
path of Table 1), an evaluation in the game (:func:`jvla.evaluation.run_setting`) and the
perception diagnostics on held-out expert episodes (:func:`jvla.diagnostics.action_accuracy`).
A probe is a name plus params overrides on top of ``params.yaml`` (the default profile), so every
lever is a key a user can set in the pipeline too.

Demonstrations are recorded once per data key (the overrides that change what the experts do or
see) and shared by the probes that use them; the trajectory datasets are rebuilt per history and
chunk from the recorded episodes (cheap). Everything a probe writes lives under its work folder::

    <work>/data/<data key>/            episodes + datasets shared by probes
    <work>/probes/<name>/models/...    base, stage3, finetune models
    <work>/probes/<name>/evaluate/...  the evaluation setting's episodes and summary
    <work>/probes/<name>/probe.json    the record (also appended to the study's runs.jsonl)

Success rates carry Wilson 95 % intervals (:func:`jvla.stats.wilson_interval`).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import hashlib
import itertools
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The keys whose values change the recorded demonstrations (anything else reuses them).
DATA_KEYS = ("env", "data.trajectories.episodes_per_task", "data.trajectories.finetune_episodes_per_task",
             "data.trajectories.tasks", "data.trajectories.max_steps", "seed")  # fmt: skip
# ... and those that change Stage II's captured frames and their questions (ActVLP probes only).
VISION_KEYS = ("env", "data.capture", "data.vision", "data.grounding", "data.image_scale", "seed")
# The training runs of a probe's path, in order (jvla.variants names; {b} = the backbone): IL is
# Table 1's "IL" row (Stage III + fine-tune), ActVLP adds Stages I and II before Stage III.
RUN_NAMES = {
    "il": ("base/{b}", "stage3/{b}/none/c1", "finetune/il"),
    "actvlp": ("base/{b}", "post/{b}/knowledge", "post/{b}/vlp", "stage3/{b}/vlp/c1", "finetune/actvlp"),
}
SETTING = "main_il"  # the evaluation setting a probe plays (params.yaml's, its tasks overridden)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict ``base`` updated by ``over`` (dicts merge key by key; anything else replaces)."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        out[k] = (
            merge(out[k], v)
            if isinstance(v, Mapping) and isinstance(out.get(k), Mapping)
            else copy.deepcopy(v)
        )
    return out


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    for k in dotted.split("."):
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def data_key(overrides: Mapping[str, Any], keys: tuple[str, ...] = DATA_KEYS) -> str:
    """A short digest of the overrides that change the demonstrations (:data:`DATA_KEYS`), or
    Stage II's frames (``keys`` = :data:`VISION_KEYS`)."""
    blob = json.dumps({k: _get(overrides, k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def probe_overrides(
    tasks: list[str], over: Mapping[str, Any], episodes: int, path: str = "il"
) -> dict[str, Any]:
    """The overrides of one probe: its own ``over`` on top of the study's fixed part (the task
    subset in data and in an evaluation setting of the ``path``'s variant, ``il`` or ``actvlp``,
    with ``episodes`` per task). The fine-tune set covers the whole subset, and the turning rows
    are weighted by :func:`run_probe`'s ``oversample_turns`` alone (so that a probe's name keeps
    its meaning when the pipeline's defaults move)."""
    fixed = {
        "data": {"trajectories": {"tasks": list(tasks), "finetune_tasks": [], "oversample_turns": 1}},
        "evaluate": {
            "episodes": max(episodes, 1),
            "settings": {SETTING: {"variant": path, "tasks": list(tasks)}},
        },
    }
    return merge(fixed, over)


def run_probe(name: str, tasks: list[str], over: Mapping[str, Any], work: Path, episodes: int = 10,
              trainable: str | None = None, diag_limit: int = 400, dagger_from: str | None = None,
              dagger_episodes: int = 0, path: str = "il", refit_from: str | None = None,
              extra_stage2: Callable[[], Iterable[dict]] | None = None,
              extra_stage3: Callable[[], Iterable[dict]] | None = None, oracle: float | None = None,
              eval_from: str | None = None, oversample_turns: int = 1,
              dart: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Run one probe end to end (module docstring); returns its record and writes ``probe.json``.

    Args:
        name: the probe's name (its folder).
        tasks: the task subset.
        over: params overrides (nested dict) of this probe.
        work: the study's work folder.
        episodes: evaluation episodes per task; 0 = no evaluation (a diagnostics-only probe).
        trainable: ``"all"`` unfreezes the vision tower in Stage III and the fine-tune (a
            measured departure from the paper's rule, :data:`jvla.training.runner.TRAINABLE`);
            None keeps the paper's rule.
        diag_limit: held-out samples for the diagnostics.
        dagger_from: another (finished) probe whose IL model starts one DAgger round of
            ``dagger_episodes`` per task (:func:`dagger_round`); this probe then reports the
            model after that round (its own overrides must match the other probe's).
        refit_from: another (finished) IL probe whose datasets, base and Stage III model this
            probe reuses; only the fine-tune reruns, with this probe's overrides (e.g. more
            fine-tune steps on a DAgger round's data, without playing the round again).
        path: ``il`` (Stage III + fine-tune) or ``actvlp`` (Stages I and II first, on the
            knowledge set and on Stage II frames captured once per :data:`VISION_KEYS` digest
            under ``<work>/vision/``; :data:`RUN_NAMES`).
        extra_stage2: (ActVLP) more Stage II vision samples (normalised rows) added to the
            vision train split; the eval split is unchanged.
        extra_stage3: more samples (normalised rows, e.g. vision questions) added to Stage III's
            train split beside the demonstrations (co-training, a departure from the paper's
            Stage III); the eval split and the diagnostics stay on the demonstrations.
        oracle: the perception oracle (:mod:`jvla.envs.oracle`): demonstrations are recorded with
            the target's marker in every frame (a separate recording, ``<data key>-marker``) and
            the evaluation plays with the marker at this accuracy (1.0 = always at the target).
            None = plain frames.
        eval_from: another (finished) probe whose datasets and models this probe reuses as they
            are; only the evaluation runs, with this probe's ``oracle`` (the diagnostics are the
            other probe's, copied).
        oversample_turns: rows whose current action turns the camera's yaw appear this many
            times in Stage III's and the fine-tune's train splits (the pipeline's
            :func:`jvla.data.trajectories.oversample`; :func:`turning_rows` lists them; a weight on
            the rare decisive action, applied to the data; 1 = as recorded). The diagnostics on
            training frames stay on the demonstrations as recorded.
        dart: record the demonstrations with noise injected into the experts' executed yaw
            (:mod:`jvla.envs.perturb`) at this per-step probability (a recording of its own,
            ``<data key>[-marker]-dart<prob>``); the labels stay the experts' intentions. None =
            no noise.

    A finished probe (its ``probe.json`` exists) is returned as recorded; one recorded with
    ``episodes=0`` is evaluated on its trained models when called with ``episodes > 0`` (so a
    probe can train while another one plays, and play later on a quiet machine).
    """
    from jvla import config
    from jvla.evaluation.settings import select_tasks

    pdir, work = Path(work) / "probes" / name, Path(work)
    rec_path = pdir / "probe.json"
    if path not in RUN_NAMES or ((dagger_from or refit_from) and path != "il"):
        raise ValueError(f"path={path!r}: expected one of {list(RUN_NAMES)} (DAgger, refit: il only)")
    ov = probe_overrides(tasks, over, episodes, path)
    params = config.load(overrides=ov)
    # demonstrations are shared per data key; the oracle's marked frames are a recording of their own
    suffix = ("-marker" if oracle is not None else "") + (f"-dart{dart:g}" if dart is not None else "")
    ddir = work / "data" / (data_key(ov) + suffix)
    if rec_path.exists():
        rec = json.loads(rec_path.read_text())
        if rec.get("per_task") or episodes == 0:
            return rec
        # trained diagnostics-only so far: play it now
        return evaluate_probe(rec, params, pdir, ddir)
    rec: dict[str, Any] = {"name": name, "tasks": list(tasks), "overrides": ov,
                           "trainable": trainable or "paper", "path": path, "oracle": oracle, "dart": dart}  # fmt: skip
    if eval_from:  # the other probe's datasets and models as they are; only the evaluation runs
        rec.update(_reuse(work / "probes" / eval_from, pdir, "eval_from"), wall_s={})
        return evaluate_probe(rec, params, pdir, ddir) if episodes > 0 else rec
    wall: dict[str, float] = {}

    t0 = time.monotonic()
    rec.update(_demonstrations(params, ddir, oracle, dart))
    data = pdir / "data"
    if not (dagger_from or refit_from):  # a DAgger round or a refit brings its datasets along
        rec.update(
            _datasets(params, ov, work, ddir, data, path, extra_stage2, extra_stage3, oversample_turns)
        )
    wall["data_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    rec.update(
        _train(
            params, tasks, work, pdir, ddir, path, trainable, dagger_from, dagger_episodes, refit_from, oracle
        )
    )
    wall["train_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    rec.update(_diagnose(params, pdir, path, diag_limit))
    wall["diag_s"] = time.monotonic() - t0
    log.info("%s: kill turn accuracy held-out / training frames %s / %s", name,
             kill_turn_accuracy(rec["diagnostics"]), kill_turn_accuracy(rec["diagnostics_train"]))  # fmt: skip

    # -- evaluation in the game (episodes=0: a diagnostics-only probe, evaluated by a later call)
    rec["step_limits"] = {t.name: t.max_steps for t in select_tasks(params, list(tasks), ddir / "cards")}
    rec["wall_s"] = {k: round(v, 1) for k, v in wall.items()}
    rec["per_task"] = []
    if episodes > 0:
        return evaluate_probe(rec, params, pdir, ddir)
    rec_path.write_text(json.dumps(rec, indent=1, sort_keys=True, default=str) + "\n")
    return rec


def _reuse(src: Path, pdir: Path, how: str) -> dict[str, Any]:
    """``eval_from``: link ``pdir``'s data and models to those of the finished probe ``src``;
    returns the parts of its record that describe them (demonstrations, diagnostics, losses)."""
    done = json.loads(_finished(src, how).read_text())
    _share(src, pdir, ("data", "models"))
    keep = ("experts", "labels", "episodes", "diagnostics", "diagnostics_train", "train_loss", "step_limits")
    return {**{k: done[k] for k in keep if k in done}, how: src.name}


def _finished(src: Path, how: str) -> Path:
    """The record of the finished probe folder ``src`` that the keyword ``how`` names; a clear
    error when that probe has not run."""
    if not (src / "probe.json").exists():
        raise FileNotFoundError(f"{how}={src.name!r}: run that probe first ({src})")
    return src / "probe.json"


def _demonstrations(
    params: Any, ddir: Path, oracle: float | None, dart: float | None = None
) -> dict[str, Any]:
    """Record the experts' demonstrations into ``ddir`` once (the knowledge set too; two study
    processes may want the same folder: a lock), with the oracle's marker when ``oracle`` is
    set and yaw noise in the executed actions at per-step probability ``dart`` when set
    (:mod:`jvla.envs.perturb`); returns the experts' stats, the label shares
    (:func:`label_stats`) and the splits."""
    from jvla.actions import ActionSpace
    from jvla.data.build import build_all
    from jvla.data.store import load
    from jvla.envs import oracle as oracle_env
    from jvla.envs import perturb

    ddir.mkdir(parents=True, exist_ok=True)
    with open(ddir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (ddir / "cards" / "episodes.json").exists():
            games = None if oracle is None else functools.partial(oracle_env.factory, params, 1.0)
            if dart is not None:
                games = functools.partial(perturb.factory, params, dart, inner=games)
            build_all(params, ddir, env_factory=games, results_dir=ddir / "cards",
                      kinds=("knowledge", "trajectories"))  # fmt: skip
    cards = json.loads((ddir / "cards" / "episodes.json").read_text())
    return {"experts": cards.get("experts", {}), "episodes": cards.get("splits", {}),
            "labels": label_stats(load(ddir / "episodes"), ActionSpace.from_config(params.action))}  # fmt: skip


def _datasets(params: Any, ov: Mapping[str, Any], work: Path, ddir: Path, data: Path, path: str,
              extra_stage2: Callable[[], Iterable[dict]] | None,
              extra_stage3: Callable[[], Iterable[dict]] | None, oversample_turns: int = 1) -> dict[str, Any]:  # fmt: skip
    """A fresh ``data`` folder of one probe: the knowledge set and episodes of ``ddir`` (linked),
    the trajectory datasets built from them (chunk 1), their turning rows repeated
    ``oversample_turns`` times (:func:`jvla.data.trajectories.oversample`, the pipeline's weighting:
    copies carry the row id with ``#<k>``), the ``extra_stage3`` co-training rows,
    and for ActVLP Stage II's frames (captured once per :data:`VISION_KEYS` digest under
    ``work/vision``) plus ``extra_stage2``. Returns the extras' counts and the vision splits."""
    from jvla.actions import ActionSpace
    from jvla.data import trajectories
    from jvla.data.build import build_all
    from jvla.data.store import load

    out: dict[str, Any] = {}
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    for k in ("knowledge", "episodes"):
        (data / k).symlink_to((ddir / k).resolve(), target_is_directory=True)
    trajectories.build(load(ddir / "episodes"), params.data.trajectories, [1],
                       ActionSpace.from_config(params.action), data, params.seed)  # fmt: skip
    if oversample_turns > 1 and extra_stage3 is not None:
        raise ValueError("oversample_turns and extra_stage3: one Stage III lever per probe")
    if oversample_turns > 1:  # the pipeline's weighting (data.trajectories.oversample_turns), on the
        tok = trajectories.token_strings(ActionSpace.from_config(params.action))  # probe's own count;
        for name in ("trajectory_c1", "task_c1"):  # the demonstrations as recorded stay beside, *_demos_c1
            plain = data / name.replace("_c1", "_demos_c1")
            (data / name).rename(plain)
            weigh = functools.partial(trajectories.oversample, times=oversample_turns, tok=tok)
            out[f"oversampled_{name}"] = _rewrite_train(plain, weigh, data / name)
    # NOTE(paper §3.1): Stage III trains on trajectories only; extra_stage3 mixes other samples
    # in (co-training, a study lever; docs/deviations.md 36).
    if extra_stage3 is not None:
        (data / "trajectory_c1").rename(data / "trajectory_demos_c1")
        out["extra_stage3"] = _add_rows(data / "trajectory_demos_c1", extra_stage3(), data / "trajectory_c1")
    if path == "actvlp":
        vdir = work / "vision" / data_key(ov, VISION_KEYS)
        vdir.mkdir(parents=True, exist_ok=True)
        with open(vdir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (vdir / "cards" / "grounding.json").exists():
                build_all(params, vdir, results_dir=vdir / "cards", kinds=("vision",))
        for k in ("vision", "grounding"):
            (data / k).symlink_to((vdir / k).resolve(), target_is_directory=True)
        if extra_stage2 is not None:
            (data / "vision").unlink()
            out["extra_stage2"] = _add_rows(vdir / "vision", extra_stage2(), data / "vision")
        out["vision_data"] = {k: json.loads((vdir / "cards" / f"{k}.json").read_text())["splits"]
                              for k in ("vision", "grounding")}  # fmt: skip
    return out


def turning_rows(split: Any, space: Any) -> list[dict]:
    """The rows of a trajectory dataset ``split`` whose current action (the last assistant turn:
    the frame's label; earlier turns are the history's) moves the camera's yaw, in order."""
    from jvla.data.trajectories import target_text, token_strings, turns_yaw

    tok = token_strings(space)
    return [r for r in split if turns_yaw(target_text(r), tok)]


def _train(params: Any, tasks: list[str], work: Path, pdir: Path, ddir: Path, path: str,
           trainable: str | None, dagger_from: str | None, dagger_episodes: int,
           refit_from: str | None, oracle: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Train the probe's models into ``pdir/models``: the runs of :data:`RUN_NAMES` ``[path]``,
    or one DAgger round on the probe ``dagger_from`` (its learner plays with the oracle's marker
    at ``oracle`` accuracy, if set), or only the fine-tune on the data of the probe
    ``refit_from``; ``trainable`` (if set) unfreezes the vision tower in Stage III and the
    fine-tune for the call. Returns the DAgger round's counts or the refit's source, and the
    final losses of the runs after the base (``train_loss``)."""
    from jvla.envs.tasks import load_tasks
    from jvla.training import run_named, runner

    out: dict[str, Any] = {}
    data, models = pdir / "data", pdir / "models"
    saved = dict(runner.TRAINABLE)
    try:
        if trainable:
            runner.TRAINABLE.update({"stage3": trainable, "finetune": trainable})
        src = work / "probes" / (dagger_from or refit_from or "")
        if dagger_from or refit_from:
            _finished(src, "dagger_from" if dagger_from else "refit_from")
        if dagger_from:
            tasks_ = load_tasks(backend=params.env.backend, names=list(tasks))
            with marked_games(params, oracle):
                out["dagger"] = dagger_round(params, src / "data", src / "models", tasks_, dagger_episodes,
                                             pdir, ddir / "cards")  # fmt: skip
            out["dagger"]["from"] = dagger_from
        elif refit_from:
            shared = ("data/knowledge", "data/trajectory_c1", "data/task_c1", "models/base", "models/stage3")
            _share(src, pdir, shared)
            run_named("finetune/il", params, data_root=data, models_root=models)
            out["refit_from"] = refit_from
        else:
            for r in RUN_NAMES[path]:
                run_named(r.format(b=params.model.backbone), params, data_root=data, models_root=models)
    finally:
        runner.TRAINABLE.clear()
        runner.TRAINABLE.update(saved)
    runs = (r.format(b=params.model.backbone) for r in RUN_NAMES[path][1:])
    out["train_loss"] = {run: _final_losses(models / run) for run in runs}
    return out


def _diagnose(params: Any, pdir: Path, path: str, limit: int) -> dict[str, Any]:
    """The fine-tuned model's teacher-forced accuracies (:func:`jvla.diagnostics.action_accuracy`)
    on ``limit`` held-out expert samples (Stage III's eval split) and on ``limit`` training
    demonstrations (a low turn accuracy there means the policy underfits what it sees); for
    ActVLP also the Stage II model's "where" accuracy on held-out scenes (:func:`where_accuracy`)."""
    from jvla.diagnostics import action_accuracy
    from jvla.training import load_split

    data, model = pdir / "data", pdir / "models" / "finetune" / path / "model"
    out: dict[str, Any] = {}
    if path == "actvlp":  # did Stage II teach where the mobs are?
        stage2 = pdir / "models" / "post" / params.model.backbone / "vlp" / "model"
        out["stage2_where"] = where_accuracy(stage2, params, load_split(data / "vision", "eval"))
    held = load_split(data / "trajectory_c1", "eval")
    out["diagnostics"] = action_accuracy(model, params, held, limit=limit) if held is not None else {}
    demos = data / ("trajectory_demos_c1" if (data / "trajectory_demos_c1").exists() else "trajectory_c1")
    out["diagnostics_train"] = action_accuracy(model, params, load_split(demos, "train"), limit=limit)
    return out


def evaluate_probe(rec: dict[str, Any], params: Any, pdir: Path, ddir: Path) -> dict[str, Any]:
    """Play the probe's fine-tuned model (``pdir/models``) in the game: ``params``'s evaluation
    setting :data:`SETTING`; adds ``per_task`` (Wilson 95 % intervals), ``wall_s.eval_s`` and
    ``load_avg`` (the 1-minute load average before and after: the game runs in real time, so a
    busy machine lowers success) to ``rec`` and writes ``pdir/probe.json``. ``rec["oracle"]`` (if
    not None) is the accuracy of the perception oracle's marker in the evaluation's frames
    (:func:`marked_games`)."""
    import os

    from jvla.evaluation import run_setting
    from jvla.stats import wilson_interval

    t0, load0 = time.monotonic(), os.getloadavg()[0]
    with marked_games(params, rec.get("oracle")):
        summ = run_setting(params, SETTING, models_root=pdir / "models", out_root=pdir / "evaluate",
                           progress=True, data_results=ddir / "cards")  # fmt: skip
    rec["wall_s"]["eval_s"] = round(time.monotonic() - t0, 1)
    rec["load_avg"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    rows = []
    for r in summ["per_task"]:
        lo, hi = wilson_interval(r["successes"], r["n"])
        rows.append({"task": r["task"], "category": r["category"], "successes": r["successes"], "n": r["n"],
                     "rate": r["success_rate"], "ci_low": lo, "ci_high": hi})  # fmt: skip
    rec["per_task"] = rows
    (pdir / "probe.json").write_text(json.dumps(rec, indent=1, sort_keys=True, default=str) + "\n")
    return rec


@contextlib.contextmanager
def marked_games(params: Any, accuracy: float | None):
    """Within the block, :func:`jvla.envs.factory.make_env` (the evaluation's game factory) returns
    games with the oracle's marker at ``accuracy`` (each game its own seed of the degradation's
    draws); None leaves the factory alone. The evaluation must build its games in this process
    (``evaluate.workers`` 1, local executor): the pipeline's evaluation code stays as it is."""
    if accuracy is None:
        yield
        return
    from jvla.envs import factory, oracle

    ev = params.evaluate
    if ev.workers != 1 or ev.executor != "local":
        raise ValueError(f"the oracle's marker needs evaluate.workers 1 and the local executor, found "
                         f"workers={ev.workers}, executor={ev.executor!r}")  # fmt: skip
    plain, seeds = factory.make_env, itertools.count(params.seed)

    def marked(p: Any, backend: str | None = None, **kwargs: Any) -> Any:
        return oracle.factory(p, accuracy, next(seeds), backend=backend, **kwargs)

    factory.make_env = marked
    try:
        yield
    finally:
        factory.make_env = plain


def _add_rows(base: Path, extra: Iterable[dict], out: Path) -> int:
    """Save the dataset at ``base`` with ``extra`` rows appended to its train split (its eval split
    unchanged) to ``out``; returns how many rows were added."""
    return _rewrite_train(base, lambda rows: itertools.chain(rows, extra), out)


def _rewrite_train(base: Path, transform: Callable[[Iterable[dict]], Iterable[dict]], out: Path) -> int:
    """Save the dataset at ``base`` to ``out`` with its train split's rows passed through
    ``transform`` (its eval split unchanged); returns how many train rows that added."""
    from jvla.data.store import load, save

    ds = load(base)
    mixed = save({"train": transform(iter(ds["train"])), "eval": iter(ds["eval"])}, out)
    return len(mixed["train"]) - len(ds["train"])


def _share(src: Path, dst: Path, subs: Iterable[str]) -> None:
    """Link each ``dst/<sub>`` to the real folder behind ``src/<sub>`` (another probe's datasets
    or models, reused read-only); an existing ``dst/<sub>`` is kept."""
    for sub in subs:
        if not (dst / sub).exists():
            (dst / sub).parent.mkdir(parents=True, exist_ok=True)
            (dst / sub).symlink_to((src / sub).resolve(), target_is_directory=True)


def dagger_round(params: Any, data: Path, models: Path, tasks: list[Any], episodes: int, out: Path,
                 data_cards: Path) -> dict[str, Any]:  # fmt: skip
    """One DAgger round (:mod:`jvla.data.dagger`) on a finished IL probe, in a new folder ``out``.

    The probe's fine-tuned model (``<models>/finetune/il``) plays ``episodes`` per task (seeds
    disjoint from the demonstrations' and the evaluation's) at the evaluation's step limits; the
    experts label its states; ``out/data/task_c1`` = the probe's fine-tune set + every relabelled
    step (train split; the eval split is unchanged, so eval losses stay comparable); the fine-tune
    is rerun from the same Stage III model into ``out/models/finetune/il``. Returns counts.
    """
    import functools

    from jvla.actions import ActionSpace
    from jvla.agent.policy import make_policy
    from jvla.data import trajectories
    from jvla.data.dagger import relabel_episodes
    from jvla.data.store import load as load_ds
    from jvla.data.store import save
    from jvla.envs.factory import make_env
    from jvla.evaluation.settings import select_tasks
    from jvla.rollout import EpisodeSpec
    from jvla.training import run_named

    space = ActionSpace.from_config(params.action)
    d, h = params.data, params.data.trajectories.history
    limited = select_tasks(params, [t.name for t in tasks], data_cards)
    specs = [
        EpisodeSpec(t, i, 9_000_000 + 1_000 * k + i) for k, t in enumerate(limited) for i in range(episodes)
    ]
    learner = functools.partial(
        make_policy, params, str(models / "finetune" / "il" / "model"), h, 1, 1, params.seed
    )
    rows = relabel_episodes(specs, functools.partial(make_env, params), learner, space, d.image_scale,
                            d.jpeg_quality, slots=params.evaluate.slots, seed=params.seed)  # fmt: skip
    eps = trajectories.save_episodes(rows, out / "data" / "dagger_episodes")
    null = trajectories.token_strings(space).encode([space.null_env_action()])
    base = load_ds(data / "task_c1")

    def train_rows():
        yield from base["train"]
        for e in eps:
            yield from trajectories.samples(e, h, 1, d.trajectories.stride, null)

    (out / "data").mkdir(parents=True, exist_ok=True)
    splits = {"train": train_rows()} | ({"eval": iter(base["eval"])} if "eval" in base else {})
    save(splits, out / "data" / "task_c1")
    _share(data, out / "data", ("knowledge", "trajectory_c1"))
    _share(models, out / "models", ("base", "stage3"))
    run_named("finetune/il", params, data_root=out / "data", models_root=out / "models")
    return {"episodes": len(eps), "learner_successes": int(sum(eps["success"])), "steps": int(sum(eps["steps"])),
            "train_samples": len(base["train"]) + int(sum(eps["steps"]))}  # fmt: skip


def choice_scores(model: Any, proc: Any, prompt: str, answers: list[str], images: list[Any]) -> list[float]:
    """Teacher-forced log-likelihood of each of ``answers`` after ``prompt`` (a chat-templated
    prompt, its ``images`` shown once per row), in one batched forward pass: the sum of the
    log-probabilities of each row's tokens after the longest token prefix the rows share. The
    shared tokens (the prompt, and any common start of the answers) score the same in every row,
    so leaving them out changes no ranking; the scores rank the answers as their full likelihoods
    do. Rows are right-padded (``proc.tokenizer.padding_side`` is set for the call and restored), pads
    score 0."""
    import torch

    texts = [prompt + a for a in answers]
    side = proc.tokenizer.padding_side
    proc.tokenizer.padding_side = "right"  # every row keeps the prompt's positions
    try:
        enc = proc(text=texts, images=images * len(texts), padding=True, return_tensors="pt")
    finally:
        proc.tokenizer.padding_side = side
    ids, mask = enc["input_ids"], enc["attention_mask"].bool()
    same = (ids == ids[:1]).all(0) & mask.all(0)
    n_shared = int(same.long().cumprod(0).sum())  # length of the common prefix
    with torch.inference_mode():
        logp = model(**enc).logits.log_softmax(-1)
    tok = logp[:, n_shared - 1 : -1].gather(-1, ids[:, n_shared:, None]).squeeze(-1)
    return tok.masked_fill(~mask[:, n_shared:], 0.0).sum(-1).tolist()


def where_accuracy(model_dir: Path, params: Any, vision_eval: Any, limit: int = 400) -> dict[str, Any]:
    """Does the model know where a mob is? On the "Where is the <mob>?" questions of a Stage II
    vision eval split (held-out scenes), the answer among the three (left / straight ahead /
    right, ``templates/vqa.yaml`` ``object.where``) the model gives the highest likelihood
    (teacher-forced sum of the answer tokens' log-probabilities: a multiple choice, so a tiny
    model's broken generation does not hide what it knows). Returns ``n``, the ``accuracy`` and the
    share of the most common answer (``majority``: what a model that ignores the frame reaches),
    plus ``generated``: the greedy answers' keyword accuracy (:func:`jvla.vl_bench.evaluate`)."""
    import torch

    from jvla import models
    from jvla.data.schema import decode_images
    from jvla.data.vision import SIDES, where_qa
    from jvla.vl_bench import evaluate, question_of

    rows = [i for i, src in enumerate(vision_eval["source"])
            if json.loads(src)["ref"].get("keywords") in ([k] for k in SIDES)][:limit]  # fmt: skip
    if not rows:
        return {"n": 0}
    torch.set_num_threads(1)
    model, proc = models.load(model_dir, params)
    model.eval()
    hits, truth = 0, []
    for i in rows:
        s = vision_eval[i]
        msgs, ref = question_of(s)
        want = json.loads(s["source"])["ref"]["keywords"][0]
        truth.append(want)
        mob = ref.split(" is ")[0].removeprefix("The ")  # the template's "The {mob} is ..."
        answers = [where_qa(mob, side).answer for side in SIDES]
        if answers[SIDES.index(want)] != ref:
            raise ValueError(f"{s['id']}: reference {ref!r} is not templates/vqa.yaml's object.where answer")
        prompt = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        score = choice_scores(model, proc, prompt, answers, decode_images(s))
        hits += SIDES[score.index(max(score))] == want
    gen = evaluate(model, proc, {"vision": vision_eval.select(rows)})
    return {"n": len(rows), "accuracy": hits / len(rows),
            "majority": max(truth.count(k) for k in set(truth)) / len(truth),
            "generated": sum(r["correct"] for r in gen) / len(gen)}  # fmt: skip


def label_stats(episodes: Any, space: Any) -> dict[str, dict[str, float]]:
    """How often the experts' labels press ``attack``, move the camera or only walk forward, per
    category of the recorded ``episodes`` (fractions of steps, and the step count ``n``)."""
    import numpy as np

    from jvla.data.trajectories import token_strings

    tok = token_strings(space)
    out: dict[str, list[tuple[int, int, int]]] = {}
    for cat, acts in zip(episodes["category"], episodes["actions"], strict=True):
        for a in acts:
            (act,) = tok.decode_text(a).actions
            cam = bool(np.any(np.abs(np.asarray(act["camera"], dtype=float)) > 1e-6))
            pressed = {k for k, v in act.items() if k != "camera" and v}
            out.setdefault(cat, []).append(
                (int("attack" in pressed), int(cam), int(pressed == {"forward"} and not cam))
            )
    return {
        c: {
            "attack": float(np.mean([r[0] for r in v])),
            "camera": float(np.mean([r[1] for r in v])),
            "forward_only": float(np.mean([r[2] for r in v])),
            "n": len(v),
        }  # fmt: skip
        for c, v in sorted(out.items())
    }


def _final_losses(run_dir: Path) -> dict[str, Any]:
    """The first and last train loss and the last eval losses of a training run (``run.json``)."""
    p = run_dir / "run.json"
    if not p.exists():
        return {}
    r = json.loads(p.read_text())
    return {k: r[k] for k in ("train_loss_first", "train_loss_last", "eval", "wall_s") if k in r}


def kill_turn_accuracy(diag: Mapping[str, Any], prefixes: tuple[str, ...] = ("kill",)) -> float | None:
    """The turn-direction accuracy (:mod:`jvla.diagnostics` ``turns``) pooled over the positions of
    the tasks whose names start with one of ``prefixes``: does the policy turn toward the mob
    (default), or toward its target (``("kill", "mine")``)? GUI tasks' cursor moves are left out."""
    parts = [(v["turns"], v["n_turns"]) for k, v in diag.items()
             if k.startswith(prefixes) and v.get("n_turns")]  # fmt: skip
    n = sum(m for _, m in parts)
    return sum(a * m for a, m in parts) / n if n else None


def table(records: list[dict[str, Any]]) -> Any:
    """One row per probe and category: successes, n, rate and Wilson interval, plus the
    diagnostics' turn-direction accuracy on held-out and on training kill frames
    (:func:`kill_turn_accuracy`), the button accuracy, an ActVLP probe's Stage II "where" accuracy
    (:func:`where_accuracy`), the wall times and ``eval_load``, the higher of the 1-minute load
    averages before and after the evaluation (NaN where not recorded; 2 = both cores busy) (a
    DataFrame)."""
    import pandas as pd

    from jvla.envs.perturb import WORLD  # task names start with their category
    from jvla.stats import wilson_interval

    rows = []
    for rec in records:
        by_cat: dict[str, list[int]] = {}
        for r in rec.get("per_task", []):
            s, n = by_cat.setdefault(r["category"], [0, 0])
            by_cat[r["category"]] = [s + r["successes"], n + r["n"]]
        diag, fit = rec.get("diagnostics", {}), rec.get("diagnostics_train", {})
        if not by_cat:  # a diagnostics-only probe: one row, success not measured
            by_cat = {"(not evaluated)": [0, 0]}
        for cat, (s, n) in sorted(by_cat.items()):
            lo, hi = wilson_interval(s, n)
            rows.append({
                "probe": rec["name"], "path": rec.get("path", "il"), "category": cat, "successes": s, "n": n,
                "rate": s / n if n else float("nan"),
                "ci_low": lo, "ci_high": hi, "turn_acc": kill_turn_accuracy(diag),
                "turn_acc_train": kill_turn_accuracy(fit),
                # mine and kill turns pooled: the kill tasks alone hold a few (2-13) turning positions
                "world_turn_acc": kill_turn_accuracy(diag, WORLD),
                "world_turn_acc_train": kill_turn_accuracy(fit, WORLD),
                "button_acc": (diag.get("all") or {}).get("buttons"),
                "stage2_where": (rec.get("stage2_where") or {}).get("accuracy"),
                "oracle": rec.get("oracle"), "dart": rec.get("dart"),
                **rec.get("wall_s", {}),
                "eval_load": max(rec["load_avg"]) if rec.get("load_avg") else float("nan"),
            })  # fmt: skip
    return pd.DataFrame(rows)


__all__ = [
    "DATA_KEYS",
    "VISION_KEYS",
    "data_key",
    "evaluate_probe",
    "marked_games",
    "merge",
    "probe_overrides",
    "run_probe",
    "table",
    "where_accuracy",
]
