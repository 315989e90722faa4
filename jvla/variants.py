"""Variants -> the set of distinct training runs, each trained once and shared.

A variant (``params.yaml`` ``variants:``) names a backbone, the post-training it starts Stage III
from, whether Stage III runs, and the action-chunk lengths of Stage III and the task fine-tune.
:func:`expand` turns all variants into a graph of runs with stable names::

    base/<backbone>                                  the tiny model build + generic pretraining (or the hub checkpoint)
    post/<backbone>/knowledge                        Stage I   (knowledge QA; LM only)
    post/<backbone>/vision | grounding               Stage II  on one kind of VL data (all params)
    post/<backbone>/vlp                              Stage II  on vision + grounding, from Stage I
    post/<backbone>/one_stage/c<k>                   one stage: all post-training + trajectories
    stage3/<backbone>/<post>/c<k>                    Stage III (trajectories, chunk k; vision frozen)
    finetune/<variant>                               per-task fine-tune (task data, chunk ft_chunk)

A variant that post-trains on a fraction of the post-training data (``post_fraction`` < 1,
Figure 6) gets its own runs from its first post-training run down, the post label suffixed with
the fraction in percent: ``post_fraction: 0.25`` gives ``post/qwen2_vl/knowledge_p25``,
``post/qwen2_vl/vlp_p25`` and ``stage3/qwen2_vl/vlp_p25/c1``. A fine-tune on a fraction of the
task episodes (``ft_fraction``, Figure 5) is already the variant's own run. A run carries its
fraction (:attr:`RunSpec.fraction`), applied where it loads its data (:func:`RunSpec.fraction_of`).

Two variants that need the same intermediate run get the same name, so it is trained once: e.g.
``actvlp`` and ``knowledge`` share ``post/qwen2_vl/knowledge`` (ActVLP's Stage I *is* the
knowledge-only post-training), and ``actvlp`` and the Table 4 setting APT 1 / FT 3 share
``stage3/qwen2_vl/vlp/c1``.

Data kinds a run trains on: ``knowledge`` (text QA), ``vision`` (captions + VQA), ``grounding``
(points), ``trajectory_c<k>`` (Stage III trajectories with k actions per assistant turn) and
``task_c<k>`` (the per-task fine-tuning trajectories).

This module is pure (no torch): the pipeline and the tests can read the graph cheaply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from jvla.config import Params, TrainConfig, VariantConfig
from jvla.stages import STAGES, TABLE

POST_KINDS = ("none", "vlp", "knowledge", "vision", "grounding", "one_stage")


@dataclass(frozen=True)
class RunSpec:
    """One distinct training run (or the base build).

    Attributes:
        name: stable name, also its output folder under the models root.
        stage: its stage kind, a run stage of :data:`jvla.stages.STAGES` (``base``, ``stage1``,
            ``stage2``, ``stage3``, ``one_stage``, ``finetune``): fixes the name's format, the
            freezing rule and the params sections.
        backbone: ``qwen2_vl`` or ``llava_next``.
        parent: the run whose output model it starts from (None for ``base``).
        data: the data kinds it trains on, mixed and shuffled together.
        fraction: the share of its post-training (knowledge, vision, grounding) or task data it
            trains on, a nested subset (:mod:`jvla.data.subsets`); trajectories are always whole.
    """

    name: str
    stage: str
    backbone: str
    parent: str | None
    data: tuple[str, ...] = ()
    fraction: float = 1.0

    def fraction_of(self, kind: str) -> float:
        """The fraction of data kind ``kind`` this run trains on: :attr:`fraction`, except 1 for
        Stage III trajectories (``post_fraction`` scales Stage I / II data, ``ft_fraction`` the
        task episodes; neither scales the cross-task trajectories)."""
        return 1.0 if kind.startswith("trajectory_c") else self.fraction


def base_name(backbone: str) -> str:
    """Name of the base run (the starting model) of ``backbone``."""
    return STAGES["base"].format_run(backbone=backbone)


def final_run(variant: str) -> str:
    """Name of the run whose output is ``variant``'s final (fine-tuned) model."""
    return STAGES["finetune"].format_run(variant=variant)


def _run(
    stage: str, backbone: str, parent: str, data: tuple[str, ...], fraction: float = 1.0, **fields
) -> RunSpec:
    """A run of ``stage`` named by the stage's run-name rule (:attr:`jvla.stages.Stage.run_name`)."""
    name = STAGES[stage].format_run(backbone=backbone, **fields)
    return RunSpec(name, stage, backbone, parent, data, fraction)


def post_label(post: str, fraction: float) -> str:
    """The post label of a run name: ``post``, suffixed ``_p<percent>`` below fraction 1
    (``vlp``, 0.25 -> ``vlp_p25``; 0.125 -> ``vlp_p12_5``)."""
    return post if fraction == 1 else f"{post}_p{100 * fraction:g}".replace(".", "_")


def _post_runs(backbone: str, post: str, apt_chunk: int, fraction: float) -> list[RunSpec]:
    """The post-training runs of one variant, parents first; empty for ``none``. ``fraction``:
    of the post-training samples (knowledge, vision, grounding) every one of them trains on."""
    base = base_name(backbone)

    def run(stage: str, parent: str, data: tuple[str, ...], kind: str, **fields) -> RunSpec:
        return _run(stage, backbone, parent, data, fraction, post=post_label(kind, fraction), **fields)

    knowledge = run("stage1", base, ("knowledge",), "knowledge")
    if post == "none":
        return []
    if post == "knowledge":
        return [knowledge]
    if post in ("vision", "grounding"):
        return [run("stage2", base, (post,), post)]
    if post == "vlp":
        return [knowledge, run("stage2", knowledge.name, ("vision", "grounding"), "vlp")]
    if post == "one_stage":
        # NOTE(paper Table 2): "co-training the original Qwen2-VL on non-trajectory and trajectory
        # data together in one stage", from the base model, then the same task fine-tune.
        data = ("knowledge", "vision", "grounding", f"trajectory_c{apt_chunk}")
        return [run("one_stage", base, data, post, apt_chunk=apt_chunk)]
    raise ValueError(f"post_training: expected one of {POST_KINDS}, found {post!r}")


def post_run(v: VariantConfig) -> RunSpec | None:
    """The last post-training run of ``v`` (``post/<backbone>/vlp`` for ``vlp``: its Stage II run),
    the model Stage III starts from; None for ``post_training: none``."""
    runs = _post_runs(v.backbone, v.post_training, v.apt_chunk, v.post_fraction)
    return runs[-1] if runs else None


def variant_runs(name: str, v: VariantConfig) -> list[RunSpec]:
    """All runs ``v`` needs, parents first, ending with its fine-tune ``finetune/<name>``."""
    runs = [RunSpec(base_name(v.backbone), "base", v.backbone, None)]
    runs += _post_runs(v.backbone, v.post_training, v.apt_chunk, v.post_fraction)
    if v.stage3:
        traj = (f"trajectory_c{v.apt_chunk}",)
        post = post_label(v.post_training, v.post_fraction)
        runs.append(_run("stage3", v.backbone, runs[-1].name, traj, post=post, apt_chunk=v.apt_chunk))
    task = (f"task_c{v.ft_chunk}",)
    runs.append(_run("finetune", v.backbone, runs[-1].name, task, v.ft_fraction, variant=name))
    return runs


def expand(variants: Mapping[str, VariantConfig]) -> dict[str, RunSpec]:
    """The distinct runs of all ``variants``, keyed by name, in a topological order (parents first).

    Raises ValueError if two variants would need different runs under one name (a bug).
    """
    out: dict[str, RunSpec] = {}
    for vname, v in variants.items():
        for run in variant_runs(vname, v):
            if run.name in out and out[run.name] != run:
                raise ValueError(f"run {run.name} is defined twice differently: {out[run.name]} vs {run}")
            out.setdefault(run.name, run)
    order = {s.name: i for i, s in enumerate(TABLE)}  # pipeline order: parents' stages come first
    return dict(sorted(out.items(), key=lambda kv: (order[kv[1].stage], kv[0])))


def lineage(runs: Mapping[str, RunSpec], name: str) -> list[RunSpec]:
    """``name`` and its ancestors, root (base) first."""
    chain = []
    cur: str | None = name
    while cur is not None:
        chain.append(runs[cur])
        cur = runs[cur].parent
    return chain[::-1]


def train_config(params: Params, run: RunSpec) -> TrainConfig:
    """The hyperparameters of ``run``: the first params section of its stage
    (:attr:`jvla.stages.Stage.sections`; ``pretrain`` for a base run), adjusted for ``one_stage``.

    # NOTE(paper Table 2): the one-stage baseline sees all the data the three ActVLP stages see,
    # so it gets Stage III's hyperparameters with max_steps = stage1 + stage2 + stage3 steps and
    # the longest max_length of the three (knowledge dialogues need Stage I's).
    """
    stage = STAGES[run.stage]
    if not stage.is_training:
        raise ValueError(f"{run.name} is a model build, not a training run")
    cfg: TrainConfig = getattr(params, stage.section)
    if len(stage.sections) > 1:  # one_stage: the steps of all its sections, the longest length
        secs = [getattr(params, s) for s in stage.sections]
        cfg = dataclasses.replace(
            cfg, max_steps=sum(s.max_steps for s in secs), max_length=max(s.max_length for s in secs)
        )
    return cfg
