"""Typed, frozen parameters loaded from ``params.yaml`` (the single source of truth).

``load()`` reads the file, applies the selected profile's overrides (``profile: default | smoke |
paper``; the overrides live under ``profiles:`` in the same file), and builds frozen
dataclasses. Every problem raises :class:`ConfigError` naming the key path, what was expected
and what was found, e.g. ``stage3.learning_rate: expected a number > 0, found -1``.

* No second default in code: every field is required (a key missing from ``params.yaml`` is an
  error, ``params.yaml: training.max_steps: missing (required)`` style), except the optional keys
  of an evaluation setting (:class:`EvalSetting`), which the file lists only where needed.
* Unknown keys are errors, in the file and in a profile's overrides. Overrides are checked
  against the schema (these dataclasses), so a profile may set a field its base section leaves
  out (``profiles.paper.stage3.learning_rate``) but not a misspelt one.
* Training: ``training:`` holds the hyperparameters shared by the SFT stages and the base
  pretraining; ``pretrain``, ``stage1``, ``stage2``, ``stage3`` and ``finetune`` hold only what
  differs (``pretrain.max_steps: 0`` = no pretraining, the random-init tiny build). The layers
  (the base file, the profile, then ``overrides``) apply in order, each its ``training`` block to
  every stage and then its per-stage keys (:func:`jvla.params_schema.expand_shared`): a profile's ``training`` value
  reaches every stage, a per-stage value wins within its layer.
* Cross-references are checked after building (:mod:`jvla.params_refs`): variant, task, tag,
  setting and run names must exist.

Derived values (camera bins, token ids, image token counts) are computed once by the modules
that own them (``jvla.actions``, ``jvla.action_tokenizer``, ``jvla.models``) from these fields,
never repeated as literals.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from jvla.params_data import (
    CaptureConfig,
    DataConfig,
    GenericDataConfig,
    GroundingDataConfig,
    KnowledgeDataConfig,
    ReleasedDataConfig,
    TrajectoryDataConfig,
    VisionDataConfig,
)
from jvla.params_schema import ConfigError, build, expand_shared, fld, merge, to_dict
from jvla.paths import PARAMS_FILE

__all__ = [
    "PARAMS_FILE", "TRAINING", "TRAIN_SECTIONS", "ActionConfig", "AgentConfig", "BackboneRow",
    "CaptureConfig", "ClusterConfig", "ConfigError", "DataConfig", "EnvConfig", "EvalSetting", "EvaluateConfig",
    "GenericDataConfig", "GroundingDataConfig", "KnowledgeDataConfig", "MinestudioConfig", "MinetestConfig",
    "ModelConfig", "Params", "ReleasedDataConfig", "ReportConfig", "TinyModelConfig",
    "TrainConfig", "TrajectoryDataConfig", "VLBenchConfig", "VariantConfig", "VisionDataConfig",
    "fld", "from_dict", "load", "to_dict",
]  # fmt: skip

# The shared block of the training hyperparameters and the sections it expands into.
TRAINING = "training"
TRAIN_SECTIONS = ("pretrain", "stage1", "stage2", "stage3", "finetune")
# The sections whose max_steps may be 0: the run is skipped (pretrain: 0 = the random-init build).
SKIPPABLE_SECTIONS = ("pretrain",)


# ----------------------------------------------------------------------------- shared sections
@dataclass(frozen=True, kw_only=True)
class TinyModelConfig:
    """Sizes of the offline tiny VLM (random init) used by the embedded default."""

    vocab_size: int = fld(ge=512)  # BPE training target; capped by corpus variety
    hidden_size: int = fld(ge=16)
    intermediate_size: int = fld(ge=16)
    num_layers: int = fld(ge=1)
    num_heads: int = fld(ge=1)
    num_kv_heads: int = fld(ge=1)
    vision_depth: int = fld(ge=1)
    vision_embed_dim: int = fld(ge=8)
    vision_heads: int = fld(ge=1)
    rope_theta: float = fld(gt=0)  # the language model's RoPE base (both backbones)

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.tiny.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"model.tiny.num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})"
            )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Which VLM to post-train.

    ``source: tiny`` builds a random-init tiny model offline (``model.tiny`` sizes); anything else
    is a local directory or a hub id loaded with ``from_pretrained`` (paper scale).
    """

    backbone: Literal["qwen2_vl", "llava_next"]
    source: str
    # The checkpoint of the *other* backbone, used by variants whose backbone differs from
    # ``backbone`` (the backbone ablation): ``tiny`` or a path / hub id.
    ablation_source: str
    trust_remote_code: bool
    dtype: Literal["float32", "bfloat16", "float16"]
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"]
    # NOTE(paper §1, code data_collator): Qwen2-VL smart_resize bounds, in pixels. The paper
    # trains with max 2048*28*28 and infers with 1024*28*28, so 640x360 -> 644x364 (299 tokens).
    min_pixels: int = fld(ge=784)
    max_pixels: int = fld(ge=784)
    tiny: TinyModelConfig

    def __post_init__(self):
        if self.min_pixels > self.max_pixels:
            raise ConfigError(
                f"model.min_pixels ({self.min_pixels}) exceeds model.max_pixels ({self.max_pixels})"
            )


@dataclass(frozen=True, kw_only=True)
class ActionConfig:
    """Action space and action tokenizer (paper §2; official ``action_mapping.py``)."""

    # NOTE(code evaluate/config/*/base.yaml camera_config): maxval 10, binsize 1, mu 20 -> 21
    # bins per axis, not MineStudio's default (binsize 2, mu 10 -> 11 bins).
    camera_maxval: float = fld(gt=0)
    camera_binsize: float = fld(gt=0)
    camera_mu: float = fld(gt=0)
    camera_scheme: Literal["mu_law", "linear"]
    # Deviation: the official encoder never writes the inventory token; we do (docs/deviations.md).
    encode_inventory: bool

    def __post_init__(self):
        n = 2 * self.camera_maxval / self.camera_binsize + 1
        if abs(n - round(n)) > 1e-9:
            raise ConfigError(
                f"action.camera_maxval / action.camera_binsize: expected 2*maxval/binsize to be an "
                f"integer, found {2 * self.camera_maxval / self.camera_binsize}"
            )
        if round(n) > 21:
            raise ConfigError(f"action: expected at most 21 camera bins (token layout), found {round(n)}")


@dataclass(frozen=True, kw_only=True)
class MinetestConfig:
    """The embedded game (``../shared/spec/minetest.md``)."""

    # Degrees of camera turn per pixel of relative mouse motion. The smallest JARVIS camera bin
    # is 0.178 deg, so 0.05 makes it >= 3.6 px; sub-pixel remainders are carried between steps.
    mouse_sensitivity: float = fld(gt=0)
    fov: int = fld(ge=30, le=160)
    viewing_range: int = fld(ge=10)
    fps_max: int = fld(ge=20)
    world_seed: int
    start_timeout_s: float = fld(gt=0)  # launch -> player joined and first frame
    step_timeout_s: float = fld(gt=0)  # watchdog: a step slower than this = client hung
    max_restarts: int = fld(ge=0)  # per episode, before it is given up as an infra failure
    # Randomised starts (envs/minetest/setup.draw_start): the initial yaw is drawn in +-this many
    # degrees, and every placed block of a task is shifted by up to this many nodes in x and z.
    start_yaw_jitter_deg: float = fld(ge=0, le=180)
    setup_shift: int = fld(ge=0, le=2)


@dataclass(frozen=True, kw_only=True)
class MinestudioConfig:
    """Real Minecraft 1.16.5 through MineStudio (paper scale)."""

    minestudio_dir: str | None  # None: $MINESTUDIO_DIR, else MineStudio's default
    gpu_render: bool  # MINESTUDIO_GPU_RENDER=1 (VirtualGL) instead of xvfb-run
    # NOTE(code evaluate.py): MinecraftSim seed 19961103; fast reset with random_tp_range 1000.
    seed: int
    random_tp_range: int = fld(ge=0)
    fov: int = fld(ge=30, le=110)


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Game backend and the observation contract shared by both backends."""

    backend: Literal["minetest", "minestudio"]
    # NOTE(code evaluate.py): MineStudio renders 640x360; frames reach the model at that size
    # and the processor resizes them within model.min_pixels / max_pixels.
    width: int = fld(ge=64)
    height: int = fld(ge=64)
    tick_hz: float = fld(gt=0)  # Minecraft's 20 ticks/s: one env step per tick
    minetest: MinetestConfig
    minestudio: MinestudioConfig


# ---------------------------------------------------------------------------- training stages
@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Hyperparameters of one SFT stage (TRL ``SFTConfig``).

    # NOTE(paper App. B): AdamW (0.9, 0.95), weight decay 0, eps 1e-8, cosine schedule, lr 5e-6,
    # warmup 200 steps, grad-norm 1.0, bf16; max length 3584 (Stages I/II) and 512 (Stage III);
    # total batch 256. The ``paper`` profile sets these; the embedded default uses a larger lr
    # because its model starts from random weights (docs/deviations.md).

    ``params.yaml`` holds one full ``training:`` block shared by the stages and, per stage, only
    the keys that differ (see the module docstring for how profiles layer on it).
    """

    max_steps: int = fld(ge=0)  # >= 1 except in SKIPPABLE_SECTIONS (checked by Params)
    learning_rate: float = fld(gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"]
    warmup_steps: int = fld(ge=0)
    adam_beta1: float = fld(ge=0, lt=1)
    adam_beta2: float = fld(ge=0, lt=1)
    adam_epsilon: float = fld(gt=0)
    weight_decay: float = fld(ge=0)
    max_grad_norm: float = fld(gt=0)
    batch_size: int = fld(ge=1)  # per device
    grad_accum: int = fld(ge=1)
    max_length: int = fld(ge=16)  # tokens per sample, truncation beyond
    bf16: bool
    gradient_checkpointing: bool
    peft: Literal["none", "lora"]
    lora_r: int = fld(ge=1)
    lora_alpha: int = fld(ge=1)
    lora_dropout: float = fld(ge=0, lt=1)
    eval_steps: int = fld(ge=1)
    save_steps: int = fld(ge=1)
    logging_steps: int = fld(ge=1)
    # Speed (benchmarks/train_speed.py): batches of similar length, collation in a worker process
    # beside the training process, and the intra-op thread count on CPU (0 = torch's default).
    sampling: Literal["group_by_length", "random"]
    dataloader_workers: int = fld(ge=0)
    cpu_threads: int = fld(ge=0)
    eval_samples: int = fld(ge=0)  # per eval dataset, a fixed random subset (0 = all)
    # NOTE(paper §3.2, code data_collator): photometric jitter + translation of frames.
    augment: bool


@dataclass(frozen=True, kw_only=True)
class VariantConfig:
    """One trained agent of the paper's comparisons (Tables 1, 2, 4, Figure 4, backbone ablation).

    ``post_training`` is the checkpoint Stage III starts from: ``none`` (the base model), ``vlp``
    (Stage I then Stage II on all vision-language data), ``knowledge`` / ``vision`` /
    ``grounding`` (one kind of post-training data) or ``one_stage`` (all post-training data and
    the trajectories co-trained in one run, which replaces Stage III). ``apt_chunk`` and
    ``ft_chunk`` are the actions per assistant turn in Stage III and the task fine-tune (Table 4).
    ``ft_fraction`` and ``post_fraction`` (optional, default 1) scale the data (Figures 5 and 6):
    the fraction of the per-task fine-tuning episodes, and of the Stage I / II post-training
    samples, each a nested subset (:mod:`jvla.data.subsets`). See :mod:`jvla.variants` for the
    runs a variant expands to.
    """

    backbone: Literal["qwen2_vl", "llava_next"]
    post_training: Literal["none", "vlp", "knowledge", "vision", "grounding", "one_stage"]
    stage3: bool
    apt_chunk: int = fld(ge=1)
    ft_chunk: int = fld(ge=1)
    # Optional keys (a variant lists them only when it scales its data):
    ft_fraction: float = fld(1.0, gt=0, le=1)  # of each task's fine-tuning episodes (Figure 5)
    post_fraction: float = fld(1.0, gt=0, le=1)  # of the Stage I + II samples (Figure 6)

    def __post_init__(self):
        if self.post_training == "one_stage" and self.stage3:
            raise ConfigError(
                "variant: post_training one_stage already co-trains the trajectories; expected stage3: false"
            )
        if self.post_training == "none" and self.post_fraction != 1:
            raise ConfigError(
                f"variant: post_fraction {self.post_fraction} scales post-training data, but "
                "post_training is none; expected post_fraction: 1"
            )


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """The VLA policy loop (:mod:`jvla.agent`). History length and chunk size are not here: they
    are derived from the trajectory data and the variant, so training and inference agree."""

    # NOTE(code evaluate.py): temperature 0.7 by default (scripts: 0.6 mine, 0.8-0.9 kill/GUI).
    temperature: float = fld(ge=0)  # 0 = greedy
    top_p: float = fld(gt=0, le=1)  # NOTE(code 0aafd2e): top_p 0.99
    constrained: bool  # grammar-constrained decoding: no malformed action can be produced
    prefix_cache: bool  # reuse the KV cache of the prompt prefix that does not change
    feature_cache: bool  # encode each frame once, reuse it while it stays in the history
    max_new_tokens: int = fld(ge=8)  # per decision, for unconstrained decoding
    server_url: str | None  # an OpenAI-compatible (vLLM) endpoint instead of a local model


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """What a training run assumes about its launch, and the compute model of the dry run
    (``python -m jvla.plan``).

    The configured total batch of a stage is ``batch_size x grad_accum x processes``; a run
    launched with another number of processes stops before its first step
    (:func:`jvla.training.runner.check_processes`), so a cluster never trains with a batch the
    params do not say.
    """

    # NOTE(paper App. B): 32 A800 GPUs (4 nodes x 8), ZeRO-1 data parallel: total batch 256.
    processes: int = fld(ge=1)  # data-parallel training processes (one per GPU) of every run
    gpus_per_node: int = fld(ge=1)
    # GPU-hour estimate (jvla/plan.py): 6 x params x tokens / (peak FLOP/s x MFU).
    gpu_peak_tflops: float = fld(gt=0)  # dense bf16 peak of one GPU, TFLOP/s (A800/A100: 312)
    mfu: float = fld(gt=0, le=1)  # the fraction of the peak a run achieves (model FLOPs utilisation)
    model_params_b: float = fld(gt=0)  # parameters of the trained model, billions


# ------------------------------------------------------------------------- evaluation, report
@dataclass(frozen=True, kw_only=True)
class EvalSetting:
    """One evaluation run: a variant's final model on a set of tasks.

    ``tasks`` entries are task names, ``all`` (the backend's suite) or ``tag:<t>`` (tasks whose
    ``tables`` list holds ``t``: table1, table2, figure4, ...). ``inference_chunk`` is the number
    of generated actions executed per decision (Table 4); 0 = the variant's ``ft_chunk``.

    ``variant`` and ``tasks`` are required; ``inference_chunk``, ``episodes``,
    ``videos_per_task`` and ``ablation`` are optional (their default means "not set": the
    variant's chunk, ``evaluate.episodes``, no videos, not an ablation).
    """

    variant: str  # a key of ``variants``
    tasks: tuple[str, ...]
    # Optional keys (the only config fields with a default; a setting lists them when it needs them):
    inference_chunk: int = fld(0, ge=0)  # actions executed per decision; 0 = the variant's ft_chunk
    episodes: int = fld(0, ge=0)  # per task; 0 = evaluate.episodes (capped for ablations, see below)
    videos_per_task: int = fld(0, ge=0)  # rollout videos of the first episodes of each task
    ablation: bool = False  # an ablation setting: evaluate.ablation_episodes caps its episodes


@dataclass(frozen=True, kw_only=True)
class HorizonConfig:
    """The step limit of an evaluated task, from how long the experts take on it.

    ``limit = max(ceil(expert_factor x p95), min_steps[category])``, then at most the task's own
    ``max_steps`` and at most ``max_steps`` (when nonzero). ``p95`` is the 95th percentile of the
    successful expert episodes' steps on the task, measured by the data stage
    (``results/data/episodes.json``, ``experts.<task>.steps_p95``). With ``expert_factor: 0``, or
    no expert measurement for the task, the limit is ``min_steps[category]`` (0 = the task's own).
    """

    # NOTE(paper §5): the paper's step limits are per task (600-1200 steps at 20 Hz, MCU);
    # embedded limits follow the experts so that a learner is not cut off (docs/deviations.md).
    expert_factor: float = fld(ge=0)
    min_steps: dict[str, int]  # category -> steps (every category; 0 = the task's own limit)
    max_steps: int = fld(ge=0)  # global cap; 0 = none

    def __post_init__(self):
        from jvla.envs.tasks import CATEGORIES

        for cat, n in self.min_steps.items():
            if cat not in CATEGORIES:
                raise ConfigError(
                    f"evaluate.horizon.min_steps.{cat}: expected one of {list(CATEGORIES)}, found {cat!r}"
                )
            if not isinstance(n, int) or n < 0:
                raise ConfigError(f"evaluate.horizon.min_steps.{cat}: expected an integer >= 0, found {n}")
        for cat in CATEGORIES:
            if cat not in self.min_steps:
                raise ConfigError(f"evaluate.horizon.min_steps.{cat}: missing (required)")

    def limit(self, category: str, task_max_steps: int, expert_p95: float | None) -> int:
        """Steps (``>= 1``) of an episode of a task of ``category`` whose own limit is
        ``task_max_steps`` and whose experts' p95 is ``expert_p95`` (None = not measured)."""
        n = self.min_steps[category]
        if self.expert_factor and expert_p95 is not None:
            n = max(n, math.ceil(self.expert_factor * expert_p95))
        caps = [c for c in (task_max_steps, self.max_steps) if c]
        return max(1, min([n, *caps]) if n else min(caps))


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """Rollout evaluation (paper §5): success = reward > 0 within the step limit."""

    episodes: int = fld(ge=1)  # per task (paper: >= 30)
    ablation_episodes: int = fld(ge=0)  # at most this many for `ablation: true` settings; 0 = no cap
    slots: int = fld(ge=1)  # games stepped side by side in one process, one batched policy
    workers: int = fld(ge=1)  # processes (each with `slots` games)
    executor: Literal["local", "ray"]
    max_retries: int = fld(ge=0)  # per episode, after a game crash
    horizon: HorizonConfig  # the step limit of each task
    # Minetest render cap during evaluation (0 = env.minetest.fps_max). The agent acts at 20 Hz,
    # so 20 fps shows it every tick while leaving the 2 cores to the policy (data keeps env's).
    fps_max: int = fld(ge=0)
    suite: Literal["minetest", "paper"]
    tasks_per_category: int = fld(ge=0)  # cap on "all" (first tasks by name); 0 = no cap
    seed: int  # base seed of the episode seeds
    settings: dict[str, EvalSetting]

    def episodes_of(self, name: str) -> int:
        """Episodes per task of setting ``name``: its own ``episodes``, else ``episodes``, capped
        by ``ablation_episodes`` for ablation settings."""
        s = self.settings[name]
        n = s.episodes or self.episodes
        return min(n, self.ablation_episodes) if s.ablation and self.ablation_episodes else n

    def step_limit(self, category: str, task_max_steps: int, expert_p95: float | None) -> int:
        """The step limit of a task (:class:`HorizonConfig`)."""
        return self.horizon.limit(category, task_max_steps, expert_p95)


@dataclass(frozen=True, kw_only=True)
class VLBenchConfig:
    """Vision-language benchmarks (Tables 5-8) on the data stage's held-out eval splits."""

    models: tuple[str, ...]  # run names (models/<name>/model) to benchmark
    limit: int = fld(ge=0)  # at most this many questions per benchmark; 0 = all
    batch_size: int = fld(ge=1)
    judge_url: str | None  # an OpenAI-compatible endpoint to judge text answers
    judge_model: str


@dataclass(frozen=True, kw_only=True)
class BackboneRow:
    method: Literal["raw", "actvlp"]
    backbone: Literal["qwen2_vl", "llava_next"]
    model: str  # the run whose VL accuracy is reported (raw: the base model)
    setting: str  # the evaluation setting giving its task success


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    """How our runs map onto the paper's tables and figures (``jvla.report``)."""

    # Paper Table 1 column -> our task (the two Kill columns are unnamed images in the paper).
    table1_tasks: dict[str, str]
    table1_settings: dict[str, str]  # raw / il / actvlp -> setting
    table2_settings: dict[str, str]  # raw / one_stage / actvlp -> setting
    # Table 4 settings in the paper's row order (APT/FT/inference 111, 131, 132, 133, 331).
    table4_settings: tuple[str, ...]
    table4_tag: str  # Table 4 success is the mean over the tasks with this tag
    figure4_settings: dict[str, str]  # bar label -> setting
    figure4_tag: str
    # Figures 5 / 6: the settings of one agent trained on growing data, any order; each point's
    # fraction is its variant's ft_fraction / post_fraction (checked: nothing else differs).
    figure5_settings: tuple[str, ...]
    figure6_settings: tuple[str, ...]
    table8_models: dict[str, str]  # our row -> model run
    backbone: tuple[BackboneRow, ...]


# ------------------------------------------------------------------------------- the whole file
@dataclass(frozen=True, kw_only=True)
class Params:
    """Everything in ``params.yaml`` after the profile is applied.

    ``training`` is the shared block resolved over the layers; ``pretrain``, ``stage1`` ..
    ``finetune`` are the full hyperparameters of each stage (``training`` with the stage's own
    overrides applied). ``pretrain`` and ``pretrain_data`` are the base stage's pretraining of a
    tiny model (:mod:`jvla.data.generic`).
    """

    profile: Literal["default", "smoke", "paper"]
    seed: int
    model: ModelConfig
    action: ActionConfig
    env: EnvConfig
    training: TrainConfig
    pretrain: TrainConfig
    pretrain_data: GenericDataConfig
    stage1: TrainConfig
    stage2: TrainConfig
    stage3: TrainConfig
    finetune: TrainConfig
    cluster: ClusterConfig
    agent: AgentConfig
    data: DataConfig
    evaluate: EvaluateConfig
    vl_bench: VLBenchConfig
    report: ReportConfig
    variants: dict[str, VariantConfig]
    profiles: dict[str, dict[str, Any]]

    def __post_init__(self):
        for name in (TRAINING, *TRAIN_SECTIONS):
            steps = getattr(self, name).max_steps
            if steps < 1 and name not in SKIPPABLE_SECTIONS:
                raise ConfigError(
                    f"{name}.max_steps: expected an integer >= 1, found {steps} "
                    f"(only {', '.join(s + '.max_steps' for s in SKIPPABLE_SECTIONS)} may be 0)"
                )


def load(
    path: str | Path = PARAMS_FILE, profile: str | None = None, overrides: Mapping | None = None
) -> Params:
    """Load and validate ``params.yaml``.

    Args:
        path: the params file.
        profile: overrides the file's ``profile`` key (``default``, ``smoke`` or ``paper``).
        overrides: a nested mapping merged last (for tests and notebooks' explicit tweaks); its
            ``training`` / ``stage*`` keys layer like a profile's.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path.name}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping at the top level, found {type(raw).__name__}")
    return from_dict(raw, profile=profile, overrides=overrides, source=path.name)


def from_dict(
    raw: Mapping, profile: str | None = None, overrides: Mapping | None = None, source: str = "params"
) -> Params:
    """Build :class:`Params` from an already-parsed mapping (see :func:`load`)."""
    data = copy.deepcopy(dict(raw))
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: profiles: expected a mapping, found {type(profiles).__name__}")
    chosen = profile if profile is not None else data.get("profile", "default")
    if profile is not None:
        data["profile"] = profile
    if chosen not in profiles and chosen != "default":
        raise ConfigError(
            f"{source}: profile: expected one of {sorted({'default', *profiles})}, found {chosen!r}"
        )
    for k in (TRAINING, *TRAIN_SECTIONS):  # may be empty (`stage1: {}`), never absent
        if k not in data:
            raise ConfigError(f"{source}: {k}: missing (required)")
    # ``default`` may be listed with no overrides: stages then depend on ``profiles.<profile>``
    # alone (dvc.yaml), so editing another profile never reruns them.
    layers = [("", data), (f"profiles.{chosen}", profiles.get(chosen) or {})]
    if overrides:
        layers.append(("overrides", overrides))
    train_layers = []
    for path, layer in layers:
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{source}: {path}: expected a mapping, found {type(layer).__name__}")
        rest = {k: v for k, v in layer.items() if k not in (TRAINING, *TRAIN_SECTIONS)}
        train_layers.append((path, {k: v for k, v in layer.items() if k not in rest}))
        if path:
            merge(data, rest, Params, path, source)
    data.update(expand_shared(train_layers, TRAINING, TRAIN_SECTIONS, TrainConfig, source))
    params = build(Params, data, "", source)
    from jvla.params_refs import check_references  # lazy: it reads tasks/ and the variant graph

    check_references(params, source)
    return params
