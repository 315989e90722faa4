"""params.yaml: typed, frozen, profiles, and errors that name the key."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from jvla import config
from jvla.paths import PARAMS_FILE


def test_params_file_loads_under_every_profile():
    for profile in ("default", "smoke", "paper"):
        p = config.load(profile=profile)
        assert p.profile == profile


def test_params_are_frozen(params):
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.stage3.learning_rate = 1.0


def test_paper_profile_has_the_papers_hyperparameters():
    p = config.load(profile="paper")
    for stage in (p.stage1, p.stage2, p.stage3):
        assert stage.learning_rate == 5e-6 and stage.lr_scheduler == "cosine" and stage.warmup_steps == 200
        assert (stage.adam_beta1, stage.adam_beta2) == (0.9, 0.95) and stage.weight_decay == 0.0
        assert stage.bf16 and stage.max_grad_norm == 1.0
    assert p.stage1.max_length == p.stage2.max_length == 3584 and p.stage3.max_length == 512
    # 32 GPUs x per-device batch x grad-accum = 256 in both phases (paper App. B)
    assert 32 * p.stage1.batch_size * p.stage1.grad_accum == 256
    assert 32 * p.stage3.batch_size * p.stage3.grad_accum == 256
    assert p.model.source == "Qwen/Qwen2-VL-7B-Instruct" and p.seed == 42


def test_smoke_profile_is_small():
    p = config.load(profile="smoke")
    assert p.stage3.max_steps <= 10 and p.model.tiny.hidden_size <= 64


@pytest.mark.parametrize(
    "override, message",
    [
        ({"stage3": {"lr": 0.1}}, "overrides.stage3.lr: unknown key"),
        ({"stage3": {"learning_rate": "fast"}}, "stage3.learning_rate: expected a number > 0, found 'fast'"),
        ({"stage3": {"learning_rate": -1}}, "stage3.learning_rate: expected a number > 0, found -1"),
        ({"stage3": {"batch_size": 2.5}}, "stage3.batch_size: expected an integer >= 1, found 2.5"),
        ({"stage3": {"bf16": 1}}, "stage3.bf16: expected true or false, found 1"),
        (
            {"env": {"backend": "minecraft"}},
            "env.backend: expected one of ['minetest', 'minestudio'], found 'minecraft'",
        ),
        ({"action": {"camera_binsize": 3.0}}, "2*maxval/binsize to be an integer"),
        ({"model": {"tiny": {"hidden_size": 130}}}, "divisible by num_heads"),
        (
            {"evaluate": {"max_steps_cap_by_category": {"mining": 50}}},
            "overrides.evaluate.max_steps_cap_by_category.mining: unknown key",
        ),
        ({"evaluate": {"max_steps_cap_by_category": {"mine": -5}}}, "expected an integer >= 0, found -5"),
    ],
)
def test_errors_name_the_key_the_expectation_and_the_value(override, message):
    with pytest.raises(config.ConfigError) as e:
        config.load(overrides=override)
    assert message in str(e.value)


def test_unknown_key_in_the_file_is_rejected(tmp_path):
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    raw["stage2"]["learnig_rate"] = 0.1
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ConfigError, match=r"stage2.learnig_rate: unknown key; expected one of \["):
        config.load(f)


def test_default_profile_overrides_apply_and_unknown_profiles_are_named(tmp_path):
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    assert raw["profiles"]["default"] == {}, "dvc.yaml stages depend on profiles.<profile>"
    raw["profiles"]["default"] = {"stage3": {"max_steps": 7}}
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert config.load(f).stage3.max_steps == 7
    with pytest.raises(config.ConfigError, match="profile: expected one of .*'smoke'.*found 'fast'"):
        config.load(f, profile="fast")


def test_unknown_key_in_a_profile_is_rejected(tmp_path):
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    raw["profiles"]["smoke"]["stage3"]["maxsteps"] = 3
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    config.load(f)  # the default profile does not read it ...
    with pytest.raises(config.ConfigError, match="profiles.smoke.stage3.maxsteps: unknown key"):
        config.load(f, profile="smoke")  # ... the smoke profile does


def test_missing_section_is_reported(tmp_path):
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    del raw["stage1"]
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ConfigError, match="stage1: missing"):
        config.load(f)


def test_unknown_profile(params):
    with pytest.raises(config.ConfigError, match="profile: expected one of"):
        config.load(profile="huge")


def test_to_dict_round_trips(params):
    again = config.from_dict(config.to_dict(params))
    assert again == params


def test_step_limit_is_the_smallest_nonzero_cap():
    ev = config.load(
        overrides={"evaluate": {"max_steps_cap": 150, "max_steps_cap_by_category": {"mine": 100, "kill": 0}}}
    ).evaluate
    assert ev.step_limit("mine", 400) == 100  # category cap
    assert ev.step_limit("smelt", 600) == 150  # no category cap: the global cap
    assert ev.step_limit("kill", 400) == 150  # 0 = no category cap
    assert ev.step_limit("mine", 60) == 60  # the task's own limit is smaller
    off = config.load(
        overrides={
            "evaluate": {"max_steps_cap": 0, "max_steps_cap_by_category": {"mine": 0, "kill": 0, "craft": 0}}
        }
    ).evaluate
    assert off.step_limit("craft", 500) == 500


def test_unknown_category_cap_in_the_file_is_rejected(tmp_path):
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    raw["evaluate"]["max_steps_cap_by_category"] = {"mining": 50}
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        config.ConfigError, match=r"evaluate.max_steps_cap_by_category.mining: expected one of \["
    ):
        config.load(f, profile="default")
