"""Issue 16's pieces without the game: randomised starts, the player-like kill expert, step limits
from the experts' measured steps, the perception diagnostics and the study's bookkeeping."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from jvla.envs import items
from jvla.envs.minetest import setup
from jvla.envs.minetest.experts.world import KillExpert
from jvla.envs.tasks import load_tasks


# ---------------------------------------------------------------------------- randomised starts
def test_no_jitter_draws_nothing_so_other_draws_are_unchanged():
    rng = random.Random(7)
    start = setup.draw_start(rng, 0.0, 0)
    assert start == setup.Start()
    assert rng.random() == random.Random(7).random()


def test_jitter_stays_in_range_and_varies():
    rng = random.Random(1)
    starts = [setup.draw_start(rng, 40.0, 1) for _ in range(300)]
    yaws = [math.degrees(s.yaw) for s in starts]
    assert max(abs(y) for y in yaws) <= 40.0 and np.std(yaws) > 15
    assert {s.dx for s in starts} == {-1, 0, 1} and {s.dz for s in starts} == {-1, 0, 1}


def test_the_start_turns_the_player_and_shifts_every_placed_block_together():
    task = load_tasks(backend="minetest", names=["mine_coal_ore"])[0]  # a stone wall with the ore in it
    origin = (10, 5, -3)
    plain = setup.setup_commands(task, origin, random.Random(0), record_state=False)
    start = setup.Start(yaw=0.5, dx=1, dz=-1)
    moved = setup.setup_commands(task, origin, random.Random(0), record_state=False, start=start)
    arena = next(c for c in moved if c["cmd"] == "arena")
    assert arena["yaw"] == 0.5 and arena["origin"] == list(origin), "the arena stays, the player turns"
    before = [c for c in plain if c["cmd"] in ("set_node", "fill")]
    after = [c for c in moved if c["cmd"] in ("set_node", "fill")]
    assert len(before) == len(after) == 2
    for b, a in zip(before, after, strict=True):
        for key in ("pos", "from", "to"):
            if key in b:
                assert a[key] == [b[key][0] + 1, b[key][1], b[key][2] - 1], key


# ------------------------------------------------------------------------ the player-like expert
def _kill_state(mob_pos, yaw=0.0):
    cow = items.entity_to_mt("cow")
    return {
        "gui_open": False, "inventory": {"main": [("default:sword_steel", 1)]}, "wielded_index": 1,
        "entities": [{"name": cow, "pos": list(mob_pos), "id": 9, "hp": 10,
                      "collisionbox": [-0.4, 0, -0.4, 0.4, 1.2, 0.4]}],
        "pos": [0.0, 0.0, 0.0], "eye": [0.0, 1.47, 0.0], "yaw": yaw, "pitch": 0.0, "pointed": None,
    }  # fmt: skip


class _Stub:
    def __init__(self, state):
        self.state = state

    def privileged_state(self):
        return self.state


@pytest.mark.parametrize(
    ("mob", "attack", "turn"),
    [
        ((0.0, 0.0, 3.0), 1, 0),  # ahead and near: attack held, no turn needed
        ((0.0, 0.0, 8.0), 0, 0),  # ahead but far: walk, no attack yet
        ((-2.0, 0.0, 2.0), 0, -1),  # 45 deg to the left (+x is right at yaw 0): turn left, no attack
        ((0.5, 0.0, 3.0), 1, 1),  # slightly right and near: attack held while turning right
    ],
)
def test_kill_expert_holds_attack_near_the_mob_and_turns_toward_it(space, mob, attack, turn):
    task = load_tasks(backend="minetest", names=["kill_cow"])[0]
    expert = KillExpert(task, space)
    expert._weapon_selected = True
    a = expert.act(_Stub(_kill_state(mob)))
    assert a["attack"] == attack
    dyaw = float(np.asarray(a["camera"])[1])
    assert (dyaw > 0) - (dyaw < 0) == turn, dyaw
    assert abs(dyaw) <= 10.0
    held = [expert.act(_Stub(_kill_state(mob)))["attack"] for _ in range(5)]
    assert held == [attack] * 5, "held on every step, not clicked once per cooldown"


def test_kill_expert_turns_in_proportion_to_the_offset_beyond_its_dead_zone(space):
    task = load_tasks(backend="minetest", names=["kill_cow"])[0]
    turns = []
    for x in (0.3, 0.8, 2.0):  # 2.9, 7.6 and 18.4 degrees off at 6 nodes
        e = KillExpert(task, space)
        e._weapon_selected = True
        turns.append(abs(float(np.asarray(e.act(_Stub(_kill_state((x, 0.0, 6.0))))["camera"])[1])))
    # inside the dead zone (half a visual-token column, KillExpert.AIM_DEADZONE) no yaw turn;
    # beyond it the offset itself (mu-law bins), clipped to one camera step
    assert turns[0] == 0.0 and 0 < turns[1] < turns[2] == 10.0, turns


# ---------------------------------------------------------------------- step limits from experts
def test_step_quantiles_of_successful_expert_episodes():
    from jvla.data.trajectories import step_quantiles

    q = step_quantiles(list(range(1, 101)))
    assert q == {"steps_p50": 50.5, "steps_p95": 95.0, "steps_max": 100}
    assert step_quantiles([]) == {"steps_p50": None, "steps_p95": None, "steps_max": None}


def test_evaluated_tasks_get_twice_the_experts_p95_with_the_category_floor(tmp_path):
    from jvla import config
    from jvla.evaluation.settings import select_tasks

    card = {"experts": {"mine_dirt": {"steps_p95": 70.5}, "kill_cow": {"steps_p95": 51.0},
                        "craft_stick": {"steps_p95": None}}}  # fmt: skip
    (tmp_path / "episodes.json").write_text(json.dumps(card))
    params = config.load()
    tasks = {
        t.name: t
        for t in select_tasks(params, ["mine_dirt", "kill_cow", "craft_stick", "mine_stone"], tmp_path)
    }
    floor = params.evaluate.horizon.min_steps
    assert tasks["mine_dirt"].max_steps == max(141, floor["mine"])
    assert tasks["kill_cow"].max_steps == max(102, floor["kill"]) >= 200
    assert tasks["craft_stick"].max_steps == floor["craft"], "no measurement: the floor"
    assert tasks["mine_stone"].max_steps == floor["mine"], "a task the experts never ran: the floor"


# --------------------------------------------------------------------------------- diagnostics
def test_diagnostics_score_buttons_camera_bins_and_turn_direction():
    from jvla.diagnostics import score_positions

    ids = {"press": {1, 2}, "pitch": {10: 0, 11: 1, 12: 2}, "yaw": {20: 0, 21: 1, 22: 2}, "null_bin": 1}
    begin = 99
    # expert: BEGIN attack(1) PITCH(11) YAW(22: right) END ; BEGIN PITCH(11) YAW(21: none)
    label = [1, 11, 22, 100, 11, 21]
    prev = [begin, 1, 11, 22, begin, 11]
    pred = [2, 11, 22, 100, 12, 20]  # wrong button; right pitch; right turn; -, wrong pitch; turns left
    res = score_positions(pred, label, prev, ids)
    assert res["buttons"] == [False, False], "the press, then the no-press decision (pitch right after BEGIN)"
    assert res["pitch"] == [True, False]
    assert res["yaw"] == [True, False]
    assert res["yaw_dir"] == [True, False]
    assert res["turns"] == [True], "only where the expert turns"


# ------------------------------------------------------------------------------------- study
def test_probes_share_demonstrations_only_when_the_data_is_the_same():
    from jvla.study import data_key, probe_overrides

    tasks = ["mine_dirt", "kill_cow"]
    a = probe_overrides(tasks, {"stage3": {"max_steps": 10}}, 5)
    b = probe_overrides(tasks, {"stage3": {"max_steps": 99}, "model": {"tiny": {"hidden_size": 256}}}, 5)
    c = probe_overrides(tasks, {"data": {"trajectories": {"episodes_per_task": 50}}}, 5)
    assert data_key(a) == data_key(b) != data_key(c)
    assert a["evaluate"]["settings"]["main_il"] == {"variant": "il", "tasks": tasks}
    # the whole subset is fine-tuned, and turns are weighted only by run_probe's own keyword
    assert c["data"]["trajectories"] == {"tasks": tasks, "episodes_per_task": 50, "finetune_tasks": [],
                                         "oversample_turns": 1}  # fmt: skip


def test_actvlp_probes_share_demonstrations_with_il_and_stage_ii_frames_among_themselves(tmp_path):
    from jvla.study import VISION_KEYS, data_key, probe_overrides, run_probe

    tasks = ["mine_dirt", "kill_cow"]
    il = probe_overrides(tasks, {"stage3": {"max_steps": 10}}, 5)
    vlp = probe_overrides(tasks, {"stage3": {"max_steps": 10}, "stage2": {"max_steps": 7}}, 5, path="actvlp")
    more = probe_overrides(tasks, {"data": {"capture": {"scenes": 99}}}, 5, path="actvlp")
    assert vlp["evaluate"]["settings"]["main_il"] == {"variant": "actvlp", "tasks": tasks}
    assert data_key(il) == data_key(vlp) == data_key(more)  # the same demonstrations
    assert data_key(vlp, VISION_KEYS) != data_key(more, VISION_KEYS)  # other Stage II frames
    with pytest.raises(ValueError, match="path='vlp'"):
        run_probe("x", tasks, {}, tmp_path, path="vlp")


def test_a_diagnostics_only_probe_is_evaluated_later_on_its_trained_models(tmp_path, monkeypatch):
    """A probe trained with ``episodes=0`` (e.g. while another probe plays) plays on a later call."""
    import jvla.evaluation
    from jvla.study import run_probe

    tasks = ["mine_dirt", "kill_cow"]
    pdir = tmp_path / "probes" / "x"
    pdir.mkdir(parents=True)
    trained = {"name": "x", "per_task": [], "wall_s": {"train_s": 1.0}, "diagnostics": {"n": 3}}
    (pdir / "probe.json").write_text(json.dumps(trained))
    calls = []

    def fake_run_setting(params, setting, models_root, out_root, **kw):
        calls.append((setting, models_root, params.evaluate.episodes))
        return {"per_task": [{"task": t, "category": t.split("_")[0], "successes": 1, "n": 4, "success_rate": 0.25}
                             for t in tasks]}  # fmt: skip

    monkeypatch.setattr(jvla.evaluation, "run_setting", fake_run_setting)
    assert run_probe("x", tasks, {}, tmp_path, episodes=0) == trained  # still diagnostics-only
    assert not calls
    rec = run_probe("x", tasks, {}, tmp_path, episodes=4)
    assert calls == [("main_il", pdir / "models", 4)]
    assert [r["successes"] for r in rec["per_task"]] == [1, 1] and rec["per_task"][0]["ci_low"] > 0
    assert rec["diagnostics"] == {"n": 3} and rec["wall_s"]["train_s"] == 1.0 and "eval_s" in rec["wall_s"]
    assert len(rec["load_avg"]) == 2
    assert json.loads((pdir / "probe.json").read_text()) == rec
    run_probe("x", tasks, {}, tmp_path, episodes=4)  # evaluated: returned as recorded, not replayed
    assert len(calls) == 1


# ------------------------------------------------------------------------------------- DAgger
class _Const:
    """A policy stub that always returns ``value`` and counts its resets."""

    def __init__(self, value):
        self.value, self.resets = value, 0

    def reset(self, slot, task, instruction, env):
        self.resets += 1

    def act(self, slots, frames):
        return [dict(self.value) for _ in slots]

    def episode_stats(self, slot):
        return {"n_actions": 1}


@pytest.mark.parametrize(("beta", "executed"), [(0.0, "learner"), (1.0, "expert")])
def test_dagger_executes_the_learner_and_records_the_experts_labels(beta, executed):
    from jvla.data.dagger import DaggerPolicy

    learner, expert = _Const({"who": "learner"}), _Const({"who": "expert"})
    pol = DaggerPolicy(learner, expert, beta=beta)
    pol.reset(0, None, "", None)
    frames = [np.zeros((2, 2, 3), np.uint8)]
    acts = [pol.act([0], frames)[0] for _ in range(3)]
    assert [a["who"] for a in acts] == [executed] * 3
    stats = pol.episode_stats(0)
    assert [lab["who"] for lab in stats["labels"]] == ["expert"] * 3 and stats["n_actions"] == 1
    assert learner.resets == expert.resets == 1


def test_dagger_relabels_real_rollouts_with_the_fake_envs_experts(space):
    from jvla.data.dagger import relabel_episodes
    from jvla.envs.fake import FakeEnv
    from jvla.rollout import EpisodeSpec

    task = load_tasks(names=["mine_iron_ore"])[0]
    null = space.null_env_action()
    rows = list(relabel_episodes([EpisodeSpec(task, 0, 5)], lambda: FakeEnv(seed=1), lambda: _Const(null),
                                 space, scale=1.0, quality=90))  # fmt: skip
    (row,) = rows
    assert not row["success"], "the null-action learner never digs"
    assert row["steps"] == len(row["frames"]) == len(row["actions"]) == task.max_steps
    from jvla.data.trajectories import token_strings

    idle = token_strings(space).encode([null])
    assert all(a != idle for a in row["actions"]), (
        "the labels are the expert's (turn to the ore), not the learner's"
    )


def test_study_table_pools_categories_and_the_kill_turn_accuracy():
    from jvla.study import kill_turn_accuracy, table

    diag = {"all": {"turns": 0.9, "n_turns": 30}, "kill_cow": {"turns": 0.5, "n_turns": 10},
            "kill_sheep": {"turns": 0.0, "n_turns": 10}, "craft_stick": {"turns": 1.0, "n_turns": 10}}  # fmt: skip
    assert kill_turn_accuracy(diag) == 0.25, "kill positions only, weighted by their counts"
    assert kill_turn_accuracy({"mine_dirt": {"turns": 1.0, "n_turns": 4}}) is None
    world = {**diag, "mine_dirt": {"turns": 1.0, "n_turns": 20}}
    assert kill_turn_accuracy(world, ("kill", "mine")) == 0.625, "mine and kill pooled, GUI tasks out"
    rec = {"name": "p", "diagnostics": diag, "diagnostics_train": {}, "wall_s": {"eval_s": 1.0},
           "load_avg": [0.4, 2.5], "per_task": [{"task": "kill_cow", "category": "kill", "successes": 1, "n": 10},
                        {"task": "kill_sheep", "category": "kill", "successes": 3, "n": 10}]}  # fmt: skip
    df = table([rec, {"name": "q", "per_task": []}])
    kill = df[df.probe == "p"].iloc[0]
    assert (kill.category, kill.successes, kill.n, kill.rate) == ("kill", 4, 20, 0.2)
    assert 0.0 < kill.ci_low < 0.2 < kill.ci_high < 1.0
    assert kill.turn_acc == 0.25 and kill.world_turn_acc == 0.25
    assert kill.eval_load == 2.5 and math.isnan(df[df.probe == "q"].iloc[0].eval_load)
    assert list(df[df.probe == "q"].category) == ["(not evaluated)"], "a diagnostics-only probe keeps its row"


def test_choice_scores_rank_answers_as_their_full_likelihoods_do(tiny_qwen):
    """The batched multiple choice of ``where_accuracy`` against one forward pass per answer."""
    import numpy as np
    import torch
    from PIL import Image

    from jvla.study import choice_scores

    model, proc, _ = tiny_qwen
    model.eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the cow?"}]}]
    prompt = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    answers = [
        "The cow is on the left.",
        "The cow is straight ahead.",
        "The cow is on the right of the player.",
    ]
    proc.tokenizer.padding_side = "left"  # the policy's generation setting
    scores = choice_scores(model, proc, prompt, answers, [image])
    assert proc.tokenizer.padding_side == "left"  # restored for the callers that share the processor

    n_prompt = proc(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
    full = []
    for a in answers:  # the answer's own tokens, one unpadded row at a time
        enc = proc(text=[prompt + a], images=[image], return_tensors="pt")
        with torch.inference_mode():
            logp = model(**enc).logits.log_softmax(-1)[0]
        ids = enc["input_ids"][0]
        full.append(float(logp[n_prompt - 1 : -1].gather(-1, ids[n_prompt:, None]).sum()))
    # the shared "The cow is" scores alike in every row, so only the differences must agree
    assert np.allclose(np.diff(scores), np.diff(full), atol=1e-4)
    assert scores.index(max(scores)) == full.index(max(full))
    assert scores[0] != scores[1], "the answers' own tokens are scored"


def test_a_probe_runs_end_to_end_on_the_fake_game(tmp_path, monkeypatch, space):
    """Demonstrations, datasets (turning rows oversampled), base + Stage III + fine-tune,
    diagnostics and an evaluation, with the fake game behind the factory (smoke sizes); then a
    refit reruns only the fine-tune."""
    from pathlib import Path

    from jvla.data.store import load
    from jvla.envs import factory
    from jvla.envs.fake import FakeEnv
    from jvla.study import data_key, probe_overrides, run_probe, turning_rows

    monkeypatch.setattr(
        factory, "make_env", lambda p, backend=None, **kw: FakeEnv(width=160, height=90, seed=0)
    )
    tasks = ["mine_dirt", "kill_cow"]
    short = {"max_steps": 2, "eval_steps": 2, "save_steps": 2, "logging_steps": 1}
    over = {
        "model": {"max_pixels": 12544, "tiny": {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128,
                                                "num_heads": 2, "num_kv_heads": 1, "vision_embed_dim": 32,
                                                "vision_heads": 2}},
        "training": {"batch_size": 2, "dataloader_workers": 0, "eval_samples": 4},
        "pretrain": {"max_steps": 0}, "stage3": short, "finetune": short,
        "data": {"knowledge": {"eval_per_category": 3, "max_train_dialogues": 20},
                 "trajectories": {"episodes_per_task": 3, "finetune_episodes_per_task": 2, "eval_fraction": 0.34,
                                  "slots": 1}},
        "evaluate": {"horizon": {"max_steps": 6}, "slots": 1},
    }  # fmt: skip
    ddir = tmp_path / "data" / data_key(probe_overrides(tasks, over, 2))
    ddir.mkdir(parents=True)  # the fake game has no registry: Stage I's facts come from a dump
    (ddir / "registry.json").write_text(
        (Path(__file__).parent / "fixtures" / "data" / "minetest_registry.json").read_text()
    )
    rec = run_probe("p", tasks, over, tmp_path, episodes=2, oversample_turns=3)
    data = tmp_path / "probes" / "p" / "data"
    for name in ("trajectory", "task"):  # turning rows twice more in the train split, eval untouched
        demos, mixed = load(data / f"{name}_demos_c1"), load(data / f"{name}_c1")
        added = rec[f"oversampled_{name}_c1"]
        assert added == 2 * len(turning_rows(demos["train"], space)) > 0, name
        assert len(mixed["train"]) == len(demos["train"]) + added and len(mixed["eval"]) == len(demos["eval"])
        copies = [r["id"] for r in mixed["train"] if "#" in r["id"]]  # the pipeline's copies: <id>#<k>
        assert len(copies) == added and {c.split("#")[1] for c in copies} == {"1", "2"}, name
    assert [(r["task"], r["n"]) for r in rec["per_task"]] == [("kill_cow", 2), ("mine_dirt", 2)]
    assert set(rec["experts"]) == set(tasks) and rec["step_limits"] == {"kill_cow": 6, "mine_dirt": 6}
    assert rec["diagnostics"]["all"]["n_buttons"] > 0 and rec["diagnostics_train"]["all"]["n_buttons"] > 0
    assert set(rec["train_loss"]) == {"stage3/qwen2_vl/none/c1", "finetune/il"}
    assert {"data_s", "train_s", "diag_s", "eval_s"} <= set(rec["wall_s"])
    models = tmp_path / "probes" / "p" / "models"
    assert (models / "finetune" / "il" / "model").is_dir() and (models / "stage3").is_dir()
    refit = run_probe("r", tasks, over, tmp_path, episodes=0, refit_from="p")
    r_models = tmp_path / "probes" / "r" / "models"
    assert (r_models / "stage3").resolve() == (models / "stage3").resolve(), "Stage III is shared"
    assert not (r_models / "finetune").is_symlink() and refit["refit_from"] == "p" and refit["per_task"] == []


def test_turning_rows_are_those_whose_current_action_turns_the_yaw(space):
    from jvla.data.trajectories import token_strings
    from jvla.study import turning_rows

    tok = token_strings(space)

    def act(yaw=0.0, pitch=0.0):
        return tok.encode([space.null_env_action() | {"camera": np.array([pitch, yaw]), "forward": 1}])

    def row(i, current, history):
        turns = []
        for text in [*history, current]:
            turns += [{"role": "user", "content": [{"type": "text", "text": "obs"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": text}]}]  # fmt: skip
        return {"id": str(i), "conversations": turns}

    rows = [row(0, act(), [act(10.0)]), row(1, act(-4.0), [act()]), row(2, act(pitch=5.0), [act()]),
            row(3, act(2.0), [act(2.0)])]  # fmt: skip
    assert [r["id"] for r in turning_rows(rows, space)] == ["1", "3"], (
        "the history's turns and pitch do not count"
    )
