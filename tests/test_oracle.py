"""The learning study's perception oracle (jvla/envs/oracle.py): a band painted where the target is,
checked against the game's own camera geometry, and its use in a probe (jvla/study.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jvla.envs import items
from jvla.envs.minetest.geometry import fov_degrees, project
from jvla.envs.oracle import MAGENTA, MarkerEnv, marker_x, paint, target_point
from jvla.envs.tasks import load_tasks

W, H = 640, 360
FOV = fov_degrees(72.0, W, H)


def _state(mob=None, nodes=(), yaw=0.0):
    ents = []
    if mob is not None:
        ents = [{"name": items.entity_to_mt("cow"), "pos": list(mob), "hp": 10,
                 "collisionbox": [-0.4, 0, -0.4, 0.4, 1.2, 0.4]}]  # fmt: skip
    return {"entities": ents, "nodes": list(nodes), "pos": [0.0, 0.0, 0.0], "eye": [0.0, 1.47, 0.0],
            "yaw": yaw, "pitch": 0.0, "fov_deg": FOV, "width": W, "height": H}  # fmt: skip


def _task(name):
    return load_tasks(backend="minetest", names=[name])[0]


def _band_columns(frame):
    hit = np.all(frame[: H // 4] == MAGENTA, axis=-1).all(axis=0)
    return np.flatnonzero(hit)


@pytest.mark.parametrize("mob", [(0.0, 0.0, 5.0), (2.0, 0.0, 5.0), (-3.0, 0.0, 4.0), (1.0, 0.0, 9.0)])
def test_the_band_sits_where_the_cameras_projection_puts_the_target(mob):
    s = _state(mob)
    point = target_point(_task("kill_cow"), s)
    assert point == pytest.approx([mob[0], 0.6, mob[2]])  # the collision box's centre
    u, _ = project(point, s["eye"], s["yaw"], s["pitch"], FOV, W, H)
    assert marker_x(s, point) == pytest.approx(u, abs=1e-6)


@pytest.mark.parametrize(
    ("mob", "edge"), [((5.0, 0.0, 0.5), W), ((-5.0, 0.0, 0.5), 0), ((-1.0, 0.0, -5.0), 0)]
)
def test_a_target_outside_the_view_puts_the_band_on_the_edge_it_is_toward(mob, edge):
    s = _state(mob)
    assert marker_x(s, target_point(_task("kill_cow"), s)) == edge  # + x is right at yaw 0


def test_the_band_is_one_token_column_wide_in_the_top_quarter_and_the_frame_is_copied():
    frame = np.zeros((H, W, 3), np.uint8)
    for x, want in ((320.0, (274, 366)), (0.0, (0, 91)), (W, (549, 640))):
        out = paint(frame, x)
        cols = _band_columns(out)
        assert (cols[0], cols[-1] + 1) == pytest.approx(want, abs=1), x
        assert not out[H // 4 :].any(), "nothing below the top quarter"
    assert not frame.any(), "the observation itself is not drawn on"


def test_mine_targets_the_nearest_visible_block_and_gui_tasks_get_no_band():
    dirt = items.block_to_mt("dirt")
    nodes = [
        {"name": dirt, "pos": [0, 0, 2], "visible": False},
        {"name": dirt, "pos": [3, 0, 6], "visible": True},
    ]
    assert target_point(_task("mine_dirt"), _state(nodes=nodes)) == [3, 0, 6]
    assert target_point(_task("mine_dirt"), _state()) is None
    assert target_point(_task("craft_stick"), _state(mob=(0, 0, 3))) is None


class _Game:
    """A game stub: black frames, a cow 2 nodes right of 5 ahead, a counter of closes."""

    def __init__(self):
        self.closed = 0
        self.state = _state((2.0, 0.0, 5.0))

    def privileged_state(self):
        return self.state

    def reset(self, task, seed=None):
        return {"image": np.zeros((H, W, 3), np.uint8)}, {}

    def step(self, action):
        return {"image": np.zeros((H, W, 3), np.uint8)}, 0.0, False, False, {}

    def close(self):
        self.closed += 1


def test_the_marked_game_paints_every_world_frame_and_degrades_at_the_stated_rate():
    game = _Game()
    exact = MarkerEnv(game, accuracy=1.0)
    obs, _ = exact.reset(_task("kill_cow"))
    u = marker_x(game.state, target_point(_task("kill_cow"), game.state))
    assert abs(_band_columns(obs["image"]).mean() - u) < 1.0
    assert exact.privileged_state() is game.state, "everything else is the wrapped game's"
    noisy = MarkerEnv(game, accuracy=0.5, seed=3)
    noisy.reset(_task("kill_cow"))
    centres = [_band_columns(noisy.step({})[0]["image"]).mean() for _ in range(400)]
    assert noisy.n_marked == 401 and 0.4 < noisy.n_random / noisy.n_marked < 0.6
    assert len({round(c) for c in centres}) > 50, "the degraded band lands anywhere"
    gui = MarkerEnv(game)
    obs, _ = gui.reset(_task("craft_stick"))
    assert not obs["image"].any() and gui.n_marked == 0
    with MarkerEnv(game):
        pass
    assert game.closed == 1
    with pytest.raises(ValueError, match="accuracy"):
        MarkerEnv(game, accuracy=1.5)


def test_marked_games_swaps_the_evaluations_factory_only_inside_the_block(params, monkeypatch):
    import dataclasses

    from jvla.envs import factory, oracle
    from jvla.study import marked_games

    monkeypatch.setattr(oracle, "make_env", lambda p, backend=None, **kw: _Game())
    plain = factory.make_env
    with marked_games(params, 0.75):
        env = factory.make_env(params)
        assert isinstance(env, MarkerEnv) and env.accuracy == 0.75 and isinstance(env.env, _Game)
    assert factory.make_env is plain
    with marked_games(params, None):
        assert factory.make_env is plain
    ray = dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, workers=2))
    with pytest.raises(ValueError, match="workers"), marked_games(ray, 1.0):
        pass
    assert factory.make_env is plain


def test_an_eval_from_probe_plays_the_other_probes_models_with_its_own_oracle(tmp_path, monkeypatch):
    import jvla.evaluation
    from jvla.envs import factory, oracle
    from jvla.study import run_probe

    tasks = ["kill_cow"]
    src = tmp_path / "probes" / "src"
    (src / "models").mkdir(parents=True)
    (src / "data").mkdir()
    (src / "probe.json").write_text(json.dumps({"name": "src", "diagnostics": {"n": 7}, "per_task": [{}]}))
    monkeypatch.setattr(oracle, "make_env", lambda p, backend=None, **kw: _Game())
    seen = []

    def fake_run_setting(params, setting, models_root, out_root, **kw):
        env = factory.make_env(params)
        seen.append((models_root.resolve(), env.accuracy))
        return {
            "per_task": [
                {"task": "kill_cow", "category": "kill", "successes": 2, "n": 4, "success_rate": 0.5}
            ]
        }

    monkeypatch.setattr(jvla.evaluation, "run_setting", fake_run_setting)
    rec = run_probe("dst", tasks, {}, tmp_path, episodes=4, oracle=0.25, eval_from="src")
    assert seen == [((src / "models").resolve(), 0.25)]
    assert rec["oracle"] == 0.25 and rec["eval_from"] == "src" and rec["diagnostics"] == {"n": 7}
    assert rec["per_task"][0]["successes"] == 2 and not math.isnan(rec["per_task"][0]["ci_high"])
    with pytest.raises(FileNotFoundError, match="eval_from"):
        run_probe("other", tasks, {}, tmp_path, episodes=4, oracle=0.5, eval_from="missing")


def test_the_oracle_figure_draws_the_oracle_probes_beside_the_baseline_and_the_blind_program(tmp_path):
    from jvla.report.study import blind_rates, oracle_figure
    from jvla.study import table

    def rec(name, oracle, kill, mine):
        return {"name": name, "oracle": oracle, "per_task": [
            {"task": "kill_cow", "category": "kill", "successes": kill, "n": 10},
            {"task": "mine_dirt", "category": "mine", "successes": mine, "n": 10},
            {"task": "craft_stick", "category": "craft", "successes": 0, "n": 10}]}  # fmt: skip

    plain = table([rec("base", None, 0, 1)])
    assert oracle_figure(plain, tmp_path / "none") is None and not list(tmp_path.iterdir())
    df = table([rec("base", None, 0, 1), rec("o", 1.0, 6, 9), rec("o50", 0.5, 2, 5)])
    assert list(df[df.probe == "o50"].oracle) == [0.5] * 3
    programs = {"rows": [
        {"program": "dig", "category": "mine", "successes": 8, "n": 10},
        {"program": "dig", "category": "mine", "successes": 0, "n": 10},
        {"program": "walk", "category": "mine", "successes": 1, "n": 10},
        {"program": "walk", "category": "kill", "successes": 0, "n": 10}]}  # fmt: skip
    blind = blind_rates(programs)
    assert blind == {"mine": 0.4, "kill": 0.0}, "the best program, pooled over a category's tasks"
    fig = oracle_figure(df, tmp_path / "oracle", baseline="base", blind=blind)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["o (band accuracy 1)", "o50 (band accuracy 0.5)"]
    refs = sorted(
        (line.get_linestyle(), round(line.get_xdata()[0], 2))
        for line in ax.lines
        if line.get_linestyle() in ("--", ":")
    )
    assert refs == [("--", 0.0), ("--", 0.1), (":", 0.0), (":", 0.4)], "baseline and blind rates per category"
    assert (tmp_path / "oracle.png").exists() and (tmp_path / "oracle.pdf").exists()


def test_a_dagger_round_on_an_oracle_probe_plays_marked_games(tmp_path, monkeypatch):
    import jvla.study
    from jvla.envs import factory, oracle

    monkeypatch.setattr(oracle, "make_env", lambda p, backend=None, **kw: _Game())
    played = []

    def fake_round(params, data, models, tasks, episodes, out, cards):
        played.append((factory.make_env(params), [t.name for t in tasks], episodes))
        out.mkdir(parents=True)
        return {"episodes": episodes}

    monkeypatch.setattr(jvla.study, "dagger_round", fake_round)
    monkeypatch.setattr(jvla.study, "_demonstrations", lambda params, ddir, oracle, dart: {})
    monkeypatch.setattr(jvla.study, "_diagnose", lambda *a: {"diagnostics": {}, "diagnostics_train": {}})
    (tmp_path / "probes" / "src").mkdir(parents=True)
    (tmp_path / "probes" / "src" / "probe.json").write_text("{}")
    (tmp_path / "data").mkdir()
    rec = jvla.study.run_probe("d", ["kill_cow"], {}, tmp_path, episodes=0, oracle=1.0, dagger_from="src",
                               dagger_episodes=3)  # fmt: skip
    ((env, tasks, episodes),) = played
    assert isinstance(env, MarkerEnv) and env.accuracy == 1.0 and (tasks, episodes) == (["kill_cow"], 3)
    assert rec["dagger"] == {"episodes": 3, "from": "src"} and rec["oracle"] == 1.0
    assert factory.make_env.__name__ == "make_env", "the plain factory is back"


def test_the_agent_trace_summary_counts_turns_toward_the_target_and_strikes_when_near():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "trace_agent.py"
    spec = importlib.util.spec_from_file_location("trace_agent", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(b, yaw, dist=8.0, attack=0, forward=1):
        return {"bearing": b, "dist": dist, "yaw": yaw, "pitch": 0.0, "forward": forward, "attack": attack}

    servo = {
        "success": True,
        "rows": [row(40, 10), row(30, 10), row(-20, -10), row(5, 0, 3.0, 1), row(2, 0, 2.0, 1)],
    }
    stray = {"success": False, "rows": [row(20, -10), row(30, 0), row(50, 0), row(None, 0) | {"dist": None}]}
    s = mod.summarise([servo, stray])
    assert (s["episodes"], s["success"], s["steps"]) == (2, 1, 8)
    assert s["n_off_target"] == 6 and s["turn_rate"] == 4 / 6
    assert s["n_turned"] == 4 and s["turn_toward"] == 3 / 4, (
        "the stray episode's turn is away from the target"
    )
    assert s["n_near"] == 2 and s["attack_near"] == 1.0
    assert s["closest"] == (2.0 + 8.0) / 2


@pytest.mark.parametrize("x", [20.0, 200.0, 320.0, 500.0, 630.0])
def test_band_column_reads_the_painted_band_back_after_jpeg_and_resizing(x):
    import io

    from PIL import Image

    from jvla.envs.oracle import band_column

    rng = np.random.default_rng(0)
    frame = paint(rng.integers(0, 160, (H, W, 3), dtype=np.uint8), x)
    buf = io.BytesIO()
    Image.fromarray(frame).resize((W // 2, H // 2)).save(buf, format="JPEG", quality=90)
    small = np.asarray(Image.open(buf).convert("RGB"))
    half = W / 14.0
    want = (min(max(x, half), W - half) / W - 0.5) * 7.0
    assert abs(band_column(frame) - want) < 0.02 and abs(band_column(small) - want) < 0.05
    assert band_column(np.zeros((H, W, 3), dtype=np.uint8)) is None
