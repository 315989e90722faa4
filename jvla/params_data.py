"""The data sections of ``params.yaml``, re-exported by :mod:`jvla.config`.

``data:`` (the data stage): the post-training datasets (Stage I knowledge QA, Stage II frames with
captions, VQA and grounding), the trajectories of Stage III and the task fine-tune, and local
copies of the released hub datasets. ``pretrain_data:`` (the base stage, not the data stage): the
generic scenes the tiny base models are pretrained on. Every field is required (no second
default besides ``params.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jvla.params_schema import ConfigError, fld


@dataclass(frozen=True, kw_only=True)
class KnowledgeDataConfig:
    """Stage I world-knowledge QA (:mod:`jvla.data.knowledge`)."""

    source: Literal["minetest", "minecraft_data"]  # the game registry, or MC 1.16.5
    minecraft_version: str
    paraphrases: int = fld(ge=1)  # question templates per fact in train
    # NOTE(paper §4.1): single QA pairs merged into multi-turn dialogues of these many pairs.
    turns_min: int = fld(ge=1)
    turns_max: int = fld(ge=1)
    eval_per_category: int = fld(ge=0)  # held-out facts per category (Table 5: 3-12)
    max_eval_fraction: float = fld(ge=0, le=1)  # of a category's facts
    eval_holdout: Literal["fact", "paraphrase"]
    max_train_dialogues: int = fld(ge=0)  # 0 = all

    def __post_init__(self):
        if self.turns_min > self.turns_max:
            raise ConfigError(
                f"data.knowledge.turns_min ({self.turns_min}) exceeds turns_max ({self.turns_max})"
            )


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    """Stage II frames captured in the game with their privileged state (:mod:`jvla.data.frames`)."""

    scenes: int = fld(ge=1)  # env resets with a generated scene (mobs, blocks, time, GUI)
    frames_per_scene: int = fld(ge=1)
    steps_between: int = fld(ge=1)  # random-look steps between two captures
    settle_steps: int = fld(ge=0)  # still steps before a capture (state and frame agree)
    gui_fraction: float = fld(ge=0, le=1)  # scenes with the inventory / furnace open
    eval_fraction: float = fld(ge=0, lt=1)  # scenes held out (vision + grounding eval)


@dataclass(frozen=True, kw_only=True)
class VisionDataConfig:
    """Stage II captions and VQA (:mod:`jvla.data.vision`)."""

    vqa_per_frame: int = fld(ge=0)  # questions per frame (multi-turn in train)
    caption_fraction: float = fld(ge=0, le=1)  # frames that also get a caption sample


@dataclass(frozen=True, kw_only=True)
class GroundingDataConfig:
    """Stage II spatial grounding (:mod:`jvla.data.vision`)."""

    queries_per_frame: int = fld(ge=1)
    max_points: int = fld(ge=1)  # instances pointed at per answer, nearest first
    min_box_px: float = fld(ge=0)  # smallest box side (env pixels) to ask about
    min_visible: float = fld(gt=0, le=1)  # unoccluded fraction of the box
    radius: int = fld(ge=0)  # scorer tolerance, thousandths of the frame


@dataclass(frozen=True, kw_only=True)
class TrajectoryDataConfig:
    """Stage III and per-task fine-tuning trajectories (:mod:`jvla.data.trajectories`)."""

    episodes_per_task: int = fld(ge=1)  # cross-task Stage III set
    # NOTE(paper §4.2): "over 100 random trajectories for each MCU task" (paper profile).
    finetune_episodes_per_task: int = fld(ge=1)
    history: int = fld(ge=0)  # past (frame, action) turns in the prompt (official --history-num)
    stride: int = fld(ge=1)  # a sample every `stride` steps
    chunks: tuple[int, ...]  # action-chunk lengths to build; empty = the variants' chunks
    success_only: bool  # keep only episodes the expert finished
    max_steps: int = fld(ge=0)  # cap per episode; 0 = the task's max_steps
    eval_fraction: float = fld(ge=0, lt=1)  # episodes held out (eval loss, Figure 5)
    tasks: tuple[str, ...]  # empty = every task of the backend's suite
    # The fine-tune set's tasks (a subset of ``tasks``, checked in jvla.params_refs); empty = every
    # task of ``tasks``. The cross-task Stage III set always covers every task of ``tasks``.
    finetune_tasks: tuple[str, ...]
    # Train-split rows whose target actions turn the camera's yaw appear this many times (1 = as
    # recorded): a weight on the rare decisive label (results/study: the learning study's q11-q14).
    oversample_turns: int = fld(ge=1)
    # Games side by side while recording (one process, the rollout core's slots). On 2 cores, 3
    # games at 320x180 keep >95 % fresh frames (benchmarks/env_speed.py).
    slots: int = fld(ge=1)


@dataclass(frozen=True, kw_only=True)
class ReleasedDataConfig:
    """Local copies of the released hub datasets (paper scale; :mod:`jvla.data.released`)."""

    vla_sft: str | None  # CraftJarvis/minecraft-vla-sft: folder of parquet files
    vlp: str | None  # CraftJarvis/minecraft-vlp: folder of JSONL files + image zips
    max_rows: int = fld(ge=0)  # per file; 0 = all


@dataclass(frozen=True, kw_only=True)
class GenericDataConfig:
    """Generic (non-game) scenes for the base pretraining (:mod:`jvla.data.generic`).

    Read by the ``base`` stage, which generates them itself, so the game data never reruns it.
    """

    train_images: int = fld(ge=1)  # one multi-turn sample each
    eval_images: int = fld(ge=1)  # held-out images; one question per kind each
    questions_per_image: int = fld(ge=1)  # QA turns of a train sample (kinds drawn at random)
    max_objects: int = fld(ge=1, le=6)  # objects per scene: 1..max_objects
    # (min, max) short side of an object's box, fraction of the image height: the tiny models see
    # a frame as 7x4 (Qwen2-VL) or 2x4x4 + 4x4 (LLaVA-NeXT) visual tokens, so objects must span one
    object_size: tuple[float, ...]
    radius: int = fld(ge=0)  # pointing scorer tolerance, thousandths of the image

    def __post_init__(self):
        lo_hi = self.object_size
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] <= 0.6:
            raise ConfigError(
                f"pretrain_data.object_size: expected [min, max] with 0 < min <= max <= 0.6, found {list(lo_hi)}"
            )


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The data stage: the three post-training datasets and the eval sets (:mod:`jvla.data`)."""

    image_scale: float = fld(gt=0, le=1)  # stored frames = env frames scaled by this
    jpeg_quality: int = fld(ge=10, le=100)
    knowledge: KnowledgeDataConfig
    capture: CaptureConfig
    vision: VisionDataConfig
    grounding: GroundingDataConfig
    trajectories: TrajectoryDataConfig
    released: ReleasedDataConfig

    def __post_init__(self):
        if not all(c >= 1 for c in self.trajectories.chunks):
            raise ConfigError(
                f"data.trajectories.chunks: expected integers >= 1, found {list(self.trajectories.chunks)}"
            )
