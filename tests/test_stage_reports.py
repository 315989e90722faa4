"""The per-stage report modules (data, training, vl_bench) and the run-name rule they share."""

from __future__ import annotations

import json

import pytest

from jvla import stages
from jvla.report import data, results, training
from jvla.report.vl_bench import write_vl

CARD = {"name": "knowledge", "bytes": 2_500_000, "splits": {
    "train": {"samples": 10, "images": 0, "turns_per_sample": 3.0, "by_category": {"qa": 10}},
    "eval": {"samples": 4, "images": 0, "turns_per_sample": 2.0, "by_category": {"mine": 3, "craft": 1}}}}  # fmt: skip


def test_run_name_rule():
    assert stages.key_of("stage3/qwen2_vl/vlp/c1") == "stage3-qwen2_vl-vlp-c1"
    assert (
        stages.STAGES["stage3"].format_run(backbone="qwen2_vl", post="vlp", apt_chunk=1)
        == "stage3/qwen2_vl/vlp/c1"
    )
    assert (
        stages.run_dir("stage3", "stage3/qwen2_vl/vlp/c1", "r").as_posix()
        == "r/stage3/stage3-qwen2_vl-vlp-c1"
    )
    assert stages.model_dir("post/qwen2_vl/vlp", "m").as_posix() == "m/post/qwen2_vl/vlp"
    with pytest.raises(KeyError):
        stages.run_dir("stage9", "x")


def test_data_cards_summary():
    cards = {"knowledge": CARD, "episodes": {"name": "episodes", "splits": {}}}
    s = data.splits(cards)
    assert list(s.split) == ["train", "eval"] and list(s.samples) == [10, 4] and s.MB.iloc[0] == 2.5
    assert data.eval_sets(cards).to_dict() == {"knowledge": {"mine": 3, "craft": 1}}


def test_training_record_round_trip(tmp_path):
    models, res = tmp_path / "models", tmp_path / "results"
    run = "post/qwen2_vl/knowledge"
    src = stages.model_dir(run, models)
    (src / "live/plots/metrics/train").mkdir(parents=True)
    (src / "run.json").write_text(json.dumps({"stage": "stage1", "parent": str(models / "base/qwen2_vl/model"),
                                              "global_step": 2, "eval": {"eval_knowledge_loss": 1.5}}))  # fmt: skip
    (src / "live/plots/metrics/train/loss.tsv").write_text("timestamp\tstep\tloss\n0\t1\t3.0\n0\t2\t2.0\n")
    m = training.publish_run(run, "stage1", models, res)
    assert m["parent"] == "base/qwen2_vl" and (stages.run_dir("stage1", run, res) / "loss.tsv").exists()
    assert results.load_runs(res).run.tolist() == [run]
    assert results.load_curves(res).loss.tolist() == [3.0, 2.0]
    ax = training.loss_curve(run, "stage1", res)
    assert ax.get_title() == run and ax.get_yscale() == "log"


def test_vl_results_round_trip(tmp_path):
    records = [{"benchmark": "knowledge", "category": "mine", "correct": True},
               {"benchmark": "knowledge", "category": "mine", "correct": False}]  # fmt: skip
    write_vl("finetune/actvlp", records, tmp_path)
    assert (tmp_path / "vl_bench" / "finetune-actvlp.jsonl").read_text().count("\n") == 2
    vl = results.load_vl(tmp_path)
    assert set(vl.model) == {"finetune/actvlp"} and set(vl.benchmark) == {"knowledge"}
