"""Stage III training speed: the project's configuration vs TRL's plain defaults, in one run.

Run: ``OMP_NUM_THREADS= .venv/bin/python benchmarks/train_speed.py [--steps 60] [--history 2]``
(leave ``OMP_NUM_THREADS`` unset so the baseline gets torch's default thread count; the script
sets the thread count per configuration itself).

Both sides train the same tiny Qwen2-VL of the default profile (``model.tiny``, ``max_pixels``) on
the same synthetic Stage III samples shaped like the data stage's (JPEG frames at
``env`` size x ``data.image_scale``, instruction + ``observation:`` + frame, ``history`` earlier
frame/action turns as ``data.trajectories.history``, one action per turn), with the same batch
size, learning rate, assistant-only loss and number of steps:

* **baseline** = TRL's defaults: data in TRL's ``messages``/``images`` form, TRL's
  ``DataCollatorForVisionLanguageModeling`` (pads each batch to its longest sample), random
  sampling, collation in the training process (``dataloader_num_workers=0``), torch's default
  intra-op threads; the processor resizes each full-size frame itself.
* **project** = ``jvla.training.run_stage`` settings from ``params.stage3``: the project's
  collator (loss mask found on token ids instead of transformers' character-offset mapping;
  frames decoded at reduced JPEG scale and pre-resized, ``ChatCollator.prescale``), the trainer's
  LM head applied only at supervised positions (``StageTrainer.compute_loss``), length-grouped
  batches, one collation worker beside the trainer, 1 intra-op thread.

Each side runs ``--warmup`` steps first (not timed). Printed: samples/s, non-padding tokens/s,
padded tokens/s, the ratio project/baseline, and one row per factor turned off (ablation).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402

from jvla import config, models, tiny  # noqa: E402
from jvla import training as T  # noqa: E402
from jvla.data.store import to_dataset  # noqa: E402
from jvla.training.runner import stage_trainer_class  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import synthetic  # noqa: E402  (tests/synthetic.py: the synthetic samples the tests use)


class Timer(TrainerCallback):
    """Wall time and non-padding input tokens of the steps after ``warmup``."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.t0 = self.t1 = None
        self.tok0 = self.tok1 = 0

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == self.warmup:
            self.t0, self.tok0 = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kw):
        self.t1, self.tok1 = time.perf_counter(), state.num_input_tokens_seen


def padding_fraction(trainer, n_batches: int) -> float:
    """Share of padded positions over ``n_batches`` batches of the trainer's train dataloader."""
    real = total = 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i >= n_batches:
            break
        real += int(batch["attention_mask"].sum())
        total += batch["attention_mask"].numel()
    return 1 - real / total


def trl_dataset(samples, params):
    """Schema samples -> TRL's conversational VLM form (``messages`` + ``images``)."""
    from datasets import Dataset, Features, Image, List, Value

    from jvla.data.schema import to_messages

    rows = []
    for s in samples:
        msgs = to_messages(s)
        rows.append(
            {
                "messages": [
                    {
                        "role": m["role"],
                        "content": [{"type": it["type"], "text": it.get("text")} for it in m["content"]],
                    }
                    for m in msgs
                ],
                "images": [{"bytes": b, "path": None} for b in s["image_bytes"]],
            }
        )
    feats = Features(
        {
            "messages": List(
                {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
            ),
            "images": List(Image()),
        }
    )
    return Dataset.from_list(rows, features=feats)


def run(
    label,
    model_dir,
    params,
    cfg,
    train,
    *,
    project,
    threads,
    steps,
    warmup,
    prescale=True,
    head_at_labels=True,
):
    """Train ``warmup + steps`` steps; return (samples/s, tokens/s, padded tokens/s) of the timed ones."""
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    torch.set_num_threads(threads)
    model, processor = models.load(model_dir, params)
    T.apply_freezing(model, "stage3")
    timer = Timer(warmup)
    trainer_cls = SFTTrainer
    with tempfile.TemporaryDirectory() as tmp:
        if project:
            if head_at_labels:
                trainer_cls = stage_trainer_class()
            ds = T.combine(
                to_dataset(train), processor, cfg.max_length, with_lengths=cfg.sampling == "group_by_length"
            )
            collate = T.ChatCollator(processor, cfg.max_length, prescale=prescale)
            args = T.sft_config(
                cfg,
                Path(tmp),
                params.seed,
                False,
                save_strategy="no",
                logging_steps=10**6,
                max_steps=steps + warmup,
            )
        else:
            ds = trl_dataset(train, params)
            collate = DataCollatorForVisionLanguageModeling(
                processor, max_length=cfg.max_length, assistant_only_loss=True
            )
            # TRL's defaults, except what must match for a fair comparison (steps, batch, lr, the
            # assistant-only loss) and what is GPU-only (TRL defaults to gradient checkpointing and
            # bf16; both are off on both sides).
            args = SFTConfig(
                output_dir=tmp,
                max_steps=steps + warmup,
                per_device_train_batch_size=cfg.batch_size,
                learning_rate=cfg.learning_rate,
                assistant_only_loss=True,
                gradient_checkpointing=False,
                bf16=False,
                use_cpu=True,
                report_to="none",
                save_strategy="no",
                logging_steps=10**6,
                disable_tqdm=True,
                max_length=cfg.max_length,
                seed=params.seed,
                include_num_input_tokens_seen="non_padding",
            )
        trainer = trainer_cls(
            model=model,
            args=args,
            train_dataset=ds,
            data_collator=collate,
            processing_class=processor,
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        pad = padding_fraction(trainer, steps)
    dt = timer.t1 - timer.t0
    tok = (timer.tok1 - timer.tok0) / dt
    res = (steps * cfg.batch_size / dt, tok, tok / (1 - pad))
    print(
        f"{label:42s} {res[0]:9.1f} {res[1]:11.0f} {res[2]:11.0f}   ({dt / steps * 1000:.0f} ms/step, "
        f"padding {pad:.0%})",
        flush=True,
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best of each is kept")
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument(
        "--history",
        type=int,
        default=None,
        help="earlier frame/action turns per sample (default: params data.trajectories.history)",
    )
    ap.add_argument("--no-ablation", action="store_true")
    a = ap.parse_args()
    params = config.load()
    cfg = params.stage3
    if a.history is None:
        a.history = params.data.trajectories.history
    default_threads = torch.get_num_threads()
    threads = cfg.cpu_threads or default_threads
    scale = params.data.image_scale  # frames are stored at this scale of the env's size
    size = (round(params.env.width * scale), round(params.env.height * scale))
    train = synthetic.synthetic_samples("trajectory", a.samples, params, seed=0, history=a.history, size=size)
    configs = {
        "baseline (TRL defaults)": {"project": False, "threads": default_threads},
        "baseline, 1 thread": {"project": False, "threads": 1},
        "project (params.stage3)": {"project": True, "threads": threads},
    }
    if not a.no_ablation:
        configs |= {
            "project - length grouping": {"cfg": dataclasses.replace(cfg, sampling="random")},
            "project - collation worker": {"cfg": dataclasses.replace(cfg, dataloader_workers=0)},
            "project - frame prescale": {"prescale": False},
            "project - LM head at labels only": {"head_at_labels": False},
            f"project - 1 thread (threads={default_threads})": {"threads": default_threads},
        }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tiny.build_tiny(params, "qwen2_vl", [], f"{tmp}/base")
        n_img = models.image_token_count(models.load(model_dir, params)[1], *size)
        print(
            f"tiny Qwen2-VL, {size[0]}x{size[1]} JPEG frames -> {n_img} visual tokens, "
            f"batch {cfg.batch_size}, "
            f"history {a.history} (+1 current frame), {a.steps} timed steps x {a.rounds} rounds (best kept); "
            f"cores {os.cpu_count()}, torch default threads {default_threads}"
        )
        print(f"{'configuration':42s} {'samples/s':>9s} {'tokens/s':>11s} {'padded t/s':>11s}")
        best: dict[str, tuple] = {}
        for r in range(a.rounds):
            for label, kw in configs.items():
                kw = {"project": True, "threads": threads, **kw}
                c = kw.pop("cfg", cfg)
                res = run(
                    f"{label} [round {r + 1}]",
                    model_dir,
                    params,
                    c,
                    train,
                    steps=a.steps,
                    warmup=a.warmup,
                    **kw,
                )
                if label not in best or res[0] > best[label][0]:
                    best[label] = res
    base, proj = best["baseline (TRL defaults)"], best["project (params.stage3)"]
    print("\nbest of rounds:")
    for label, res in best.items():
        gain = "" if not label.startswith("project -") else f"   the factor gains x{proj[0] / res[0]:.2f}"
        cols = f"{res[0]:9.1f} {res[1]:11.0f} {res[2]:11.0f}"
        print(f"{label:42s} {cols}   x{res[0] / base[0]:.2f} of baseline{gain}")
    one = best["baseline, 1 thread"]
    print(f"RATIO project/baseline: samples/s x{proj[0] / base[0]:.2f}, tokens/s x{proj[1] / base[1]:.2f}")
    print(f"ratio project/baseline at 1 thread (gain without the thread setting): x{proj[0] / one[0]:.2f}")


if __name__ == "__main__":
    main()
