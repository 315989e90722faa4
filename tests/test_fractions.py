"""Figures 5 and 6 from real fraction runs: nested data subsets, the runs a fraction variant
expands to, the fine-tune on fewer rows, the figure points, and the config checks."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pandas as pd
import pytest

from jvla import config, variants
from jvla.config import ConfigError, VariantConfig
from jvla.data.subsets import episode_of, keep

FRACTIONS = (0.25, 0.5, 1.0)


def _trajectory_ids(episodes: dict[str, int], steps: int = 4, seed: int = 0) -> list[str]:
    """Row ids ``<task>-<seed>-<step>`` (jvla.data.trajectories) of ``episodes[task]`` episodes
    each, shuffled as a mixed dataset might be."""
    ids = [f"{task}-{1000 * i + e}-{t:04d}" for i, (task, n) in enumerate(episodes.items())
           for e in range(n) for t in range(steps)]  # fmt: skip
    random.Random(seed).shuffle(ids)
    return ids


# ------------------------------------------------------------------------------------ subsets
def test_episode_subsets_are_nested_whole_and_keep_every_task():
    episodes = {"mine_iron_ore": 8, "kill_zombie": 3, "craft_stick": 1, "smelt_iron_ingot": 5}
    ids = _trajectory_ids(episodes)
    kept = {f: {ids[i] for i in keep(ids, "task_c1", f, seed=42)} for f in FRACTIONS}
    assert kept[0.25] < kept[0.5] < kept[1.0] == set(ids)
    for f, rows in kept.items():
        eps = {episode_of(r) for r in rows}
        for task, n in episodes.items():
            mine = {e for t, e in eps if t == task}
            assert len(mine) == max(1, math.ceil(f * n)), (f, task)  # every task keeps >= 1 episode
        whole = {r.rsplit("-", 1)[0] for r in rows}
        assert len(rows) == 4 * len(whole), "an episode is kept with all its steps or not at all"
    # deterministic, and independent of the row order
    again = _trajectory_ids(episodes, seed=1)
    assert {again[i] for i in keep(again, "task_c1", 0.5, seed=42)} == kept[0.5]
    others = [{ids[i] for i in keep(ids, "task_c1", 0.5, seed=s)} for s in range(5)]
    assert any(o != kept[0.5] for o in others), "the seed picks the episodes"


def test_sample_subsets_are_nested_and_sized():
    ids = [f"qa-{i:06d}" for i in range(37)]
    kept = [set(keep(ids, "knowledge", f, seed=0)) for f in FRACTIONS]
    assert kept[0] < kept[1] < kept[2] == set(range(37))
    assert [len(k) for k in kept] == [10, 19, 37]  # ceil(f x n)
    assert keep(ids, "knowledge", 0.01, seed=0) != [], "at least one sample"
    assert keep(ids, "knowledge", 0.5, seed=0) == sorted(kept[1]), "indices in row order"


def test_trajectory_ids_that_name_no_episode_are_an_error():
    with pytest.raises(ValueError, match="traj-3"):
        keep(["traj-3", "traj-4"], "task_c1", 0.5, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        keep(["qa-1"], "knowledge", 0.0, seed=0)


# ------------------------------------------------------------------------------------ run graph
def test_fraction_variants_get_their_own_runs_and_share_the_rest(params):
    runs = variants.expand(params.variants)

    def chain(v):
        return [r.name for r in variants.lineage(runs, variants.final_run(v))]

    assert chain("actvlp_post25") == ["base/qwen2_vl", "post/qwen2_vl/knowledge_p25", "post/qwen2_vl/vlp_p25",
                                      "stage3/qwen2_vl/vlp_p25/c1", "finetune/actvlp_post25"]  # fmt: skip
    assert [runs[n].fraction for n in chain("actvlp_post25")] == [1.0, 0.25, 0.25, 1.0, 1.0]
    assert set(chain("actvlp_post25")) & set(chain("actvlp_post50")) == {"base/qwen2_vl"}
    assert set(chain("actvlp_post25")) & set(chain("actvlp")) == {"base/qwen2_vl"}
    # a fine-tune fraction shares every run of actvlp but its fine-tune, which carries the fraction
    assert chain("actvlp_ft25")[:-1] == chain("actvlp")[:-1]
    assert runs["finetune/actvlp_ft25"].fraction == 0.25 and runs["finetune/actvlp"].fraction == 1.0
    assert runs["finetune/actvlp_ft50"].fraction_of("task_c1") == 0.5
    assert runs["stage3/qwen2_vl/vlp_p25/c1"].fraction_of("trajectory_c1") == 1.0, "trajectories stay whole"
    assert variants.post_run(params.variants["actvlp_post50"]).name == "post/qwen2_vl/vlp_p50"


def test_equal_fractions_share_runs_and_unequal_ones_do_not(params):
    base = params.variants["actvlp"]
    v = {
        "a": dataclasses.replace(base, post_fraction=0.25),
        "b": dataclasses.replace(base, post_fraction=0.25, ft_chunk=3),  # same post-training
        "k": dataclasses.replace(base, post_training="knowledge", post_fraction=0.25),
        "c": dataclasses.replace(base, post_fraction=0.125),
    }
    runs = variants.expand(v)
    a, b, k, c = ({r.name for r in variants.lineage(runs, variants.final_run(n))} for n in v)
    assert a & b == {"base/qwen2_vl", "post/qwen2_vl/knowledge_p25", "post/qwen2_vl/vlp_p25",
                     "stage3/qwen2_vl/vlp_p25/c1"}  # fmt: skip
    assert "post/qwen2_vl/knowledge_p25" in k, "Stage I on 25 % is one run for every variant"
    assert "post/qwen2_vl/vlp_p12_5" in c and not (a & c) - {"base/qwen2_vl"}


# --------------------------------------------------------------------------- the run's train rows
def test_a_fine_tune_on_a_quarter_of_the_episodes_trains_on_fewer_rows(tmp_path, monkeypatch):
    from synthetic import synthetic_samples  # tests/synthetic.py

    from jvla.data import store
    from jvla.training import cli

    params = config.load(profile="smoke")
    episodes = {"mine_iron_ore": 4, "kill_zombie": 4, "craft_stick": 2}
    ids = sorted(_trajectory_ids(episodes, steps=2))
    rows = synthetic_samples("trajectory", len(ids) + 3, params, size=(28, 28))
    train = [dict(r, id=i) for r, i in zip(rows, ids, strict=False)]
    evals = [dict(r, id=f"mine_iron_ore-9-{t:04d}") for t, r in enumerate(rows[len(ids) :])]
    store.save({"train": train, "eval": evals}, tmp_path / "task_c1")
    seen = {}

    def fake_run_stage(stage, params, parent, train_data, out_dir, eval_data, **kw):
        seen[kw["name"]] = ([len(d) for d in train_data], {k: len(d) for k, d in eval_data.items()})
        return type("Result", (), {"model_dir": out_dir})()

    monkeypatch.setattr(cli, "run_stage", fake_run_stage)
    for run in ("finetune/actvlp", "finetune/actvlp_ft25", "finetune/actvlp_ft50"):
        cli.run_named(run, params, tmp_path, tmp_path / "models")
    assert seen["finetune/actvlp"] == ([len(ids)], {"task_c1": 3})
    # a quarter: 1 of 4, 1 of 4, 1 of 2 episodes, 2 steps each; the eval set stays whole
    assert seen["finetune/actvlp_ft25"] == ([2 * 3], {"task_c1": 3})
    assert seen["finetune/actvlp_ft50"] == ([2 * (2 + 2 + 1)], {"task_c1": 3})


# ------------------------------------------------------------------------------------ figure points
@pytest.fixture(scope="module")
def fig_params() -> config.Params:
    """The default params with the Figure 5 / 6 settings on the three Figure 4 tasks (the paper's
    sets; the default narrows them to one task to fit 2 cores)."""
    names = ("fig5_ft25", "fig5_ft50", "fig6_post25", "fig6_post50")
    return config.load(overrides={"evaluate": {"settings": {n: {"tasks": ["tag:figure4"]} for n in names}}})


def _results(tmp_path, params, skip: tuple[str, ...] = ()):
    """A fake ``results/``: the summaries of the Figure 5 / 6 settings and the records of their
    runs; settings in ``skip`` have no summary. Success on task i at fraction f: i + 4f of 10."""
    from jvla.stats import wilson_interval

    res = tmp_path / "results"
    for name in {*params.report.figure5_settings, *params.report.figure6_settings} - set(skip):
        s = params.evaluate.settings[name]
        v = params.variants[s.variant]
        frac = min(v.ft_fraction, v.post_fraction)
        tasks = ["craft_diamond_sword", "mine_obsidian", "smelt_cooked_beef"]
        tasks += ["mine_coal_ore"] if name == "main_actvlp" else []  # plays `all`: not a figure task
        per_task = []
        for i, t in enumerate(tasks):
            k = i + round(4 * frac)
            lo, hi = wilson_interval(k, 10)
            per_task.append({"variant": s.variant, "setting": name, "task": t, "category": t.split("_")[0],
                             "n": 10, "successes": k, "success_rate": k / 10, "ci_low": lo, "ci_high": hi})  # fmt: skip
        d = res / "evaluate" / name
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({
            "setting": name, "variant": s.variant, "backbone": v.backbone, "apt_chunk": v.apt_chunk,
            "ft_chunk": v.ft_chunk, "inference_chunk": v.ft_chunk, "history": 2, "episodes": 10 * len(tasks),
            "per_task": per_task, "per_category": []}))  # fmt: skip
    records = {}
    for f, ft, post in ((0.25, "finetune/actvlp_ft25", "post/qwen2_vl/vlp_p25"),
                        (0.5, "finetune/actvlp_ft50", "post/qwen2_vl/vlp_p50"),
                        (1.0, "finetune/actvlp", "post/qwen2_vl/vlp")):  # fmt: skip
        records[ft] = ("finetune", {"eval_task_c1_loss": 0.5 - 0.2 * f})
        records[post] = ("stage2", {"eval_vision_loss": 2.0 - f, "eval_grounding_loss": 3.0 - f})
    records["finetune/actvlp_post25"] = ("finetune", {"eval_task_c1_loss": 9.0})  # not an x of Fig. 6
    for run, (stage, ev) in records.items():
        d = res / stage / run.replace("/", "-")
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"run": run, "stage": stage, "steps": 5, "eval": ev}))
    return res


def test_figure_points_come_from_the_fraction_runs(tmp_path, fig_params):
    params = fig_params
    from jvla.report import readme
    from jvla.report.results import load_eval, load_runs

    res = _results(tmp_path, params)
    per_task, _, _ = load_eval(res)
    runs = load_runs(res)
    f5 = readme.figure5_points(params, per_task, runs)
    tasks = ["craft_diamond_sword", "mine_obsidian", "smelt_cooked_beef"]
    assert list(f5.task) == [t for t in tasks for _ in FRACTIONS] + [readme.MEAN] * 3
    assert list(f5.fraction) == list(FRACTIONS) * 4
    x = {f: 0.5 - 0.2 * f for f in FRACTIONS}
    assert f5.eval_loss.tolist() == pytest.approx([x[f] for f in f5.fraction])
    sword = f5[f5.task == "craft_diamond_sword"]
    assert sword.success_rate.tolist() == [0.1, 0.2, 0.4] and (sword.ci_low < sword.success_rate).all()
    mean = f5[f5.task == readme.MEAN].set_index("fraction")
    assert mean.loc[1.0, "n"] == 30 and mean.loc[1.0, "successes"] == 4 + 5 + 6, "mine_coal_ore left out"
    f6 = readme.figure6_points(params, per_task, runs)
    assert set(f6.run) == {"post/qwen2_vl/vlp_p25", "post/qwen2_vl/vlp_p50", "post/qwen2_vl/vlp"}
    x6 = {f: (2.0 - f + 3.0 - f) / 2 for f in FRACTIONS}  # the mean of the Stage II run's eval sets
    assert f6.eval_loss.tolist() == pytest.approx([x6[f] for f in f6.fraction])
    assert sorted(set(f6.setting)) == sorted(params.report.figure6_settings)


def test_a_fraction_not_run_is_left_out_and_named(tmp_path, fig_params):
    params = fig_params
    from jvla.report import readme
    from jvla.report.results import load_curves, load_eval, load_runs

    res = _results(tmp_path, params, skip=("fig5_ft50",))
    per_task, _, settings = load_eval(res)
    f5 = readme.figure5_points(params, per_task, load_runs(res))
    assert sorted(set(f5.fraction)) == [0.25, 1.0]
    figs = readme.write_figures(params, per_task, settings, load_runs(res), load_curves(res), res / "figures")
    notes = [t.get_text() for t in figs["figure5"].texts]
    assert any("not run: fig5_ft50 (50%)" in t for t in notes), notes
    assert not any("not run" in t for t in (x.get_text() for x in figs["figure6"].texts))
    axes = [a for a in figs["figure5"].axes if a.get_visible()]
    assert len(axes) == 4 and all(a.get_legend() is None for a in axes), (
        "one panel per task + mean, no legend on data"
    )
    assert pd.read_csv(res / "figures" / "figure5_points.csv").shape[0] == len(f5)
    empty = readme.figure5_points(params, per_task.iloc[0:0], load_runs(res))
    assert empty.empty


# ------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("value", [0, 1.5])
@pytest.mark.parametrize("key", ["ft_fraction", "post_fraction"])
def test_a_fraction_outside_0_1_is_an_error_naming_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        config.load(overrides={"variants": {"actvlp_ft25": {key: value}}})
    assert f"variants.actvlp_ft25.{key}: expected a number > 0 and <= 1, found {float(value)}" in str(e.value)


def test_scaling_settings_must_differ_in_their_fraction_alone():
    with pytest.raises(ConfigError, match=r"report.figure5_settings\[1\]: expected a variant that differs"):
        config.load(overrides={"report": {"figure5_settings": ["fig5_ft25", "fig6_post25"]}})
    with pytest.raises(
        ConfigError, match=r"report.figure6_settings\[1\]: expected one setting per post_fraction"
    ):
        config.load(overrides={"report": {"figure6_settings": ["fig6_post25", "fig6_post25"]}})
    with pytest.raises(ConfigError, match="post_training is none"):
        VariantConfig(backbone="qwen2_vl", post_training="none", stage3=True, apt_chunk=1, ft_chunk=1,
                      post_fraction=0.5)  # fmt: skip


def test_the_fraction_lists_of_data_are_gone(params):
    """The variants are the one source of the fractions (issue 16): the old data keys are errors."""
    for over in (
        {"data": {"post_fractions": [0.5]}},
        {"data": {"trajectories": {"finetune_fractions": [0.5]}}},
    ):
        with pytest.raises(ConfigError, match="unknown key"):
            config.load(overrides=over)
    fractions = {(v.ft_fraction, v.post_fraction) for v in params.variants.values()}
    assert {(0.25, 1.0), (0.5, 1.0), (1.0, 0.25), (1.0, 0.5)} <= fractions
