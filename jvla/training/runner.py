"""The stage runner: freezing, PEFT, TRL ``SFTTrainer`` settings, resume, logging and records."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from jvla import config as jconfig
from jvla import models
from jvla.action_tokenizer import action_token_strings
from jvla.actions import ActionSpace
from jvla.config import Params, TrainConfig
from jvla.paths import PROJECT_ROOT
from jvla.stages import STAGES, TRAIN_STAGES
from jvla.training.collate import ChatCollator, cap_rows, combine
from jvla.variants import RunSpec, train_config

log = logging.getLogger(__name__)

# NOTE(paper §3.1, code train.py fix_*): which parameter groups each stage trains, from the stage
# table (jvla.stages.STAGES: Stage.trainable): "language" or "all".
TRAINABLE = {name: STAGES[name].trainable for name in TRAIN_STAGES}
LORA_LM_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


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
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear" if TRAINABLE[stage] == "all" else LORA_LM_TARGETS,
        modules_to_save=["lm_head"],
        trainable_token_indices={"embed_tokens": list(ids)},
        task_type="CAUSAL_LM",
    )


def sft_config(cfg: TrainConfig, out_dir: Path, seed: int, has_eval: bool, **overrides):
    """TRL ``SFTConfig`` from a :class:`TrainConfig` (the paper profile = paper App. B)."""
    from trl import SFTConfig

    on_cpu = not torch.cuda.is_available()
    kwargs = {
        "output_dir": str(out_dir / "checkpoints"),
        "max_steps": cfg.max_steps,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_steps,
        "adam_beta1": cfg.adam_beta1,
        "adam_beta2": cfg.adam_beta2,
        "adam_epsilon": cfg.adam_epsilon,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "bf16": cfg.bf16,
        "activation_checkpointing": cfg.gradient_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False} if cfg.gradient_checkpointing else None,
        "logging_steps": cfg.logging_steps,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": cfg.eval_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": 1,
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "use_cpu": on_cpu,
        "dataloader_num_workers": cfg.dataloader_workers,
        "dataloader_persistent_workers": cfg.dataloader_workers > 0,
        "remove_unused_columns": False,
        "dataset_kwargs": {"skip_prepare_dataset": True},
        "max_length": None,
        "assistant_only_loss": False,
        "train_sampling_strategy": cfg.sampling,
        "prediction_loss_only": True,
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
    }
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


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

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """Mean NLL over the supervised (assistant) tokens, the loss TRL computes, with the LM
            head applied only at the positions that predict one (``logits_to_keep`` as a (B, T)
            bool mask). TRL 1.16 instead always runs its chunked fused-head kernel over every
            position, which on CPU costs ~45 % of a tiny-model Stage III step; at paper scale
            this keeps the 152k-vocab logits to the few action tokens of each 512-token sample.
            """
            import torch.nn.functional as F

            labels = inputs["labels"]
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = labels[:, 1:] != -100  # position p predicts token p + 1
            targets = labels[:, 1:][keep[:, :-1]]
            fwd = {k: v for k, v in inputs.items() if k != "labels"}
            logits = model(**fwd, use_cache=False, logits_to_keep=keep).logits.float()  # (N, V)
            n = targets.numel() if num_items_in_batch is None else num_items_in_batch
            loss = F.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(n).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            mode = "train" if model.training else "eval"
            gather = self.accelerator.gather_for_metrics
            with torch.no_grad():
                count = gather(torch.as_tensor(targets.numel(), device=logits.device)).sum().clamp(min=1)
                hit = gather((logits.argmax(-1) == targets).sum()).sum()
                logp = logits.log_softmax(-1)
                ent = gather(-(logp.exp() * logp).sum()).sum()
            self._metrics[mode]["mean_token_accuracy"].append((hit / count).item())
            self._metrics[mode]["entropy"].append((ent / count).item())
            return (loss, None) if return_outputs else loss

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

    mods = {
        "torch": torch,
        "transformers": transformers,
        "trl": trl,
        "peft": peft,
        "accelerate": accelerate,
        "datasets": datasets,
    }
    return {"python": platform.python_version(), **{k: m.__version__ for k, m in mods.items()}}


def _git() -> dict[str, Any]:
    def git(*a):
        return subprocess.run(["git", *a], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "sha": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--", "jvla")),
    }


def _callbacks(out_dir: Path, resume: bool) -> list[Any]:
    """dvclive logging (x = optimizer step) and a plain ``logging`` line per log event.

    dvclive writes ``<out_dir>/live/plots/metrics/{train,eval}/...tsv`` and ``metrics.json``, from
    the main process only;
    ``dvcyaml=None`` keeps it from touching the project's ``dvc.yaml`` (the pipeline declares the
    plots itself).
    """
    from dvclive import Live
    from transformers import TrainerCallback

    keep = ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "entropy")

    class Logged(TrainerCallback):
        # Only the main process opens the Live folder: another rank's Live() would clear or rewrite
        # the same files (a non-resumed Live starts by deleting its plots and metrics).
        live = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.live = Live(
                    dir=str(out_dir / "live"), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None
                )

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.live is None or not logs:
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
            if self.live is not None:
                self.live.end()

    return [Logged()]


def check_processes(cfg: TrainConfig, params: Params, processes: int, name: str) -> None:
    """Stop a run launched with another number of processes than ``cluster.processes``.

    The configured total batch is ``batch_size x grad_accum x cluster.processes``; under
    ``processes`` data-parallel processes the Trainer's would be ``batch_size x grad_accum x
    processes``. Raised on every rank, before the first step.
    """
    if processes != params.cluster.processes:
        b, a, n = cfg.batch_size, cfg.grad_accum, params.cluster.processes
        raise jconfig.ConfigError(
            f"cluster.processes: {n} (total batch {b} x {a} x {n} = {b * a * n}), but {name} runs on "
            f"{processes} processes (total batch {b * a * processes}): launch it with "
            f"--num_processes {n}, or set cluster.processes: {processes} and the stage's batch_size / "
            "grad_accum for the total batch you want"
        )


def weights_checksum(model: Any) -> list[float]:
    """``[sum, sum of squares]`` of every parameter of ``model`` in float64 (sharded FSDP2
    parameters gathered first): equal for equal weights, whatever the parameter names."""
    from torch.distributed.tensor import DTensor

    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            v = (p.full_tensor() if isinstance(p, DTensor) else p).detach().double().cpu()
            total += torch.stack([v.sum(), (v * v).sum()])
    return total.tolist()


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
        stage: a training stage of :data:`jvla.stages.STAGES` (``base``, ``stage1``, ``stage2``,
            ``stage3``, ``one_stage``, ``finetune``): freezing rule :data:`TRAINABLE`; default
            hyperparameters from :func:`jvla.variants.train_config`.
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
    eval_ds = {
        k: combine(
            cap_rows(v, cfg.eval_samples, params.seed),
            processor,
            cfg.max_length,
            with_lengths=cfg.sampling == "group_by_length",
        )
        for k, v in ({"": eval_data} if single_eval else eval_data or {}).items()
    }
    collator = ChatCollator(processor, cfg.max_length, augment=cfg.augment, seed=params.seed)

    args = sft_config(cfg, out_dir, params.seed, bool(eval_ds))
    trainer = stage_trainer_class()(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds,
        eval_dataset=eval_ds[""] if single_eval else eval_ds or None,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[*_callbacks(out_dir, resume=last is not None), *callbacks],
    )
    trainer.remove_callback(PrinterCallback)
    acc = trainer.accelerator
    check_processes(cfg, params, acc.num_processes, name or stage)
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not trainer.is_fsdp_enabled:
        # accelerate 1.15 enables FSDP only on GPU-like devices (AcceleratorState); on CPU the
        # FSDP config would otherwise train as plain DDP, every rank holding the whole model.
        raise RuntimeError(
            f"{name or stage}: launched with an FSDP config, but accelerate did not enable FSDP on "
            f"{acc.device.type} ({acc.distributed_type}); FSDP needs GPUs"
        )
    if last:
        log.info("%s: resuming from %s", name or stage, last)
    train_out = trainer.train(resume_from_checkpoint=last)
    # The Trainer evaluates (and checkpoints) at the last step by itself; take that evaluation.
    eval_metrics = {
        k: v
        for h in trainer.state.log_history
        for k, v in h.items()
        if k.startswith("eval_") and k.endswith("_loss")
    }

    model_dir = out_dir / "model"
    if acc.is_main_process and model_dir.exists():
        shutil.rmtree(model_dir)
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(trainer.model)
    if hasattr(unwrapped, "merge_and_unload"):  # a PEFT model (fresh or resumed): merge LoRA
        unwrapped = unwrapped.merge_and_unload()
        if acc.is_main_process:
            models.save(unwrapped, processor, model_dir)
    else:
        trainer.save_model(str(model_dir))  # gathers FSDP shards; writes on the main process
    # Every rank's trained weights, as the saved model must hold them (DDP keeps the ranks equal).
    sums = acc.gather(torch.tensor([weights_checksum(unwrapped)], dtype=torch.float64, device=acc.device))
    sums = sums.tolist()
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return StageResult(model_dir, out_dir, {})
    (model_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; run.json holds the config
    if not keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)

    wall = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    state = trainer.state
    batch = {
        "per_device": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "processes": acc.num_processes,
        "total": cfg.batch_size * cfg.grad_accum * acc.num_processes,
        # What the data loaders really consumed per optimizer step, from the Trainer's epoch
        # counter (each rank's share of an epoch): a rank that does not shard, or a lost
        # accumulation step, shows here and not in the arithmetic above.
        "measured_per_step": round(state.epoch * len(train_ds) / state.global_step, 3)
        if state.global_step
        else None,
    }
    record = {
        "name": name or stage,
        "stage": stage,
        "parent": str(parent),
        "trainable": TRAINABLE[stage],
        "peft": cfg.peft,
        "params_trainable": counts["trainable"],
        "params_frozen": counts["frozen"],
        "train_samples": len(train_ds),
        "eval_samples": {k: len(v) for k, v in eval_ds.items()},
        "config": dataclasses.asdict(cfg),
        "model": jconfig.to_dict(params.model),
        "seed": params.seed,
        "profile": params.profile,
        "device": "cuda" if not on_cpu else "cpu",
        "device_name": torch.cuda.get_device_name(0)
        if not on_cpu
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "versions": _versions(),
        "git": _git(),
        "global_step": trainer.state.global_step,
        "batch": batch,
        "rank": acc.process_index,  # of the process that wrote this record (always the main one)
        "weights_checksum": sums,  # per rank: [sum, sum of squares] of the trained parameters
        "resumed_from": Path(last).name if last else None,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_runtime_s": train_out.metrics.get("train_runtime"),
        "train_samples_per_s": train_out.metrics.get("train_samples_per_second"),
        "eval": eval_metrics,
        "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
    }
    (out_dir / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    log.info(
        "%s: %d steps in %.1f s, loss %s -> %s",
        record["name"],
        record["global_step"],
        wall,
        record["train_loss_first"],
        record["train_loss_last"],
    )
    return StageResult(model_dir, out_dir, record)
