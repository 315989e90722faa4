"""The stage runner: loss masking, freezing per stage, LoRA, resume, records, and learning."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

torch = pytest.importorskip("torch")

import synthetic  # noqa: E402  (tests/synthetic.py: test data)
from safetensors.torch import load_file  # noqa: E402

from jvla import config, models, tiny, variants  # noqa: E402
from jvla import training as T  # noqa: E402
from jvla.action_tokenizer import ActionTokenizer  # noqa: E402
from jvla.data import store  # noqa: E402
from jvla.data.schema import decode_images, to_messages  # noqa: E402

KINDS = ("trajectory", "knowledge", "vision", "grounding")


def tiny_dir(tmp_path_factory, params, backbone):
    """Build each tiny model once per session (same path as test_models.py)."""
    out = tmp_path_factory.getbasetemp() / "jvla-tiny" / backbone
    if not (out / "model.safetensors").exists():
        tiny.build_tiny(params, backbone, ["Mine the iron ore.", "A red block means red."], out)
    return out


@pytest.fixture(scope="module")
def data(params):
    """Small synthetic datasets of each kind (history up to 2, chunk 2 for trajectories)."""
    out = {
        k: store.to_dataset(synthetic.synthetic_samples(k, 16, params, seed=i, history=2, chunk=2))
        for i, k in enumerate(KINDS)
    }
    return out


def one_step(params, **kw):
    """Stage hyperparameters for a one-step run: no warmup (the first step would have lr 0)."""
    base = {
        "max_steps": 1,
        "warmup_steps": 0,
        "save_steps": 1000,
        "eval_steps": 1000,
        "logging_steps": 1,
        "batch_size": 8,
        "dataloader_workers": 0,
    }
    return dataclasses.replace(params.stage3, **{**base, **kw})


# ---------------------------------------------------------------------------------- collation
@pytest.mark.parametrize("backbone", models.BACKBONES)
def test_collator_masks_everything_but_assistant_tokens(backbone, tmp_path_factory, params, data):
    _, processor = models.load(tiny_dir(tmp_path_factory, params, backbone), params)
    rows = [data[k][i] for i in range(4) for k in KINDS]  # mixed kinds, text-only rows included
    coll = T.ChatCollator(processor, max_length=512)
    out = coll(rows)
    labels, ids = out["labels"], out["input_ids"]
    # reference: the template's {% generation %} markers through transformers' own mask
    msgs = []
    for s in rows:
        m, images = to_messages(s), iter(decode_images(s))
        for turn in m:
            for it in turn["content"]:
                if it["type"] == "image":
                    it["image"] = next(images)
        msgs.append(m)
    ref = processor.apply_chat_template(
        msgs,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        return_assistant_tokens_mask=True,
        processor_kwargs={"padding": True, "padding_side": "right"},
    )
    assert torch.equal(ref["input_ids"], ids)
    expected = ref["assistant_masks"].bool() & ref["attention_mask"].bool()
    assert torch.equal(labels != -100, expected), "loss mask differs from the generation markers"
    assert torch.equal(labels[labels != -100], ids[labels != -100])
    tok = processor.tokenizer
    # no image, padding, system or user token is supervised
    for t in ("<|image_pad|>", "<image>", "<|endoftext|>", "<|im_start|>", "<|vision_start|>"):
        assert not (labels == tok.convert_tokens_to_ids(t)).any(), t
    # a trajectory row: exactly its action strings and an <|im_end|> per assistant turn
    traj = next(i for i, s in enumerate(rows) if s["label"][0] == "trajectory")
    want = "".join(
        it["text"] + "<|im_end|>"
        for t in rows[traj]["conversations"]
        if t["role"] == "assistant"
        for it in t["content"]
    )
    assert tok.decode(ids[traj][labels[traj] != -100]) == want
    # the length column predicts the collated lengths exactly (used for length grouping)
    est = T.LengthEstimator(processor)
    assert [est(s) for s in rows] == out["attention_mask"].sum(1).tolist()


def test_assistant_mask_on_ids():
    header, end = [1, 7, 9], 2
    ids = torch.tensor([[1, 5, 9, 4, 2, 1, 7, 9, 3, 3, 2, 0, 0], [1, 7, 9, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6]])
    m = T.assistant_mask(ids, header, end)
    assert m[0].nonzero().flatten().tolist() == [8, 9, 10]  # content + end token, header excluded
    assert m[1].nonzero().flatten().tolist() == list(range(3, 13))  # cut by truncation: to the end


def test_collator_truncates_text_and_drops_long_image_samples(tmp_path_factory, params, data):
    _, processor = models.load(tiny_dir(tmp_path_factory, params, "qwen2_vl"), params)
    out = T.ChatCollator(processor, max_length=20)([data["knowledge"][i] for i in range(3)])
    assert out["input_ids"].shape[1] == 20 and out["labels"].shape == (3, 20)
    ds = T.combine([data["trajectory"], data["knowledge"]], processor, max_length=60)
    assert all(not s["image_bytes"] for s in ds), "image samples longer than max_length must be dropped"
    assert max(ds["length"]) <= 60


def test_augmentation_keeps_sizes_and_masks(tmp_path_factory, params, data):
    _, processor = models.load(tiny_dir(tmp_path_factory, params, "qwen2_vl"), params)
    rows = [data[k][i] for i in range(2) for k in KINDS]
    plain, aug = (
        T.ChatCollator(processor, 512)(rows),
        T.ChatCollator(processor, 512, augment=True, seed=1)(rows),
    )
    assert torch.equal(plain["image_grid_thw"], aug["image_grid_thw"])
    assert not torch.equal(plain["pixel_values"], aug["pixel_values"])
    traj = [i for i, s in enumerate(rows) if s["label"][0] == "trajectory"]
    assert torch.equal(plain["labels"][traj], aug["labels"][traj])


def test_trainer_loss_equals_the_models_own_loss(tmp_path_factory, tmp_path, params, data):
    """The LM head applied only at supervised positions gives the model's standard shifted NLL."""
    from jvla.training.runner import sft_config, stage_trainer_class

    model, processor = models.load(tiny_dir(tmp_path_factory, params, "qwen2_vl"), params)
    coll = T.ChatCollator(processor, 512)
    ds = T.combine([data["trajectory"], data["vision"]], processor, 512)
    trainer = stage_trainer_class()(
        model=model, args=sft_config(one_step(params), tmp_path, 0, False), data_collator=coll,
        train_dataset=ds, processing_class=processor,
    )  # fmt: skip
    batch = coll([ds[i] for i in range(6)])
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        reference = model(**batch).loss
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


# ------------------------------------------------------------------------------------ freezing
CASES = [  # (backbone, stage, data kinds, peft)
    ("qwen2_vl", "stage1", ("knowledge",), "none"),
    ("qwen2_vl", "stage2", ("vision", "grounding"), "none"),
    ("qwen2_vl", "stage3", ("trajectory",), "none"),
    ("qwen2_vl", "finetune", ("trajectory",), "none"),
    ("qwen2_vl", "one_stage", KINDS, "none"),
    ("llava_next", "stage1", ("knowledge",), "none"),
    ("llava_next", "stage2", ("vision", "grounding"), "none"),
    ("llava_next", "stage3", ("trajectory",), "none"),
]
# Parameters no loss can reach: CLIP's post_layernorm only feeds the pooled output, which
# LLaVA-NeXT does not use (it takes a hidden state). True of the real checkpoints too.
DEAD = ("vision_tower.post_layernorm.",)


@pytest.mark.parametrize(("backbone", "stage", "kinds", "peft"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_one_step_changes_exactly_the_trainable_parameters(
    backbone, stage, kinds, peft, tmp_path_factory, tmp_path, params, data
):
    parent = tiny_dir(tmp_path_factory, params, backbone)
    res = T.run_stage(
        stage, params, parent, [data[k] for k in kinds], tmp_path, cfg=one_step(params, peft=peft)
    )
    before, after = load_file(parent / "model.safetensors"), load_file(res.model_dir / "model.safetensors")
    assert before.keys() == after.keys()
    rule = T.TRAINABLE[stage]
    for name in before:
        trainable = rule == "all" or models.param_group(name) == "language"
        changed = not torch.equal(before[name], after[name])
        if trainable and not any(d in name for d in DEAD):
            assert changed, f"{stage}: trainable {name} did not change"
        elif not trainable:
            assert not changed, f"{stage}: frozen {name} ({models.param_group(name)}) changed"
    assert res.record["global_step"] == 1


def test_lora_trains_adapters_head_and_action_rows_only(tmp_path_factory, tmp_path, params, data, space):
    parent = tiny_dir(tmp_path_factory, params, "qwen2_vl")
    res = T.run_stage(
        "stage3", params, parent, data["trajectory"], tmp_path, cfg=one_step(params, peft="lora")
    )
    before, after = load_file(parent / "model.safetensors"), load_file(res.model_dir / "model.safetensors")
    _, processor = models.load(parent, params)
    action_ids = set(ActionTokenizer.from_tokenizer(processor.tokenizer, space).action_ids)
    lora = (
        "q_proj.weight",
        "k_proj.weight",
        "v_proj.weight",
        "o_proj.weight",
        "gate_proj.weight",
        "up_proj.weight",
        "down_proj.weight",
    )
    for name in before:
        changed = not torch.equal(before[name], after[name])
        if models.param_group(name) != "language":
            assert not changed, name
        elif name.endswith(lora) or name.startswith("lm_head"):
            assert changed, f"LoRA target {name} unchanged after merging"
        elif "embed_tokens" in name:
            rows = (before[name] != after[name]).any(1).nonzero().flatten().tolist()
            assert rows and set(rows) <= action_ids, "only action-token rows of the embeddings may train"
        else:
            assert not changed, f"{name} is not a LoRA target but changed"


# -------------------------------------------------------------------------- resume and records
class Crash(Exception):
    pass


def live_losses(out_dir) -> dict[int, float]:
    """step -> train loss from the run's dvclive plot file."""
    rows = (out_dir / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()[1:]
    return {int(r.split("\t")[0]): float(r.split("\t")[1]) for r in rows}


@pytest.mark.parametrize("peft", ["none", "lora"])
def test_resume_continues_step_count_and_loss(peft, tmp_path_factory, tmp_path, params, data):
    from transformers import TrainerCallback

    parent = tiny_dir(tmp_path_factory, params, "qwen2_vl")
    cfg = one_step(params, max_steps=4, save_steps=2, warmup_steps=1, dataloader_workers=1, peft=peft)
    train = [data["trajectory"], data["vision"]]
    full = T.run_stage("stage3", params, parent, train, tmp_path / "full", cfg=cfg)

    class CrashAt3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 2:
                raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        T.run_stage("stage3", params, parent, train, out, cfg=cfg, callbacks=[CrashAt3()])
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    res = T.run_stage("stage3", params, parent, train, out, cfg=cfg)
    assert res.record["resumed_from"] == "checkpoint-2" and res.record["global_step"] == 4
    full_loss, res_loss = live_losses(tmp_path / "full"), live_losses(out)
    assert sorted(res_loss) == [1, 2, 3, 4], res_loss
    assert [res_loss[k] for k in (3, 4)] == pytest.approx([full_loss[k] for k in (3, 4)], rel=1e-4), (
        "the resumed run must reproduce the uninterrupted losses"
    )
    assert res.record["train_loss_last"] == pytest.approx(full.record["train_loss_last"], rel=1e-4)
    assert not (out / "checkpoints").exists()


def test_run_json_and_dvclive_outputs(tmp_path_factory, tmp_path, params, data):
    parent = tiny_dir(tmp_path_factory, params, "qwen2_vl")
    res = T.run_stage(
        "stage3",
        params,
        parent,
        data["trajectory"],
        tmp_path,
        eval_data={"trajectory_c2": data["trajectory"]},
        cfg=one_step(params, max_steps=2),
        name="stage3/test",
    )
    rec = json.loads((tmp_path / "run.json").read_text())
    for key in ("config", "versions", "seed", "device", "wall_s", "git", "threads", "params_trainable"):
        assert key in rec, key
    assert rec["name"] == "stage3/test" and rec["config"]["max_steps"] == 2 and rec["seed"] == params.seed
    assert {"torch", "transformers", "trl", "peft"} <= set(rec["versions"])
    assert "eval_trajectory_c2_loss" in rec["eval"]
    live = tmp_path / "live"
    assert (live / "plots" / "metrics" / "train" / "loss.tsv").exists()
    assert (live / "plots" / "metrics" / "eval" / "trajectory_c2_loss.tsv").exists()
    assert "train" in json.loads((live / "metrics.json").read_text())
    assert not (live / "dvc.yaml").exists()
    assert not [f.name for f in res.model_dir.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".pkl")]
    models.load(res.model_dir, params)  # the output loads like any model directory


def test_sft_config_maps_the_paper_hyperparameters(tmp_path):
    paper = config.load(profile="paper")
    args = T.sft_config(paper.stage3, tmp_path, paper.seed, True, bf16=False)
    assert (args.learning_rate, args.warmup_steps, args.lr_scheduler_type.value) == (5e-6, 200, "cosine")
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon, args.weight_decay) == (0.9, 0.95, 1e-8, 0.0)
    assert (args.max_grad_norm, args.per_device_train_batch_size, args.gradient_accumulation_steps) == (
        1.0,
        8,
        1,
    )
    assert args.seed == 42 and args.activation_checkpointing
    s1 = T.sft_config(paper.stage1, tmp_path, paper.seed, True, bf16=False)
    assert (s1.per_device_train_batch_size, s1.gradient_accumulation_steps) == (2, 4)


def test_run_named_builds_and_chains_runs(tmp_path, params, data, capsys):
    p = dataclasses.replace(
        config.load(profile="smoke"),
        variants={
            "il": config.VariantConfig(
                backbone="qwen2_vl", post_training="none", stage3=True, apt_chunk=1, ft_chunk=1
            )
        },
    )
    root = tmp_path / "data"
    store.save(
        {"train": list(data["trajectory"]), "eval": list(data["trajectory"])[:4]}, root / "trajectory_c1"
    )
    store.save({"train": list(data["trajectory"])}, root / "task_c1")
    T.main(["--list", "--profile", "smoke"])
    assert "finetune/actvlp" in capsys.readouterr().out
    for run in variants.expand(p.variants):
        T.run_named(run, p, root, tmp_path / "models")
    assert (tmp_path / "models" / "finetune" / "il" / "model" / "model.safetensors").exists()
    rec = json.loads((tmp_path / "models" / "finetune" / "il" / "run.json").read_text())
    assert (
        rec["parent"].endswith("stage3/qwen2_vl/none/c1/model") and rec["global_step"] == p.finetune.max_steps
    )


# ------------------------------------------------------------------------------------ behaviour
@pytest.mark.slow
def test_tiny_model_learns_colour_to_action(tmp_path_factory, tmp_path, params, space):
    """Stage III from the random-init tiny model: frame colour -> action tokens, >= 90 % exact."""
    t0 = time.process_time()
    parent = tiny_dir(tmp_path_factory, params, "qwen2_vl")
    train = store.to_dataset(synthetic.synthetic_samples("trajectory", 256, params, seed=0))
    cfg = dataclasses.replace(
        params.stage3, max_steps=100, warmup_steps=10, save_steps=1000, logging_steps=50, dataloader_workers=0
    )  # all CPU time in this process, for the budget check
    res = T.run_stage("stage3", params, parent, train, tmp_path, cfg=cfg)
    model, processor = models.load(res.model_dir, params)
    model.eval()
    tok = ActionTokenizer.from_tokenizer(processor.tokenizer, space)
    actions = synthetic.colour_actions(space)
    test = synthetic.synthetic_samples("trajectory", 48, params, seed=123)
    msgs = []
    for s in test:
        m, images = to_messages(s)[:-1], iter(decode_images(s))
        for turn in m:
            for it in turn["content"]:
                if it["type"] == "image":
                    it["image"] = next(images)
        msgs.append(m)
    inp = processor.apply_chat_template(
        msgs,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left"},
    )
    with torch.no_grad():
        gen = model.generate(**inp, max_new_tokens=12, do_sample=False)[:, inp["input_ids"].shape[1] :]
    hits = 0
    for s, g in zip(test, gen.tolist(), strict=True):
        want = tok.encode_ids([actions[s["label"][1]]])
        hits += g[: len(want)] == want
    cpu = time.process_time() - t0
    assert hits / len(test) >= 0.9, f"exact match {hits}/{len(test)} after {cfg.max_steps} steps"
    assert cpu < 60, f"took {cpu:.0f} CPU-s, over the one-CPU-minute budget"
