"""Variants -> the set of distinct training runs, each trained once and shared.

A variant (``params.yaml`` ``variants:``) names a backbone, the post-training it starts Stage III
from, whether Stage III runs, and the action-chunk lengths of Stage III and the task fine-tune.
:func:`expand` turns all variants into a graph of runs with stable names::

    base/<backbone>                                  the tiny model build (or the hub checkpoint)
    post/<backbone>/knowledge                        Stage I   (knowledge QA; LM only)
    post/<backbone>/vision | grounding               Stage II  on one kind of VL data (all params)
    post/<backbone>/vlp                              Stage II  on vision + grounding, from Stage I
    post/<backbone>/one_stage/c<k>                   one stage: all post-training + trajectories
    stage3/<backbone>/<post>/c<k>                    Stage III (trajectories, chunk k; vision frozen)
    finetune/<variant>                               per-task fine-tune (task data, chunk ft_chunk)

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

POST_KINDS = ("none", "vlp", "knowledge", "vision", "grounding", "one_stage")
# Stage kind of a run -> the params section holding its hyperparameters.
SECTION = {
    "stage1": "stage1",
    "stage2": "stage2",
    "stage3": "stage3",
    "finetune": "finetune",
    "one_stage": "stage3",
}


@dataclass(frozen=True)
class RunSpec:
    """One distinct training run (or the base build).

    Attributes:
        name: stable name, also its output folder under the models root.
        stage: ``base``, ``stage1``, ``stage2``, ``stage3``, ``finetune`` or ``one_stage``; fixes
            the freezing rule (:data:`jvla.training.TRAINABLE`) and the params section.
        backbone: ``qwen2_vl`` or ``llava_next``.
        parent: the run whose output model it starts from (None for ``base``).
        data: the data kinds it trains on, mixed and shuffled together.
    """

    name: str
    stage: str
    backbone: str
    parent: str | None
    data: tuple[str, ...] = ()


def base_name(backbone: str) -> str:
    return f"base/{backbone}"


def final_run(variant: str) -> str:
    """Name of the run whose output is ``variant``'s final (fine-tuned) model."""
    return f"finetune/{variant}"


def _post_runs(backbone: str, post: str, apt_chunk: int) -> list[RunSpec]:
    """The post-training runs of one variant, parents first; empty for ``none``."""
    base = base_name(backbone)
    knowledge = RunSpec(f"post/{backbone}/knowledge", "stage1", backbone, base, ("knowledge",))
    if post == "none":
        return []
    if post == "knowledge":
        return [knowledge]
    if post in ("vision", "grounding"):
        return [RunSpec(f"post/{backbone}/{post}", "stage2", backbone, base, (post,))]
    if post == "vlp":
        return [
            knowledge,
            RunSpec(f"post/{backbone}/vlp", "stage2", backbone, knowledge.name, ("vision", "grounding")),
        ]
    if post == "one_stage":
        # NOTE(paper Table 2): "co-training the original Qwen2-VL on non-trajectory and trajectory
        # data together in one stage", from the base model, then the same task fine-tune.
        data = ("knowledge", "vision", "grounding", f"trajectory_c{apt_chunk}")
        return [RunSpec(f"post/{backbone}/one_stage/c{apt_chunk}", "one_stage", backbone, base, data)]
    raise ValueError(f"post_training: expected one of {POST_KINDS}, found {post!r}")


def variant_runs(name: str, v: VariantConfig) -> list[RunSpec]:
    """All runs ``v`` needs, parents first, ending with its fine-tune ``finetune/<name>``."""
    runs = [RunSpec(base_name(v.backbone), "base", v.backbone, None)]
    runs += _post_runs(v.backbone, v.post_training, v.apt_chunk)
    if v.stage3:
        post = v.post_training
        runs.append(
            RunSpec(
                f"stage3/{v.backbone}/{post}/c{v.apt_chunk}",
                "stage3",
                v.backbone,
                runs[-1].name,
                (f"trajectory_c{v.apt_chunk}",),
            )
        )
    runs.append(RunSpec(final_run(name), "finetune", v.backbone, runs[-1].name, (f"task_c{v.ft_chunk}",)))
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
    order = {"base": 0, "stage1": 1, "stage2": 2, "one_stage": 2, "stage3": 3, "finetune": 4}
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
    """The hyperparameters of ``run``: its params section, adjusted for ``one_stage``.

    # NOTE(paper Table 2): the one-stage baseline sees all the data the three ActVLP stages see,
    # so it gets Stage III's hyperparameters with max_steps = stage1 + stage2 + stage3 steps and
    # the longest max_length of the three (knowledge dialogues need Stage I's).
    """
    if run.stage == "base":
        raise ValueError(f"{run.name} is a model build, not a training run")
    cfg: TrainConfig = getattr(params, SECTION[run.stage])
    if run.stage == "one_stage":
        secs = (params.stage1, params.stage2, params.stage3)
        cfg = dataclasses.replace(
            cfg, max_steps=sum(s.max_steps for s in secs), max_length=max(s.max_length for s in secs)
        )
    return cfg
