"""One stage runner for every ActVLP stage, the task fine-tune and the one-stage baseline.

:func:`run_stage` takes a parent model directory (or hub id), train/eval datasets in the schema of
:mod:`jvla.data.schema`, and a stage kind, and writes::

    <out_dir>/model/            the trained model + processor (merged if LoRA), loads with models.load
    <out_dir>/checkpoints/      HF Trainer checkpoints (resume); removed after success unless kept
    <out_dir>/live/             dvclive metrics and loss curves (``dvc plots`` reads plots/metrics)
    <out_dir>/run.json          resolved config, versions, seed, device, threads, wall time, losses

Freezing (paper §3.1; :data:`TRAINABLE`):

=============  =========================================  ========================================
stage          trainable                                  frozen
=============  =========================================  ========================================
stage1         language model (embeddings, layers, head)  vision tower, projector
stage2         everything                                 nothing
stage3         language model, full or LoRA (``peft``)    vision tower, projector
finetune       as stage3                                  as stage3
one_stage      everything (like stage2)                   nothing
=============  =========================================  ========================================

Loss: only on assistant tokens. The chat template marks each assistant turn with
``{% generation %}``; the mask covers the assistant content and its ``<|im_end|>`` (not the
``<|im_start|>assistant\\n`` header, which the official collator also trains on). Every other
token (system, user, image pads, padding) gets label -100.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from jvla import config as jconfig
from jvla import models
from jvla.action_tokenizer import BEGIN_N, TOKEN_FORMAT, action_token_strings
from jvla.actions import ActionSpace
from jvla.config import Params, TrainConfig
from jvla.data.schema import to_messages
from jvla.paths import DATA_DIR, MODELS_DIR, PROJECT_ROOT
from jvla.variants import RunSpec, expand, train_config

log = logging.getLogger(__name__)

# NOTE(paper §3.1, code train.py fix_*): which parameter groups each stage trains.
# NOTE(paper Table 2): one_stage trains everything, like Stage II (the paper does not say; a
# co-training run that includes VL data is taken to unfreeze the ViT as Stage II does).
TRAINABLE = {"stage1": "language", "stage2": "all", "stage3": "language", "finetune": "language", "one_stage": "all"}
SCHEMA_COLUMNS = ("id", "label", "conversations", "image_bytes")
BEGIN_TOKEN = TOKEN_FORMAT.format(BEGIN_N)  # an assistant turn holding it is an action turn
LORA_LM_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


# ------------------------------------------------------------------------------------ freezing
def apply_freezing(model: Any, stage: str) -> dict[str, int]:
    """Set ``requires_grad`` by :data:`TRAINABLE`; return trainable/frozen parameter counts."""
    rule = TRAINABLE[stage]
    counts = {"trainable": 0, "frozen": 0}
    for name, p in model.named_parameters():
        train = rule == "all" or models.param_group(name) == "language"
        p.requires_grad_(train)
        counts["trainable" if train else "frozen"] += p.numel()
    return counts


def lora_config(model: Any, processor: Any, cfg: TrainConfig, stage: str, space: ActionSpace):
    """PEFT LoRA for ``stage``: LM linear layers (all linear layers when the stage trains all),
    ``lm_head`` fully trained, and the action-token rows of the input embeddings trainable, so
    the new tokens are learnable (stack.md §1.10)."""
    from peft import LoraConfig

    ids = processor.tokenizer.convert_tokens_to_ids(action_token_strings(space))
    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules="all-linear" if TRAINABLE[stage] == "all" else LORA_LM_TARGETS,
        modules_to_save=["lm_head"], trainable_token_indices={"embed_tokens": list(ids)},
        task_type="CAUSAL_LM",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------- data
def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image, reading only its header."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


class LengthEstimator:
    """Token count of a schema sample after the processor expands its images.

    ``length = len(tokens of the rendered chat) + sum(visual tokens - 1 for each image)``: the
    rendered chat holds one pad (or ``<image>``) token per image, which the processor replaces by
    the image's visual tokens. Visual tokens per frame size are computed once and cached.
    """

    def __init__(self, processor: Any):
        self.processor = processor
        self._img_tokens: dict[tuple[int, int], int] = {}

    def image_tokens(self, width: int, height: int) -> int:
        key = (width, height)
        if key not in self._img_tokens:
            self._img_tokens[key] = models.image_token_count(self.processor, width, height)
        return self._img_tokens[key]

    def __call__(self, sample: Mapping[str, Any]) -> int:
        tok = self.processor.tokenizer
        text = tok.apply_chat_template(to_messages(sample), tokenize=False, chat_template=self.processor.chat_template)
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        for b in sample["image_bytes"] or []:
            n += self.image_tokens(*image_size(b)) - 1
        return n


def combine(datasets: Sequence[Any] | Any, processor: Any, max_length: int, with_lengths: bool = True):
    """Concatenate schema datasets (schema columns only) and add a ``length`` column.

    Samples with images longer than ``max_length`` are dropped (truncating through image tokens
    would break the model's image/token alignment); text-only samples are kept and truncated by
    the collator. Returns the combined ``datasets.Dataset``.
    """
    from datasets import Dataset, concatenate_datasets

    if isinstance(datasets, Dataset):
        datasets = [datasets]
    parts = [d.select_columns([c for c in SCHEMA_COLUMNS if c in d.column_names]) for d in datasets]
    ds = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    if "length" in ds.column_names or not with_lengths:
        return ds
    est = LengthEstimator(processor)
    lengths = [est(s) for s in ds]
    too_long = [i for i, (n, s) in enumerate(zip(lengths, ds, strict=True)) if n > max_length and s["image_bytes"]]
    if too_long:
        log.warning("dropping %d of %d samples with images longer than max_length=%d", len(too_long), len(ds), max_length)
        keep = sorted(set(range(len(ds))) - set(too_long))
        ds, lengths = ds.select(keep), [lengths[i] for i in keep]
    return ds.add_column("length", [min(n, max_length) for n in lengths])


def assistant_mask(input_ids: torch.Tensor, header: Sequence[int], end_id: int) -> torch.Tensor:
    """(B, T) bool: True for tokens of assistant turns, header excluded, end-of-turn included.

    A turn starts right after each occurrence of the ``header`` id sequence (e.g. the tokens of
    ``<|im_start|>assistant\n``) and ends at the next ``end_id`` (``<|im_end|>``), inclusive; a
    turn cut by truncation runs to the end of the row. This is the span the chat template's
    ``{% generation %}`` markers delimit, found on token ids (tests check the two agree) because
    transformers' character-offset mapping of those markers costs ~40 % of collation.
    """
    mask = torch.zeros(input_ids.shape, dtype=torch.bool)
    h, first = len(header), header[0]
    header = list(header)
    for b, row in enumerate(input_ids.tolist()):
        j, n = 0, len(row)
        while j < n:
            if row[j] == first and row[j : j + h] == header:
                k = j + h
                while k < n and row[k] != end_id:
                    k += 1
                mask[b, j + h : min(k + 1, n)] = True
                j = k + 1
            else:
                j += 1
    return mask


@dataclass
class ChatCollator:
    """Schema samples -> a padded model batch with assistant-only labels.

    Output (B = batch, T = longest sample, capped at ``max_length``): ``input_ids`` (B, T) long,
    ``attention_mask`` (B, T), ``labels`` (B, T) = input_ids where the token belongs to an
    assistant turn (content + end-of-turn token, :func:`assistant_mask`) and -100 elsewhere
    (system/user text, image tokens, the assistant header, padding), plus the processor's image
    tensors: Qwen2-VL ``pixel_values`` (patches, 1176), ``image_grid_thw`` (images, 3),
    ``mm_token_type_ids`` (B, T); LLaVA-NeXT ``pixel_values`` (images, crops, 3, H, W),
    ``image_sizes`` (images, 2). Padding is on the right; a batch without images has no image keys.

    ``prescale`` (Qwen2-VL only): resize each frame to the size the processor would resize it to
    (the same bicubic filter) from a JPEG decoded at reduced scale (``PIL.Image.draft``), before
    the processor sees it; the processor's own resize is then a no-op. This saves most of the
    decode/resize cost of 640x360 frames.
    """

    processor: Any
    max_length: int | None = None
    augment: bool = False
    seed: int = 0
    prescale: bool = True

    def __post_init__(self):
        import numpy as np

        self._rng = np.random.default_rng(self.seed)
        self._target = qwen_target_size(self.processor) if self.prescale else None
        tok = self.processor.tokenizer
        layout = models.template_layout(self.processor.chat_template)
        self._header = tok(models.ASSISTANT_HEADER[layout], add_special_tokens=False)["input_ids"]
        self._end_id = tok.convert_tokens_to_ids(models.END_OF_TURN[layout])

    def _load(self, data: bytes) -> Any:
        """Decode one frame; with ``prescale`` (and no augmentation) at the processor's size."""
        from PIL import Image

        im = Image.open(io.BytesIO(data))
        if self._target is None or self.augment:
            return im.convert("RGB")
        size = self._target(*im.size)
        im.draft("RGB", size)
        im = im.convert("RGB")
        return im if im.size == size else im.resize(size, Image.Resampling.BICUBIC)

    def _sample(self, sample: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The sample's chat messages and its (augmented) images, in order.

        # NOTE(paper §3.2, code data_collator): augmentation per image with jvla.data.augment:
        # "action" (colour jitter + translation) for trajectory samples, "vl" (also rotation,
        # scale, shear, flip; points moved with the image) for single-image VL samples. Samples
        # with points on several images get colour jitter only.
        """
        from jvla.data.augment import augment, augment_sample_points, colour_jitter

        images = [self._load(b) for b in sample["image_bytes"] or []]
        convs = sample["conversations"]
        if self.augment and images:
            points = [it for t in convs for it in t["content"] if it["type"] == "point"]
            is_action = any(BEGIN_TOKEN in (it["text"] or "") for t in convs if t["role"] == "assistant"
                            for it in t["content"] if it["type"] == "text")  # fmt: skip
            if points and len(images) > 1:
                images = [colour_jitter(im, self._rng) for im in images]
            elif points:
                w, h = images[0].size
                moved = []
                for it in points:
                    images[0], kept = augment_sample_points(it["point"], w, h, images[0], self._rng)
                    moved.append(kept or it["point"])
                it_moved = iter(moved)
                convs = [{"role": t["role"], "content": [dict(it, point=next(it_moved)) if it["type"] == "point"
                                                         else it for it in t["content"]]} for t in convs]  # fmt: skip
            else:
                images = [augment(im, rng=self._rng, kind="action" if is_action else "vl")[0] for im in images]
            if self._target is not None:
                from PIL import Image

                images = [im.resize(self._target(*im.size), Image.Resampling.BICUBIC) for im in images]
        return to_messages({"conversations": convs}), images

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        tok = self.processor.tokenizer
        texts, images = [], []
        for s in samples:
            msgs, ims = self._sample(s)
            texts.append(tok.apply_chat_template(msgs, tokenize=False, chat_template=self.processor.chat_template))
            images += ims
        out = self.processor(text=texts, images=images or None, padding=True, padding_side="right",
                             add_special_tokens=False, return_tensors="pt")  # fmt: skip
        labels = out["input_ids"].masked_fill(~assistant_mask(out["input_ids"], self._header, self._end_id), -100)
        labels[out["attention_mask"] == 0] = -100
        out["labels"] = labels
        if self.max_length is not None and labels.shape[1] > self.max_length:
            for k in ("input_ids", "attention_mask", "labels", "mm_token_type_ids"):
                if k in out:
                    out[k] = out[k][:, : self.max_length]
        return dict(out)


def qwen_target_size(processor: Any) -> Any:
    """A function (w, h) -> the (w, h) Qwen2-VL's processor resizes a frame to; None for other
    processors (LLaVA-NeXT's anyres resize is not one size)."""
    if not isinstance(processor, models.Qwen2VLProcessor):
        return None
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ip = processor.image_processor
    lo, hi, factor = ip.size["shortest_edge"], ip.size["longest_edge"], ip.patch_size * ip.merge_size

    def target(width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)
        return w, h

    return target


# ------------------------------------------------------------------------------------- trainer
def sft_config(cfg: TrainConfig, out_dir: Path, seed: int, has_eval: bool, **overrides):
    """TRL ``SFTConfig`` from a :class:`TrainConfig` (the paper profile = paper App. B)."""
    from trl import SFTConfig

    on_cpu = not torch.cuda.is_available()
    kwargs = dict(
        output_dir=str(out_dir / "checkpoints"), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_steps, adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2, adam_epsilon=cfg.adam_epsilon, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        bf16=cfg.bf16, activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        logging_steps=cfg.logging_steps, eval_strategy="steps" if has_eval else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=1, seed=seed, data_seed=seed,
        report_to="none", use_cpu=on_cpu, dataloader_num_workers=cfg.dataloader_workers,
        dataloader_persistent_workers=cfg.dataloader_workers > 0, remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True}, max_length=None, assistant_only_loss=False,
        train_sampling_strategy=cfg.sampling, prediction_loss_only=True, disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
    )  # fmt: skip
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def _cap(ds: Any, n: int, seed: int) -> Any:
    """A fixed random subset of ``n`` rows (all rows if ``n`` is 0 or the dataset is smaller)."""
    if isinstance(ds, list | tuple):
        from datasets import concatenate_datasets

        ds = concatenate_datasets(list(ds))
    return ds if not n or len(ds) <= n else ds.shuffle(seed=seed).select(range(n))


def stage_trainer_class():
    """TRL's ``SFTTrainer`` with weight loading on resume left to :func:`run_stage`.

    ``save_pretrained`` writes Qwen2-VL checkpoints with transformers' serialized key names
    (``visual.*``, ``model.layers.*``) while the Trainer's own resume loader matches in-memory
    names (``model.visual.*``, ``model.language_model.*``): it finds no key, warns, and training
    would silently continue from the parent's weights. :func:`run_stage` therefore loads a resumed
    run's weights with ``from_pretrained`` (or PEFT's loader) before building the trainer.
    Sharded FSDP / DeepSpeed checkpoints keep the Trainer's loader.
    """
    from trl import SFTTrainer

    class StageTrainer(SFTTrainer):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            if self.is_fsdp_enabled or self.is_deepspeed_enabled:
                super()._load_from_checkpoint(resume_from_checkpoint, model)

    return StageTrainer


@dataclass
class StageResult:
    """What :func:`run_stage` returns (also written to ``run.json``)."""

    model_dir: Path
    out_dir: Path
    record: dict[str, Any]


def _versions() -> dict[str, str]:
    import accelerate
    import datasets
    import peft
    import transformers
    import trl

    mods = {"torch": torch, "transformers": transformers, "trl": trl, "peft": peft, "accelerate": accelerate,
            "datasets": datasets}  # fmt: skip
    return {"python": platform.python_version(), **{k: m.__version__ for k, m in mods.items()}}


def _git() -> dict[str, Any]:
    def git(*a):
        return subprocess.run(["git", *a], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()

    return {"sha": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", "jvla"))}


def _callbacks(out_dir: Path, resume: bool) -> list[Any]:
    """dvclive logging (x = optimizer step) and a plain ``logging`` line per log event.

    dvclive writes ``<out_dir>/live/plots/metrics/{train,eval}/...tsv`` and ``metrics.json``;
    ``dvcyaml=None`` keeps it from touching the project's ``dvc.yaml`` (the pipeline declares the
    plots itself).
    """
    from dvclive import Live
    from transformers import TrainerCallback

    keep = ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "entropy")

    class Logged(TrainerCallback):
        def __init__(self):
            self.live = Live(dir=str(out_dir / "live"), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            self.live.step = state.global_step
            shown = {}
            for k, v in logs.items():
                if not isinstance(v, int | float):
                    continue
                if k.startswith("eval_") and k.endswith(("_loss", "_mean_token_accuracy")):
                    name = "eval/" + k.removeprefix("eval_")
                elif k in keep:
                    name = f"train/{k}"
                else:
                    continue
                self.live.log_metric(name, float(v))
                shown[name] = round(float(v), 4)
            if shown:
                self.live.make_summary()
                log.info("step %d/%d %s", state.global_step, state.max_steps, shown)

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.live.end()

    return [Logged()]


def run_stage(
    stage: str,
    params: Params,
    parent: str | Path,
    train_data: Any,
    out_dir: str | Path,
    eval_data: Mapping[str, Any] | Any | None = None,
    *,
    cfg: TrainConfig | None = None,
    name: str | None = None,
    resume: bool = True,
    keep_checkpoints: bool = False,
    callbacks: Sequence[Any] = (),
) -> StageResult:
    """Train one stage from ``parent`` on ``train_data`` and save the result under ``out_dir``.

    Args:
        stage: ``stage1``, ``stage2``, ``stage3``, ``finetune`` or ``one_stage`` (freezing rule
            :data:`TRAINABLE`; default hyperparameters from the params section of that name,
            ``one_stage`` from :func:`jvla.variants.train_config`).
        params: the loaded params (model loading, seed, action space).
        parent: a model directory (tiny build or a previous stage's ``model/``) or a hub id.
        train_data: a schema ``datasets.Dataset`` or a list of them (mixed and shuffled).
        out_dir: where ``model/``, ``checkpoints/``, ``live/`` and ``run.json`` go.
        eval_data: a dataset or ``{name: dataset}``; eval loss is logged as ``eval_<name>_loss``.
        cfg: hyperparameters, overriding the params section.
        name: the run's name for records (e.g. ``stage3/qwen2_vl/vlp/c1``).
        resume: continue from the last checkpoint in ``out_dir/checkpoints`` if there is one.
        keep_checkpoints: keep ``checkpoints/`` after success.
        callbacks: extra ``transformers`` trainer callbacks.
    """
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    t0, cpu0 = time.perf_counter(), time.process_time()
    if stage not in TRAINABLE:
        raise ValueError(f"stage: expected one of {list(TRAINABLE)}, found {stage!r}")
    if cfg is None:
        cfg = train_config(params, RunSpec(name or stage, stage, params.model.backbone, None))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    on_cpu = not torch.cuda.is_available()
    if on_cpu and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    space = ActionSpace.from_config(params.action)

    ckpt_dir = out_dir / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if resume and ckpt_dir.is_dir() else None
    model, processor = models.load(parent, params)
    counts = apply_freezing(model, stage)
    peft_config = lora_config(model, processor, cfg, stage, space) if cfg.peft == "lora" else None
    if last and peft_config is not None:
        from peft import PeftModel

        model, peft_config = PeftModel.from_pretrained(model, last, is_trainable=True), None
    elif last:
        model = models.load(last, params)[0]  # see StageTrainer: the Trainer's own loader fails here
        apply_freezing(model, stage)
    model.config.use_cache = False

    train_ds = combine(train_data, processor, cfg.max_length, with_lengths=cfg.sampling == "group_by_length")
    single_eval = eval_data is not None and not isinstance(eval_data, Mapping)
    eval_ds = {k: combine(_cap(v, cfg.eval_samples, params.seed), processor, cfg.max_length,
                          with_lengths=cfg.sampling == "group_by_length")
               for k, v in ({"": eval_data} if single_eval else eval_data or {}).items()}  # fmt: skip
    collator = ChatCollator(processor, cfg.max_length, augment=cfg.augment, seed=params.seed)

    args = sft_config(cfg, out_dir, params.seed, bool(eval_ds))
    trainer = stage_trainer_class()(
        model=model, args=args, data_collator=collator, train_dataset=train_ds,
        eval_dataset=eval_ds[""] if single_eval else eval_ds or None, processing_class=processor, peft_config=peft_config,
        callbacks=[*_callbacks(out_dir, resume=last is not None), *callbacks],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    if last:
        log.info("%s: resuming from %s", name or stage, last)
    train_out = trainer.train(resume_from_checkpoint=last)
    # The Trainer evaluates (and checkpoints) at the last step by itself; take that evaluation.
    eval_metrics = {k: v for h in trainer.state.log_history for k, v in h.items()
                    if k.startswith("eval_") and k.endswith("_loss")}  # fmt: skip

    model_dir = out_dir / "model"
    acc = trainer.accelerator
    if acc.is_main_process and model_dir.exists():
        shutil.rmtree(model_dir)
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(trainer.model)
    if hasattr(unwrapped, "merge_and_unload"):  # a PEFT model (fresh or resumed): merge LoRA
        merged = unwrapped.merge_and_unload()
        if acc.is_main_process:
            models.save(merged, processor, model_dir)
    else:
        trainer.save_model(str(model_dir))  # gathers FSDP shards; writes on the main process
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return StageResult(model_dir, out_dir, {})
    (model_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; run.json holds the config
    if not keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)

    wall = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    record = {
        "name": name or stage, "stage": stage, "parent": str(parent), "trainable": TRAINABLE[stage],
        "peft": cfg.peft, "params_trainable": counts["trainable"], "params_frozen": counts["frozen"],
        "train_samples": len(train_ds), "eval_samples": {k: len(v) for k, v in eval_ds.items()},
        "config": dataclasses.asdict(cfg), "model": jconfig.to_dict(params.model), "seed": params.seed,
        "profile": params.profile, "device": "cuda" if not on_cpu else "cpu",
        "device_name": torch.cuda.get_device_name(0) if not on_cpu else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "versions": _versions(), "git": _git(),
        "global_step": trainer.state.global_step, "resumed_from": Path(last).name if last else None,
        "train_loss_first": losses[0] if losses else None, "train_loss_last": losses[-1] if losses else None,
        "train_runtime_s": train_out.metrics.get("train_runtime"),
        "train_samples_per_s": train_out.metrics.get("train_samples_per_second"),
        "eval": eval_metrics,
        "wall_s": round(wall, 2), "cpu_s": round(time.process_time() - cpu0, 2),
    }  # fmt: skip
    (out_dir / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    log.info("%s: %d steps in %.1f s, loss %s -> %s", record["name"], record["global_step"], wall,
             record["train_loss_first"], record["train_loss_last"])  # fmt: skip
    return StageResult(model_dir, out_dir, record)


# ------------------------------------------------------------------------ synthetic data (tests)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220), "yellow": (230, 220, 30),
           "purple": (150, 40, 200), "cyan": (30, 210, 210), "white": (240, 240, 240), "black": (15, 15, 15)}  # fmt: skip


def colour_actions(space: ActionSpace) -> dict[str, dict]:
    """One distinct env action per colour of :data:`COLOURS` (buttons and camera)."""
    presses = {"red": ("attack",), "green": ("forward", "jump"), "blue": ("use",), "yellow": ("left",),
               "purple": ("back", "sneak"), "cyan": ("hotbar.3",), "white": ("right", "sprint"), "black": ()}  # fmt: skip
    cams = {"red": (0, 0), "green": (0, 0), "blue": (-5.2, 0), "yellow": (0, 3.7), "purple": (1.2, -1.2),
            "cyan": (0, 0), "white": (0, -7.2), "black": (2.6, 2.6)}  # fmt: skip
    out = {}
    for c in COLOURS:
        a = space.null_env_action()
        for b in presses[c]:
            a[b] = 1
        a["camera"] = list(cams[c])
        out[c] = a
    return out


def synthetic_samples(kind: str, n: int, params: Params, *, seed: int = 0, chunk: int = 1, history: int = 0,
                      size: tuple[int, int] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Small schema samples for tests and benchmarks (no game needed).

    ``trajectory``: a frame filled with one colour of :data:`COLOURS`, the user turn
    ``"<instruction>\\nobservation: " + image``, the assistant turn the colour's action
    (:func:`colour_actions`) repeated ``chunk`` times; ``history`` earlier (frame, action) turns
    precede it (random counts up to ``history``). ``knowledge``: text QA, 1-3 turns.
    ``vision``: a captioned frame. ``grounding``: a point answer on a frame with a square.
    """
    from jvla.action_tokenizer import ActionTokenizer
    from PIL import Image, ImageDraw

    from jvla.data.schema import encode_image, normalise

    rng = random.Random(seed)
    w, h = size or (params.env.width, params.env.height)
    space = ActionSpace.from_config(params.action)
    tok = ActionTokenizer(space, {s: i for i, s in enumerate(action_token_strings(space))})
    acts = colour_actions(space)
    names = list(COLOURS)
    instructions = ["Mine the iron ore.", "Chop down the tree and collect the oak logs.", "Kill the zombie.",
                    "Craft a crafting table from planks.", "Smelt the iron ore into an iron ingot."]  # fmt: skip

    def frame(colour: str) -> bytes:
        return encode_image(Image.new("RGB", (w, h), COLOURS[colour]))

    out = []
    for i in range(n):
        c = rng.choice(names)
        if kind == "trajectory":
            ins = rng.choice(instructions)
            turns, imgs = [], []
            for _ in range(rng.randint(0, history) if history else 0):
                hc = rng.choice(names)
                turns += [{"role": "user", "content": [{"type": "text", "text": f"{ins}\nobservation: "}, {"type": "image"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": tok.encode([acts[hc]])}]}]  # fmt: skip
                imgs.append(frame(hc))
            turns += [{"role": "user", "content": [{"type": "text", "text": f"{ins}\nobservation: "}, {"type": "image"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": tok.encode([acts[c]] * chunk)}]}]  # fmt: skip
            imgs.append(frame(c))
            s = {"id": f"traj-{i}", "label": ["trajectory", c], "conversations": turns, "image_bytes": imgs}
        elif kind == "knowledge":
            turns = []
            for _ in range(rng.randint(1, 3)):
                k = rng.choice(names)
                turns += [{"role": "user", "content": [{"type": "text", "text": f"What does a {k} block mean?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": f"A {k} block means {k}."}]}]  # fmt: skip
            s = {"id": f"qa-{i}", "label": ["knowledge"], "conversations": turns, "image_bytes": []}
        elif kind == "vision":
            s = {"id": f"cap-{i}", "label": ["vision", c], "image_bytes": [frame(c)], "conversations": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]},
                {"role": "assistant", "content": [{"type": "text", "text": f"The screen is {c}."}]}]}  # fmt: skip
        elif kind == "grounding":
            im = Image.new("RGB", (w, h), COLOURS["black"])
            x, y = rng.uniform(10, 90), rng.uniform(10, 90)
            ImageDraw.Draw(im).rectangle([x * w / 100 - 8, y * h / 100 - 8, x * w / 100 + 8, y * h / 100 + 8], fill=COLOURS[c])
            s = {"id": f"pt-{i}", "label": ["grounding", c], "image_bytes": [encode_image(im)], "conversations": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Point to the {c} square."}]},
                {"role": "assistant", "content": [{"type": "point", "point": [[x, y]], "label": f"{c} square"}]}]}  # fmt: skip
        else:
            raise ValueError(f"kind: expected trajectory, knowledge, vision or grounding, found {kind!r}")
        out.append(normalise(s))
    return out


# ------------------------------------------------------------------------------ named runs / CLI
def model_source(params: Params, backbone: str) -> str:
    """``tiny`` or the path / hub id of ``backbone`` (``model.source`` or ``model.ablation_source``)."""
    return params.model.source if backbone == params.model.backbone else params.model.ablation_source


def load_split(path: str | Path, split: str) -> Any | None:
    """``split`` of a ``DatasetDict.save_to_disk`` folder (``eval`` also matches ``valid``,
    ``validation``, ``test``), or None if absent."""
    from datasets import load_from_disk

    dd = load_from_disk(str(path))
    names = {"train": ("train",), "eval": ("eval", "valid", "validation", "test")}[split]
    return next((dd[n] for n in names if n in dd), None)


def corpus_texts(data_root: Path, kinds: Sequence[str] = ("knowledge", "vision", "grounding", "task_c1"),
                 limit: int = 20000) -> list[str]:  # fmt: skip
    """Text of the post-training data (for the tiny tokenizer), from whichever kinds exist."""
    texts: list[str] = []
    for kind in kinds:
        if not (data_root / kind).exists():
            continue
        ds = load_split(data_root / kind, "train")
        for s in ds.select(range(min(limit, len(ds)))):
            texts += [it["text"] for t in s["conversations"] for it in t["content"] if it["type"] == "text"]
    return texts


def run_named(name: str, params: Params, data_root: Path = DATA_DIR, models_root: Path = MODELS_DIR,
              resume: bool = True) -> Path:  # fmt: skip
    """Run one named run of the variant graph (:func:`jvla.variants.expand`).

    Data: ``<data_root>/<kind>/`` is a ``DatasetDict`` saved with ``save_to_disk`` holding a
    ``train`` split and optionally an eval split. Models: the run writes
    ``<models_root>/<name>/`` and reads its parent's ``<models_root>/<parent>/model``. A
    ``base/<backbone>`` run builds the tiny model there (``model.source: tiny``) and is a no-op
    for a hub checkpoint. Returns the output model directory (or the hub id for a base run).
    """
    runs = expand(params.variants)
    if name not in runs:
        raise KeyError(f"unknown run {name!r}; runs of params.variants: {list(runs)}")
    run = runs[name]
    if run.stage == "base":
        src = model_source(params, run.backbone)
        if src != "tiny":
            return Path(src)
        out = models_root / name / "model"
        models.build_tiny(params, run.backbone, corpus_texts(data_root), out)
        return out
    parent_run = runs[run.parent]
    src = model_source(params, run.backbone)
    parent = models_root / run.parent / "model" if parent_run.stage != "base" or src == "tiny" else src
    train = [load_split(data_root / kind, "train") for kind in run.data]
    evals = {kind: e for kind in run.data if (e := load_split(data_root / kind, "eval")) is not None}
    res = run_stage(run.stage, params, parent, train, models_root / name, evals or None,
                    cfg=train_config(params, run), name=name, resume=resume)  # fmt: skip
    return res.model_dir


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m jvla.training --run stage3/qwen2_vl/vlp/c1`` (``--list`` shows all runs)."""
    ap = argparse.ArgumentParser(prog="python -m jvla.training", description=main.__doc__)
    ap.add_argument("--run", help="run name, e.g. base/qwen2_vl, post/qwen2_vl/vlp, finetune/actvlp")
    ap.add_argument("--list", action="store_true", help="print the runs of params.variants and exit")
    ap.add_argument("--params", default=str(jconfig.PARAMS_FILE))
    ap.add_argument("--profile", default=None)
    ap.add_argument("--data-root", default=str(DATA_DIR))
    ap.add_argument("--models-root", default=str(MODELS_DIR))
    ap.add_argument("--no-resume", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    params = jconfig.load(a.params, profile=a.profile)
    if a.list or not a.run:
        for r in expand(params.variants).values():
            print(f"{r.name:40s} {r.stage:10s} parent={r.parent} data={','.join(r.data)}")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = run_named(a.run, params, Path(a.data_root), Path(a.models_root), resume=not a.no_resume)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
