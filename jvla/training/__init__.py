"""One stage runner for every ActVLP stage, the task fine-tune, the one-stage baseline and the
base pretraining.

:func:`run_stage` takes a parent model directory (or hub id), train/eval datasets in the schema of
:mod:`jvla.data.schema`, and a stage kind, and writes::

    <out_dir>/model/            the trained model + processor (merged if LoRA), loads with models.load
    <out_dir>/checkpoints/      HF Trainer checkpoints (resume); removed after success unless kept
    <out_dir>/live/             dvclive metrics and loss curves (``dvc plots`` reads plots/metrics)
    <out_dir>/run.json          resolved config, versions, seed, device, threads, wall time, losses

Freezing (paper §3.1; :data:`TRAINABLE`, from the stage table :data:`jvla.stages.STAGES`):

=============  =========================================  ========================================
stage          trainable                                  frozen
=============  =========================================  ========================================
base           everything (generic pretraining)           nothing
stage1         language model (embeddings, layers, head)  vision tower, projector
stage2         everything                                 nothing
stage3         language model, full or LoRA (``peft``)    vision tower, projector
finetune       as stage3                                  as stage3
one_stage      everything (like stage2)                   nothing
=============  =========================================  ========================================

Loss: only on assistant tokens. The chat template marks each assistant turn with
``{% generation %}``; the mask covers the assistant content and its ``<|im_end|>`` (not the
``<|im_start|>assistant\n`` header, which the official collator also trains on). Every other
token (system, user, image pads, padding) gets label -100.

Modules: :mod:`~jvla.training.runner` (:func:`run_stage`, freezing, SFT settings),
:mod:`~jvla.training.collate` (lengths, loss mask, collator), :mod:`~jvla.training.cli` (named
runs of the variant graph, ``python -m jvla.training``).
"""

from jvla.training.cli import build_base, corpus_texts, load_split, main, model_source, run_named
from jvla.training.collate import ChatCollator, LengthEstimator, assistant_mask, combine
from jvla.training.runner import TRAINABLE, StageResult, apply_freezing, lora_config, run_stage, sft_config

__all__ = [
    "TRAINABLE",
    "ChatCollator",
    "LengthEstimator",
    "StageResult",
    "apply_freezing",
    "assistant_mask",
    "build_base",
    "combine",
    "corpus_texts",
    "load_split",
    "lora_config",
    "main",
    "model_source",
    "run_named",
    "run_stage",
    "sft_config",
]
