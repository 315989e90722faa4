"""Variants -> distinct training runs: names, parents, data, sharing, hyperparameters."""

from __future__ import annotations

import pytest

from jvla import config, variants
from jvla.config import ConfigError, VariantConfig

KINDS = {"knowledge", "vision", "grounding"}


@pytest.fixture(scope="module")
def runs(params):
    return variants.expand(params.variants)


def test_required_variants_are_in_params(params):
    v = params.variants
    assert {"raw", "il", "actvlp", "one_stage", "knowledge", "vision", "grounding"} <= set(v)
    chunks = {
        (c.apt_chunk, c.ft_chunk) for c in v.values() if c.post_training == "vlp" and c.backbone == "qwen2_vl"
    }
    assert {(1, 1), (1, 3), (3, 3)} <= chunks, "Table 4 settings APT/FT = 1/1, 1/3, 3/3"
    llava = {c.post_training for c in v.values() if c.backbone == "llava_next"}
    assert {"none", "vlp"} <= llava, "backbone ablation: raw and ActVLP on LLaVA-NeXT"


def test_every_variant_ends_in_its_finetune(params, runs):
    for name, v in params.variants.items():
        chain = variants.lineage(runs, variants.final_run(name))
        assert chain[0].name == f"base/{v.backbone}" and chain[-1].stage == "finetune"
        assert all(r.backbone == v.backbone for r in chain)
        assert chain[-1].data == (f"task_c{v.ft_chunk}",)
        stages = [r.stage for r in chain]
        assert ("stage3" in stages) == v.stage3


def test_chains_of_the_paper_variants(runs):
    def stages(v):
        return [r.name for r in variants.lineage(runs, variants.final_run(v))]

    assert stages("raw") == ["base/qwen2_vl", "finetune/raw"]
    assert stages("il") == ["base/qwen2_vl", "stage3/qwen2_vl/none/c1", "finetune/il"]
    assert stages("actvlp") == [
        "base/qwen2_vl",
        "post/qwen2_vl/knowledge",
        "post/qwen2_vl/vlp",
        "stage3/qwen2_vl/vlp/c1",
        "finetune/actvlp",
    ]
    assert stages("one_stage") == ["base/qwen2_vl", "post/qwen2_vl/one_stage/c1", "finetune/one_stage"]
    assert stages("grounding") == [
        "base/qwen2_vl",
        "post/qwen2_vl/grounding",
        "stage3/qwen2_vl/grounding/c1",
        "finetune/grounding",
    ]


def test_shared_runs_are_trained_once(params, runs):
    def chain(v):
        return {r.name for r in variants.lineage(runs, variants.final_run(v))}

    # ActVLP's Stage I is the knowledge-only post-training
    assert "post/qwen2_vl/knowledge" in chain("actvlp") & chain("knowledge")
    # Table 4: APT chunk 1 shares ActVLP's Stage III; APT chunk 3 has its own, same VLP parent
    assert "stage3/qwen2_vl/vlp/c1" in chain("actvlp") & chain("chunk_apt1_ft3")
    assert "stage3/qwen2_vl/vlp/c3" in chain("chunk_apt3_ft3")
    assert "post/qwen2_vl/vlp" in chain("chunk_apt3_ft3")
    # IL and ActVLP share only the base model
    assert chain("il") & chain("actvlp") == {"base/qwen2_vl"}
    # the graph has each run once: fewer runs than the sum of the variants' chains
    total = sum(len(chain(v)) for v in params.variants)
    assert len(runs) < total
    assert len(runs) == len({r.name for r in runs.values()})


def test_runs_are_topologically_ordered_with_known_data(runs):
    seen = set()
    for r in runs.values():
        assert r.parent is None or r.parent in seen, f"{r.name} before its parent {r.parent}"
        seen.add(r.name)
        for d in r.data:
            assert d in KINDS or d.startswith(("trajectory_c", "task_c")), d
    one = runs["post/qwen2_vl/one_stage/c1"]
    assert (
        one.stage == "one_stage"
        and set(one.data) == KINDS | {"trajectory_c1"}
        and one.parent == "base/qwen2_vl"
    )
    assert runs["post/qwen2_vl/knowledge"].stage == "stage1"
    assert runs["post/qwen2_vl/vlp"].stage == "stage2" and runs["post/qwen2_vl/vlp"].data == (
        "vision",
        "grounding",
    )


def test_train_config_of_runs(params, runs):
    assert variants.train_config(params, runs["post/qwen2_vl/knowledge"]) == params.stage1
    assert variants.train_config(params, runs["stage3/qwen2_vl/vlp/c1"]) == params.stage3
    assert variants.train_config(params, runs["finetune/actvlp"]) == params.finetune
    one = variants.train_config(params, runs["post/qwen2_vl/one_stage/c1"])
    assert one.max_steps == params.stage1.max_steps + params.stage2.max_steps + params.stage3.max_steps
    assert one.learning_rate == params.stage3.learning_rate
    assert variants.train_config(params, runs["base/qwen2_vl"]) == params.pretrain  # the base pretraining


def test_variant_config_validation():
    with pytest.raises(ConfigError, match="stage3"):
        VariantConfig(backbone="qwen2_vl", post_training="one_stage", stage3=True, apt_chunk=1, ft_chunk=1)
    with pytest.raises(ConfigError, match="post_training"):
        config.load(overrides={"variants": {"raw": {"post_training": "everything"}}})
    with pytest.raises(ConfigError, match="apt_chunk"):
        config.load(overrides={"variants": {"raw": {"apt_chunk": 0}}})


def test_a_new_variant_reuses_existing_runs(params):
    v = dict(params.variants)
    v["vision_c3"] = VariantConfig(
        backbone="qwen2_vl", post_training="vision", stage3=True, apt_chunk=3, ft_chunk=3
    )
    runs = variants.expand(v)
    assert "post/qwen2_vl/vision" in runs and "stage3/qwen2_vl/vision/c3" in runs
    assert len(runs) == len(variants.expand(params.variants)) + 2  # its Stage III and its fine-tune
