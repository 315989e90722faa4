"""Tiny VLM builders, the chat template, the processor without torchvision, loading."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from jvla import models  # noqa: E402
from jvla import tiny as tiny_models  # noqa: E402
from jvla.action_tokenizer import ActionTokenizer, action_token_strings  # noqa: E402
from jvla.data.schema import GROUNDING_TOKENS  # noqa: E402


def tiny_dir(tmp_path_factory, params, backbone: str) -> Path:
    """Build each tiny model once per session (shared with test_training.py through the path)."""
    out = tmp_path_factory.getbasetemp() / "jvla-tiny" / backbone
    if not (out / "model.safetensors").exists():
        tiny_models.build_tiny(params, backbone, ["Mine the iron ore.", "A red block means red."], out)
    return out


@pytest.fixture(scope="module", params=models.BACKBONES)
def tiny(request, tmp_path_factory, params):
    path = tiny_dir(tmp_path_factory, params, request.param)
    model, processor = models.load(path, params)
    return request.param, path, model, processor


def test_saved_files_are_safetensors_and_reload(tiny):
    backbone, path, model, processor = tiny
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names), names
    assert models.backbone_of(model) == backbone
    # AutoProcessor silently returns the bare tokenizer when the processor class is unregistered.
    assert hasattr(processor, "image_processor"), type(processor)
    if backbone == "qwen2_vl":
        assert isinstance(processor, models.ImageOnlyQwen2VLProcessor)


def test_vocabulary_holds_chat_grounding_and_action_tokens(tiny, space):
    _, _, model, processor = tiny
    tok = processor.tokenizer
    wanted = [
        *models.QWEN_SPECIALS,
        *GROUNDING_TOKENS,
        models.LLAVA_IMAGE_TOKEN,
        *action_token_strings(space),
    ]
    for t in wanted:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{t} is not one token: {ids}"
    assert max(tok.convert_tokens_to_ids(wanted)) < model.get_input_embeddings().weight.shape[0]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    # the action tokenizer finds every action token by string
    ActionTokenizer.from_tokenizer(tok, space)


def test_chat_template_renders_qwen2_vl_layout(tiny):
    backbone, _, _, processor = tiny
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "Mine it.\nobservation: "}, {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ]
    text = processor.tokenizer.apply_chat_template(
        msgs, tokenize=False, chat_template=processor.chat_template
    )
    img = models.IMAGE_PLACEHOLDER[backbone]
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\nMine it.\nobservation: {img}<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"
    )
    prompt = processor.tokenizer.apply_chat_template(
        msgs[:1], tokenize=False, add_generation_prompt=True, chat_template=processor.chat_template
    )
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_generation_markers_cover_assistant_content_and_end_token(tiny):
    _, _, _, processor = tiny
    msgs = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]
    out = processor.tokenizer.apply_chat_template(
        msgs,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        chat_template=processor.chat_template,
    )
    ids = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert processor.tokenizer.decode(ids) == "a1<|im_end|>a2<|im_end|>"


def test_image_tokens_per_frame(tiny, params):
    backbone, _, _, processor = tiny
    n = models.image_token_count(processor, params.env.width, params.env.height)
    if backbone == "qwen2_vl":
        # smart_resize(360, 640) within max_pixels 25088 -> 112 x 196 -> 8 x 14 patches -> 28 tokens
        assert n == 28
    else:
        assert 16 < n < 80


def test_generate_runs(tiny, params):
    from PIL import Image

    _, _, model, processor = tiny
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "observation: "},
                {"type": "image", "image": Image.new("RGB", (320, 180), (200, 0, 0))},
            ],
        }
    ]
    inp = processor.apply_chat_template(
        msgs, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    out = model.generate(**inp, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inp["input_ids"].shape[1] + 3


def test_param_groups_partition_the_model(tiny):
    backbone, _, model, _ = tiny
    groups: dict[str, int] = {}
    for name, _ in model.named_parameters():
        groups[models.param_group(name)] = groups.get(models.param_group(name), 0) + 1
    assert set(groups) == {"vision", "projector", "language"}, groups
    assert models.param_group("model.visual.merger.mlp.0.weight") == "projector"
    assert models.param_group("model.visual.blocks.0.attn.qkv.weight") == "vision"
    assert models.param_group("model.multi_modal_projector.linear_1.weight") == "projector"
    assert models.param_group("model.language_model.layers.0.mlp.up_proj.weight") == "language"
    assert models.param_group("lm_head.weight") == "language"


def test_add_vocabulary_resizes_only_when_ids_do_not_fit(tiny, space):
    _, _, model, processor = tiny
    rows = model.get_input_embeddings().weight.shape[0]
    assert models.add_vocabulary(model, processor.tokenizer, space) == []
    assert model.get_input_embeddings().weight.shape[0] == rows  # everything fits: no resize
    model.resize_token_embeddings(len(processor.tokenizer) - 10)  # pretend the table is too small
    models.add_vocabulary(model, processor.tokenizer, space)
    new_rows = model.get_input_embeddings().weight.shape[0]
    assert new_rows >= len(processor.tokenizer) and new_rows % 64 == 0
    model.resize_token_embeddings(rows)


def test_chat_template_llama3_layout_marks_assistant():
    tpl = models.chat_template("<image>", "llama3")
    assert models.template_layout(tpl) == "llama3" and "{% generation %}" in tpl
    with pytest.raises(ValueError, match="layout"):
        models.chat_template("<image>", "other")


def test_build_rejects_unknown_backbone(params, tmp_path):
    with pytest.raises(ValueError, match="backbone"):
        tiny_models.build_tiny(params, "gpt2", [], tmp_path)


def test_mrope_spans_let_attention_tell_frame_columns_apart(tiny, params):
    """Regression (learning study, round 1): at Qwen2-VL's RoPE base 1e6 the tiny M-RoPE's width
    band turns 0.001 rad across a frame, and the model cannot learn left from right
    (``benchmarks/position_probe.py``). The spans are checked against the library's own rotary."""
    backbone, _, model, processor = tiny
    if backbone != "qwen2_vl":
        pytest.skip("M-RoPE is Qwen2-VL's; LLaVA-NeXT's visual tokens are a 1-D sequence")
    rows, cols = tiny_models.image_grid(processor, params.env.width, params.env.height)
    assert (rows, cols) == (4, 7)
    spans = tiny_models.mrope_spans(model.config, (rows, cols))
    rot = model.model.language_model.rotary_emb
    corners = {"height": [0, rows - 1, 0], "width": [0, 0, cols - 1]}  # (t, h, w) of the far token
    for axis, far in corners.items():
        pos = torch.tensor([[[0, p]] for p in far])  # (3 sections, batch 1, 2 tokens)
        cos, sin = rot(torch.zeros(1, 2, model.config.text_config.hidden_size), pos)
        turned = (torch.atan2(sin, cos)[0, 1] - torch.atan2(sin, cos)[0, 0]).abs().max().item()
        assert turned == pytest.approx(spans[axis], abs=1e-3), axis
        assert spans[axis] >= 1.0, (axis, spans)
