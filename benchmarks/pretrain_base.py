"""Does the base pretraining help? Held-out accuracy of the random-init vs the pretrained tiny VLM.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pretrain_base.py OUT.json
[--backbones qwen2_vl llava_next] [--steps 500 1500 3000] [--profile default]``

For each backbone, the base run of the pipeline (:func:`jvla.training.build_base`, the default
profile's ``pretrain`` and ``pretrain_data`` unless ``--steps`` overrides ``pretrain.max_steps``)
runs in a temporary models folder, reading the project's ``data/`` for the tokenizer corpus as the
``base`` stage does. Its random-init build (``init/``) and each pretrained model answer every
question of the held-out generic eval split greedily (:func:`jvla.vl_bench.evaluate`: one
question per kind and image; exact / number / yes-no / keyword / point rules of
:mod:`jvla.data.reference`). Written to OUT.json: per backbone, the accuracy per question kind
(with n) of ``prior`` (always the most frequent answer of the kind; points: the image centre),
``random`` and each step count, the pretraining's wall time (``run.json``
``wall_s``: the training alone) and the whole base run's (data, build, training, saving).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import yaml  # noqa: E402

from jvla import config, models, study, vl_bench  # noqa: E402
from jvla.data.store import load  # noqa: E402
from jvla.paths import DATA_DIR  # noqa: E402
from jvla.training import build_base  # noqa: E402
from jvla.variants import expand  # noqa: E402

log = logging.getLogger("pretrain_base")


def accuracy(model_dir: Path, params: config.Params, eval_ds, batch_size: int) -> dict[str, dict]:
    """``{kind: {n, correct, accuracy}}`` of the model in ``model_dir`` on the generic eval split."""
    model, processor = models.load(model_dir, params)
    model.eval()
    records = vl_bench.evaluate(model, processor, {"generic": eval_ds}, batch_size=batch_size)
    return vl_bench.accuracy_by_category(records)


def dotted_overrides(items: list[str], option: str = "--set") -> dict:
    """``["a.b=1", "a.c=x"]`` -> ``{"a": {"b": 1, "c": "x"}}`` (values parsed as YAML); a malformed
    item exits naming ``option``. The benchmarks' one ``KEY=VALUE`` parser."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option}: expected KEY=VALUE, found {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="JSON file to write")
    ap.add_argument("--backbones", nargs="+", default=["qwen2_vl", "llava_next"])
    ap.add_argument(
        "--steps", nargs="+", type=int, default=None, help="pretrain.max_steps values (default: params)"
    )
    ap.add_argument("--profile", default=None)
    ap.add_argument("--batch-size", type=int, default=16, help="generation batch size")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="params overrides, dotted keys, YAML values (e.g. model.tiny.rope_theta=10)",
    )
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    sets = dotted_overrides(a.set)
    base_params = config.load(profile=a.profile, overrides=sets)
    steps = a.steps or [base_params.pretrain.max_steps]
    result = {
        "profile": base_params.profile,
        "pretrain_data": config.to_dict(base_params.pretrain_data),
        "pretrain": config.to_dict(base_params.pretrain),
        "threads": torch.get_num_threads(),
        "overrides": sets,
        "backbones": {},
    }
    runs = {r.backbone: r for r in expand(base_params.variants).values() if r.stage == "base"}
    for backbone in a.backbones:
        entry: dict = {"runs": {}}
        with tempfile.TemporaryDirectory(prefix="jvla-pretrain-") as tmp:
            for n in steps:
                over = study.merge(sets, {"pretrain": {"max_steps": n}})
                params = config.load(profile=a.profile, overrides=over)
                t0 = time.perf_counter()
                model_dir = build_base(runs[backbone], params, DATA_DIR, Path(tmp) / str(n))
                wall = time.perf_counter() - t0
                out = model_dir.parent
                eval_ds = load(out / "data")["eval"]
                if "random" not in entry:
                    entry["prior"] = vl_bench.accuracy_by_category(vl_bench.answer_prior(eval_ds))
                    entry["random"] = accuracy(out / "init", params, eval_ds, a.batch_size)
                    log.info(
                        "%s random: %s",
                        backbone,
                        {k: round(v["accuracy"], 3) for k, v in entry["random"].items()},
                    )
                rec = json.loads((out / "run.json").read_text())
                acc = accuracy(model_dir, params, eval_ds, a.batch_size)
                entry["runs"][str(n)] = {
                    "accuracy": acc,
                    "train_wall_s": rec["wall_s"],
                    "base_run_wall_s": round(wall, 1),
                    "train_loss_last": rec["train_loss_last"],
                    "eval": rec["eval"],
                }
                log.info(
                    "%s %d steps (%.0f s): %s",
                    backbone,
                    n,
                    rec["wall_s"],
                    {k: round(v["accuracy"], 3) for k, v in acc.items()},
                )
                a.out.write_text(
                    json.dumps(result | {"backbones": {**result["backbones"], backbone: entry}}, indent=1)
                )
        result["backbones"][backbone] = entry
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
