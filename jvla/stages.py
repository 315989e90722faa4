"""The one table of pipeline stages, and the rule that names a run's key and folders.

Every reader of stage kinds takes them from :data:`STAGES`: the training runner (freezing rule),
:mod:`jvla.variants` (params section, run names, run order), :mod:`jvla.pipeline` (which writes
``dvc.yaml`` and ``pipeline.yaml`` from this table) and :mod:`jvla.report.results` (which result
folders hold training runs). One name per stage is used for the DVC stage, the ``results/<name>/``
folder and, for a training stage, the freezing rule's key.

Columns of :class:`Stage`; the table, in pipeline order:

=========  ======================  ================  ===============  ===========================
stage      notebook                item (foreach)    trains           hyperparameters (params)
=========  ======================  ================  ===============  ===========================
data       01_data                 -                 -                -
base       02_base                 run               everything       training + pretrain
stage1     03_stage1               run               language model   training + stage1
stage2     04_stage2               run               everything       training + stage2
stage3     05_stage3               run               language model   training + stage3
one_stage  05_stage3               run               everything       training + stage3 (+ 1, 2)
finetune   06_finetune             run               language model   training + finetune
vl_bench   07_vl_bench             model             -                -
evaluate   08_evaluate             setting           -                -
tables     09_tables               -                 -                -
figures    10_figures              -                 -                -
report     11_report               -                 -                -
=========  ======================  ================  ===============  ===========================

``base`` builds the tiny model of a backbone (random init) and pretrains all of it on generic
scenes (:mod:`jvla.data.generic`; ``pretrain.max_steps: 0`` keeps the random init); for a hub
checkpoint (``model.source``) it does nothing.

Run-name rule. A run of the variant graph has a name, ``<prefix>/<backbone>/...`` as
:attr:`Stage.run_name` formats it (``stage3/qwen2_vl/vlp/c1``). Its DVC key replaces ``/`` by ``-``
(:func:`key_of`: ``stage3-qwen2_vl-vlp-c1``, the foreach key in ``pipeline.yaml``); its model is
``models/<name>/`` (:func:`model_dir`), its record ``results/<stage>/<key>/`` (:func:`run_dir`) and
its executed notebook ``results/<stage>/<key>.ipynb``. VL-benchmark result files are named by the
model run's key too (``results/vl_bench/<key>.json``).

This module is pure (no torch, no params): the pipeline generator, the tests and the runner read
it cheaply. The code each stage runs is not listed here: ``python -m jvla.pipeline`` derives it
from the import closure of the stage's notebook (:mod:`jvla.closure`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jvla.paths import MODELS_DIR, RESULTS_DIR

# The command every stage runs its notebook with (jvla/notebook.py: papermill, then cleaning).
NOTEBOOK_RUNNER = "jvla.notebook"
# Names of jvla.paths that a module takes to read a project folder -> that folder, a dependency of
# every stage whose code closure reads it (the task YAMLs: jvla.envs.tasks and the tokenizer
# corpus of jvla.models).
PATH_DEPS = {"TASKS_DIR": "tasks"}
# The params every stage of a variant-graph run reads besides its sections.
_RUN_PARAMS = ("profile", "profiles.${profile}", "seed", "model", "action")


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline (one row of :data:`STAGES`).

    Attributes:
        name: the DVC stage, the ``results/<name>/`` folder and the freezing rule's key.
        notebook: the notebook it executes (repo-relative).
        title: one line on what it does (a comment in ``dvc.yaml``).
        params: ``params.yaml`` keys it reads besides its training sections (DVC ``params``;
            ``${...}`` are DVC interpolations).
        deps: its non-code dependencies (datasets, parent models, results of other stages), DVC
            syntax. Code dependencies are derived (:mod:`jvla.closure`).
        outs: its outputs, DVC syntax: a path (DVC-cached) or ``{path: {cache: false, ...}}``.
        foreach: the DVC ``foreach`` collection it iterates over (None: one instance).
        arg: ``(name, value)`` of the notebook parameter set per item (``-p name value``).
        run_name: for a stage of the variant graph, the format of its runs' names, with fields
            ``backbone``, ``post`` (the post-training kind), ``apt_chunk`` and ``variant``.
        trainable: for a training stage, the parameter groups it trains: ``language`` (the
            language model; vision tower and projector frozen) or ``all`` (paper §3.1). ``base``
            is one too: its pretraining trains everything.
        sections: for a training stage, the ``params.yaml`` sections of its hyperparameters; the
            first gives them, the others adjust them (:func:`jvla.variants.train_config`).
    """

    name: str
    notebook: str
    title: str
    params: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    outs: tuple[str | dict[str, Any], ...] = ()
    foreach: str | None = None
    arg: tuple[str, str] | None = None
    run_name: str | None = None
    trainable: str | None = None
    sections: tuple[str, ...] = ()

    @property
    def is_run(self) -> bool:
        """A stage of the variant graph: one instance per run (``base`` and the training stages)."""
        return self.run_name is not None

    @property
    def is_training(self) -> bool:
        return self.trainable is not None

    @property
    def section(self) -> str:
        """The params section of a training stage's hyperparameters."""
        if not self.sections:
            raise ValueError(f"stage {self.name} has no hyperparameters (not a training stage)")
        return self.sections[0]

    def all_params(self) -> tuple[str, ...]:
        """Every params key it reads: :attr:`params`, with, for a training stage, the shared
        ``training`` block and its sections (in params-file order) before the keys of its item."""
        if not self.is_training:
            return self.params
        item = tuple(p for p in self.params if "${item." in p)
        own = tuple(p for p in self.params if p not in item)
        return (*own, "training", *sorted(self.sections, key=_SECTION_ORDER.index), *item)

    def format_run(self, **fields: Any) -> str:
        """A run's name from :attr:`run_name` (``backbone=..., post=..., apt_chunk=...``)."""
        if self.run_name is None:
            raise ValueError(f"stage {self.name} has no runs of the variant graph")
        return self.run_name.format(**fields)


_SECTION_ORDER = ("pretrain", "stage1", "stage2", "stage3", "finetune")


def _nocache(path: str, **opts: Any) -> dict[str, Any]:
    return {path: {"cache": False, **opts}}


def _run_stage(name: str, notebook: str, title: str, run_name: str, deps: tuple[str, ...], **kw) -> Stage:
    """A stage of the variant graph: one instance per run, model and record as outputs."""
    return Stage(
        name,
        notebook,
        title,
        params=kw.pop("params", _RUN_PARAMS),
        deps=deps,
        outs=(
            "models/${item.name}",
            _nocache(f"results/{name}/${{key}}"),
            _nocache(f"results/{name}/${{key}}.ipynb"),
        ),
        foreach=f"${{runs.{name}}}",
        arg=("run", "${item.name}"),
        run_name=run_name,
        **kw,
    )


_DATA = Stage(
    "data",
    "notebooks/01_data.ipynb",
    "the datasets of the three stages, the task fine-tune and the VL benchmarks, from the game",
    params=("profile", "profiles.${profile}", "seed", "data", "env", "action"),
    outs=("data", _nocache("results/data")),
)
# The stages of the variant graph, parents' stages first.
_RUNS: tuple[Stage, ...] = (
    # NOTE(paper §1): the paper's base is Qwen2-VL pretrained on internet data; a tiny build is
    # pretrained here on generic generated scenes (docs/deviations.md). The data deps are the
    # tokenizer's corpus; the scenes are generated by the stage itself (pretrain_data).
    _run_stage(
        "base",
        "notebooks/02_base.ipynb",
        "the starting model of each backbone (tiny build pretrained on generic scenes, or the hub "
        "checkpoint as is)",
        "base/{backbone}",
        ("data/knowledge", "data/vision", "data/grounding", "data/task_c1"),
        params=(
            *_RUN_PARAMS,
            "pretrain_data",
            "env.width",
            "env.height",
            "data.image_scale",
            "data.jpeg_quality",
        ),
        trainable="all",
        sections=("pretrain",),
    ),
    _run_stage(
        "stage1",
        "notebooks/03_stage1.ipynb",
        "Stage I: world-knowledge post-training (language model only)",
        "post/{backbone}/{post}",
        ("models/${item.parent}", "data/knowledge"),
        trainable="language",
        sections=("stage1",),
    ),
    _run_stage(
        "stage2",
        "notebooks/04_stage2.ipynb",
        "Stage II: vision-language alignment and spatial grounding (all parameters)",
        "post/{backbone}/{post}",
        ("models/${item.parent}", "data/vision", "data/grounding"),
        trainable="all",
        sections=("stage2",),
    ),
    _run_stage(
        "stage3",
        "notebooks/05_stage3.ipynb",
        "Stage III: action post-training on cross-task trajectories (vision frozen)",
        "stage3/{backbone}/{post}/c{apt_chunk}",
        ("models/${item.parent}", "data/trajectory_c1", "data/trajectory_c3"),
        trainable="language",
        sections=("stage3",),
    ),
    # NOTE(paper Table 2): one_stage trains everything, like Stage II (the paper does not say; a
    # co-training run that includes VL data is taken to unfreeze the ViT as Stage II does). It
    # takes Stage III's hyperparameters with the steps of all three stages.
    _run_stage(
        "one_stage",
        "notebooks/05_stage3.ipynb",
        "the one-stage baseline: all post-training data and trajectories at once (paper Table 2)",
        "post/{backbone}/{post}/c{apt_chunk}",
        (
            "models/${item.parent}",
            "data/knowledge",
            "data/vision",
            "data/grounding",
            "data/trajectory_c1",
            "data/trajectory_c3",
        ),
        trainable="all",
        sections=("stage3", "stage1", "stage2"),
    ),
    _run_stage(
        "finetune",
        "notebooks/06_finetune.ipynb",
        "the per-task fine-tune: every variant's final model",
        "finetune/{variant}",
        ("models/${item.parent}", "data/task_c1", "data/task_c3"),
        params=(*_RUN_PARAMS, "variants.${item.variant}"),
        trainable="language",
        sections=("finetune",),
    ),
)
# The training records the tables and figures read (jvla.report.results.load_runs / load_curves).
_TRAIN_RESULTS = tuple(f"results/{s.name}" for s in _RUNS if s.is_training)

TABLE: tuple[Stage, ...] = (
    _DATA,
    *_RUNS,
    Stage(
        "vl_bench",
        "notebooks/07_vl_bench.ipynb",
        "VL benchmarks (paper Tables 5-8) of one model on the held-out eval splits",
        params=(
            "profile",
            "profiles.${profile}",
            "model",
            "vl_bench.limit",
            "vl_bench.batch_size",
            "vl_bench.judge_url",
            "vl_bench.judge_model",
        ),
        deps=("data/knowledge", "data/vision", "data/grounding", "models/${item.name}"),
        outs=(
            _nocache("results/vl_bench/${key}.json"),
            _nocache("results/vl_bench/${key}.jsonl"),
            _nocache("results/vl_bench/${key}.ipynb"),
        ),
        foreach="${vl_models}",
        arg=("model", "${item.name}"),
    ),
    Stage(
        "evaluate",
        "notebooks/08_evaluate.ipynb",
        "one evaluation setting: a final model plays its tasks in the game. Its results folder "
        "persists between runs, so an interrupted repro resumes (fingerprint.json)",
        params=(
            "profile",
            "profiles.${profile}",
            "seed",
            "env",
            "agent",
            "action",
            "model",
            "data.trajectories.history",
            "evaluate.episodes",
            "evaluate.ablation_episodes",
            "evaluate.slots",
            "evaluate.workers",
            "evaluate.executor",
            "evaluate.max_retries",
            "evaluate.horizon",
            "evaluate.fps_max",
            "evaluate.suite",
            "evaluate.tasks_per_category",
            "evaluate.seed",
            "evaluate.settings.${key}",
            "variants.${item.variant}",
        ),
        deps=("models/finetune/${item.variant}", "results/data/episodes.json"),
        outs=(
            _nocache("results/evaluate/${key}", persist=True),
            _nocache("results/evaluate/${key}.ipynb"),
        ),
        foreach="${evaluate.settings}",
        arg=("setting", "${key}"),
    ),
    Stage(
        "tables",
        "notebooks/09_tables.ipynb",
        "every table of the paper (1, 2, 4, 5-8, backbone ablation) and the claims check",
        params=("report", "evaluate", "variants"),
        deps=("results/data", "results/evaluate", "results/vl_bench", *_TRAIN_RESULTS),
        outs=(_nocache("results/tables"),),
    ),
    Stage(
        "figures",
        "notebooks/10_figures.ipynb",
        "Figures 4, 5, 6 of the paper and the training curves",
        params=("report", "evaluate", "variants"),
        deps=("results/evaluate", *_TRAIN_RESULTS),
        outs=(_nocache("results/figures"),),
    ),
    # The site shows the resolved params.yaml (its configuration page), hence the whole file as a dep.
    Stage(
        "report",
        "notebooks/11_report.ipynb",
        "the browsable report: a static site under results/site/ (each paper table and figure beside "
        "ours with its claim, a page per evaluation setting with its rollout videos, the notebooks as "
        "HTML, data cards, loss curves, run configuration)",
        params=("profile", "profiles.${profile}", "report", "evaluate.settings"),
        deps=(
            "params.yaml",
            "results/data",
            "results/evaluate",
            "results/vl_bench",
            "results/tables",
            "results/figures",
            *_TRAIN_RESULTS,
        ),
        outs=(_nocache("results/report"), _nocache("results/site")),
    ),
)

STAGES: dict[str, Stage] = {s.name: s for s in TABLE}
if len(STAGES) != len(TABLE):
    raise ValueError("stage names must be unique")
RUN_STAGES: tuple[str, ...] = tuple(s.name for s in TABLE if s.is_run)
TRAIN_STAGES: tuple[str, ...] = tuple(s.name for s in TABLE if s.is_training)


def key_of(name: str) -> str:
    """A run (or model) name as a DVC key and file name: ``post/qwen2_vl/vlp`` -> ``post-qwen2_vl-vlp``."""
    return name.replace("/", "-")


def model_dir(name: str, models_root: Path = MODELS_DIR) -> Path:
    """``models/<name>/``: a run's output (its ``model/``, ``run.json``, checkpoints, logs)."""
    return Path(models_root) / name


def run_dir(stage: str, name: str, results_root: Path = RESULTS_DIR) -> Path:
    """``results/<stage>/<key>/``: the committed record of run ``name`` of ``stage``."""
    if stage not in STAGES:
        raise KeyError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
    return Path(results_root) / stage / key_of(name)
