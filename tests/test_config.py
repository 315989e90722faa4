"""params.yaml: typed, frozen, profiles, one source of defaults, the shared training block,
cross-references, and errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterator

import pytest
import yaml

from jvla import config
from jvla.paths import PARAMS_FILE

RAW = yaml.safe_load(PARAMS_FILE.read_text())  # parsed once; tests edit deep copies
STAGES = ("stage1", "stage2", "stage3", "finetune")


def _raw() -> dict:
    return copy.deepcopy(RAW)


def _load(raw: dict, **kw) -> config.Params:
    return config.from_dict(raw, source="params.yaml", **kw)


def _write(tmp_path, raw: dict):
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


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
        ({"training": {"lr": 0.1}}, "overrides.training.lr: unknown key"),
        ({"stage3": {"learning_rate": "fast"}}, "stage3.learning_rate: expected a number > 0, found 'fast'"),
        ({"stage3": {"learning_rate": -1}}, "stage3.learning_rate: expected a number > 0, found -1"),
        ({"stage3": {"batch_size": 2.5}}, "stage3.batch_size: expected an integer >= 1, found 2.5"),
        ({"stage3": {"bf16": 1}}, "stage3.bf16: expected true or false, found 1"),
        ({"training": {"bf16": 1}}, "training.bf16: expected true or false, found 1"),
        ({"stage3": 5}, "overrides.stage3: expected a mapping, found 5 (int)"),
        (
            {"env": {"backend": "minecraft"}},
            "env.backend: expected one of ['minetest', 'minestudio'], found 'minecraft'",
        ),
        ({"env": {"backnd": "minetest"}}, "overrides.env.backnd: unknown key; expected one of ["),
        ({"action": {"camera_binsize": 3.0}}, "2*maxval/binsize to be an integer"),
        ({"model": {"tiny": {"hidden_size": 130}}}, "divisible by num_heads"),
        (
            {"evaluate": {"horizon": {"min_steps": {"mining": 50}}}},
            "overrides.evaluate.horizon.min_steps.mining: unknown key",
        ),
        ({"evaluate": {"horizon": {"min_steps": {"mine": -5}}}}, "expected an integer >= 0, found -5"),
    ],
)
def test_errors_name_the_key_the_expectation_and_the_value(override, message):
    with pytest.raises(config.ConfigError) as e:
        config.load(overrides=override)
    assert message in str(e.value)


def test_unknown_key_in_the_file_is_rejected(tmp_path):
    for section in ("stage2", "training"):
        raw = _raw()
        raw[section]["learnig_rate"] = 0.1
        with pytest.raises(
            config.ConfigError,
            match=rf"^params.yaml: {section}.learnig_rate: unknown key; expected one of \[",
        ):
            config.load(_write(tmp_path, raw))


def test_default_profile_overrides_apply_and_unknown_profiles_are_named(tmp_path):
    raw = _raw()
    assert raw["profiles"]["default"] == {}, "dvc.yaml stages depend on profiles.<profile>"
    raw["profiles"]["default"] = {"stage3": {"max_steps": 7}}
    f = _write(tmp_path, raw)
    assert config.load(f).stage3.max_steps == 7
    with pytest.raises(config.ConfigError, match="profile: expected one of .*'smoke'.*found 'fast'"):
        config.load(f, profile="fast")


def test_unknown_key_in_a_profile_is_rejected(tmp_path):
    raw = _raw()
    raw["profiles"]["smoke"]["stage3"] = {"maxsteps": 3}
    f = _write(tmp_path, raw)
    config.load(f)  # the default profile does not read it ...
    with pytest.raises(config.ConfigError, match="profiles.smoke.stage3.maxsteps: unknown key"):
        config.load(f, profile="smoke")  # ... the smoke profile does


def test_missing_section_is_reported(tmp_path):
    raw = _raw()
    del raw["stage1"]
    with pytest.raises(config.ConfigError, match="^params.yaml: stage1: missing"):
        config.load(_write(tmp_path, raw))


def test_unknown_profile(params):
    with pytest.raises(config.ConfigError, match="profile: expected one of"):
        config.load(profile="huge")


@pytest.mark.parametrize("profile", ["default", "smoke", "paper"])
def test_to_dict_round_trips(profile):
    p = config.load(profile=profile)
    assert config.from_dict(config.to_dict(p)) == p


def test_step_limit_follows_the_experts_with_a_floor_per_category_and_caps():
    ev = config.load(
        overrides={
            "evaluate": {
                "horizon": {"expert_factor": 2.0, "min_steps": {"mine": 100, "kill": 200}, "max_steps": 0}
            }
        }  # fmt: skip
    ).evaluate
    assert ev.step_limit("mine", 400, 30.0) == 100  # 2 x 30 < the floor
    assert ev.step_limit("mine", 400, 70.5) == 141  # ceil(2 x 70.5)
    assert ev.step_limit("mine", 120, 70.5) == 120  # the task's own limit is smaller
    assert ev.step_limit("kill", 400, None) == 200  # not measured: the floor
    capped = config.load(overrides={"evaluate": {"horizon": {"max_steps": 150}}}).evaluate
    assert capped.step_limit("kill", 400, 30.0) == 150  # the global cap wins over the floor
    off = config.load(
        overrides={
            "evaluate": {
                "horizon": {"expert_factor": 0, "min_steps": {"mine": 0, "kill": 0, "craft": 0, "smelt": 0}}
            }
        }  # fmt: skip
    ).evaluate
    assert off.step_limit("craft", 500, 20.0) == 500  # the task's own limit (paper profile)


def test_unknown_category_in_the_file_is_rejected(tmp_path):
    raw = _raw()
    raw["evaluate"]["horizon"]["min_steps"] = {"mining": 50}
    with pytest.raises(config.ConfigError, match=r"evaluate.horizon.min_steps.mining: expected one of \["):
        config.load(_write(tmp_path, raw), profile="default")


# ------------------------------------------------------------------ one source of defaults
# The only fields with a default in code: keys a setting may leave out of params.yaml.
OPTIONAL = {
    "EvalSetting": {"inference_chunk", "episodes", "videos_per_task", "ablation"},
    "VariantConfig": {"ft_fraction", "post_fraction"},
}


def _config_classes(tp=config.Params, seen=None) -> set[type]:
    """Every dataclass reachable from ``tp`` through its field types."""
    seen = set() if seen is None else seen
    if dataclasses.is_dataclass(tp) and tp not in seen:
        seen.add(tp)
        for hint in typing.get_type_hints(tp).values():
            _config_classes(hint, seen)
    for arg in typing.get_args(tp):
        _config_classes(arg, seen)
    return seen


def test_only_the_documented_optional_keys_have_a_default_in_code():
    with_default: dict[str, set[str]] = {}
    for cls in _config_classes():
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                with_default.setdefault(cls.__name__, set()).add(f.name)
    assert with_default == OPTIONAL
    assert len(_config_classes()) >= 20  # the walk reaches every section


def _key(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _supplied_keys(tp: typing.Any, node: typing.Any, path: tuple = ()) -> Iterator[tuple]:
    """Key paths of every schema key that params.yaml supplies (sections and leaves), except the
    optional ones, the per-stage overrides (optional by design: they fall back to ``training``)
    and the contents of ``profiles`` (overrides)."""
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        for name in node:
            if name in OPTIONAL.get(tp.__name__, ()) or (not path and name in config.TRAIN_SECTIONS):
                continue
            yield (*path, name)
            if path or name != "profiles":
                yield from _supplied_keys(hints[name], node[name], (*path, name))
    elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
        for k, v in node.items():  # entries (variants, settings) are data; their keys are schema
            yield from _supplied_keys(typing.get_args(tp)[1], v, (*path, k))
    elif typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        for i, v in enumerate(node):
            yield from _supplied_keys(typing.get_args(tp)[0], v, (*path, i))


SUPPLIED = list(_supplied_keys(config.Params, RAW))


def test_the_key_walk_covers_the_file():
    keys = {_key(p) for p in SUPPLIED}
    assert len(SUPPLIED) > 250
    for k in ("training.max_steps", "model.tiny.vocab_size", "evaluate.horizon.expert_factor", "profiles",
              "evaluate.settings.main_il.variant", "report.backbone[0].model", "variants.raw.stage3"):  # fmt: skip
        assert k in keys, k


@pytest.mark.parametrize("path", SUPPLIED, ids=_key)
def test_removing_any_key_is_an_error_naming_it(path):
    raw = _raw()
    node = raw
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    with pytest.raises(config.ConfigError) as e:
        _load(raw)
    assert str(e.value) == f"params.yaml: {_key(path)}: missing (required)"


# ---------------------------------------------------------------- the shared training block
TRAIN_KEYS = ("max_steps", "learning_rate", "warmup_steps", "eval_steps", "save_steps", "logging_steps",
              "batch_size", "grad_accum", "max_length", "bf16", "gradient_checkpointing", "sampling",
              "dataloader_workers", "cpu_threads", "eval_samples", "augment")  # fmt: skip
TRAIN_SAME = {"adam_beta1": 0.9, "adam_beta2": 0.95, "adam_epsilon": 1e-08, "lora_alpha": 32, "lora_dropout": 0.0,
              "lora_r": 16, "lr_scheduler": "cosine", "max_grad_norm": 1.0, "peft": "none", "weight_decay": 0.0}  # fmt: skip
# The four stages of each profile as params.yaml spelt them out before the `training:` block (the
# default fine-tune's max_steps 200 -> 500 -> 400, issue 16: 20 demonstrations of each evaluated task; 400 fits the 120-min budget).
TRAIN_BEFORE = {
    ("default", "stage1"): (300, 0.002, 20, 100, 100, 10, 8, 1, 512, False, False, "group_by_length", 1, 1, 128, False),
    ("default", "stage2"): (300, 0.002, 20, 100, 100, 10, 8, 1, 512, False, False, "group_by_length", 1, 1, 128, False),
    ("default", "stage3"): (600, 0.002, 20, 150, 150, 10, 8, 1, 512, False, False, "group_by_length", 1, 1, 128, False),
    ("default", "finetune"): (400, 0.001, 10, 100, 100, 10, 8, 1, 512, False, False, "group_by_length", 1, 1, 128, False),
    ("smoke", "stage1"): (5, 0.002, 1, 5, 5, 1, 4, 1, 512, False, False, "group_by_length", 0, 1, 16, False),
    ("smoke", "stage2"): (5, 0.002, 1, 5, 5, 1, 4, 1, 512, False, False, "group_by_length", 0, 1, 16, False),
    ("smoke", "stage3"): (5, 0.002, 1, 5, 5, 1, 4, 1, 512, False, False, "group_by_length", 0, 1, 16, False),
    ("smoke", "finetune"): (5, 0.001, 1, 5, 5, 1, 4, 1, 512, False, False, "group_by_length", 0, 1, 16, False),
    ("paper", "stage1"): (1000, 5e-06, 200, 200, 1600, 1, 2, 4, 3584, True, True, "random", 4, 0, 1000, True),
    ("paper", "stage2"): (1000, 5e-06, 200, 200, 1600, 1, 2, 4, 3584, True, True, "random", 4, 0, 1000, True),
    ("paper", "stage3"): (14752, 5e-06, 200, 200, 1600, 1, 8, 1, 512, True, True, "random", 4, 0, 1000, True),
    ("paper", "finetune"): (200, 5e-06, 20, 50, 100, 1, 8, 1, 512, True, True, "random", 4, 0, 1000, True),
}  # fmt: skip


@pytest.mark.parametrize("profile", ["default", "smoke", "paper"])
def test_training_sections_expand_to_the_values_they_had(profile):
    p = config.load(profile=profile)
    for stage in STAGES:
        expected = {**TRAIN_SAME, **dict(zip(TRAIN_KEYS, TRAIN_BEFORE[profile, stage], strict=True))}
        assert config.to_dict(getattr(p, stage)) == expected, stage


def test_stage_sections_list_only_what_differs_from_the_shared_block():
    for stage in config.TRAIN_SECTIONS:
        assert set(RAW[stage]) < set(RAW["training"])
        assert all(RAW[stage][k] != RAW["training"][k] for k in RAW[stage]), stage
    for profile in ("smoke", "paper"):
        assert "training" in RAW["profiles"][profile]


def test_a_shared_value_reaches_every_stage_that_does_not_set_its_own():
    raw = _raw()
    raw["training"]["learning_rate"] = 0.01  # dvc exp run -S training.learning_rate=0.01
    p = _load(raw)
    assert p.stage1.learning_rate == p.stage2.learning_rate == p.stage3.learning_rate == 0.01
    assert p.finetune.learning_rate == RAW["finetune"]["learning_rate"]  # its own override wins
    # a later layer's shared value beats an earlier layer's per-stage value
    p = _load(_raw(), overrides={"training": {"learning_rate": 0.01}})
    assert {getattr(p, s).learning_rate for s in STAGES} == {0.01}
    assert (
        _load(_raw(), profile="smoke").stage3.max_steps == RAW["profiles"]["smoke"]["training"]["max_steps"]
    )
    # and a per-stage value wins within its layer
    p = _load(_raw(), overrides={"training": {"max_steps": 9}, "stage2": {"max_steps": 4}})
    assert (p.training.max_steps, p.stage1.max_steps, p.stage2.max_steps, p.stage3.max_steps) == (9, 9, 4, 9)


def test_one_stage_key_changes_one_stage():
    raw = _raw()
    raw["stage3"]["max_steps"] = 1200  # dvc exp run -S stage3.max_steps=1200
    raw["stage1"]["learning_rate"] = 0.005  # dvc exp run -S +stage1.learning_rate=0.005 (absent before)
    p, before = _load(raw), config.load()
    assert p.stage3.max_steps == 1200 and p.stage1.learning_rate == 0.005
    assert dataclasses.replace(p, stage1=before.stage1, stage3=before.stage3) == before  # nothing else


def test_a_stage_key_left_out_falls_back_to_the_shared_block_in_the_file():
    raw = _raw()
    del raw["stage3"]["max_steps"]
    assert _load(raw).stage3.max_steps == RAW["training"]["max_steps"]


def test_profile_merge_checks_keys_against_the_schema_not_the_base_section():
    assert "learning_rate" not in RAW["stage3"] and "learning_rate" not in RAW["profiles"]["paper"]["stage3"]
    raw = _raw()
    raw["profiles"]["paper"]["stage3"]["learning_rate"] = 1e-4
    p = _load(raw, profile="paper")
    assert p.stage3.learning_rate == 1e-4 and p.stage2.learning_rate == 5e-6
    raw["profiles"]["paper"]["stage3"]["learning_rat"] = 1e-4
    with pytest.raises(
        config.ConfigError, match=r"^params.yaml: profiles.paper.stage3.learning_rat: unknown key"
    ):
        _load(raw, profile="paper")
    # outside the training block too: an optional field the base entry leaves out is valid ...
    raw = _raw()
    assert "episodes" not in raw["evaluate"]["settings"]["main_il"]
    raw["profiles"]["smoke"]["evaluate"]["settings"] = {"main_il": {"episodes": 2}}
    assert _load(raw, profile="smoke").evaluate.episodes_of("main_il") == 2
    # ... a misspelt field is not, and neither is a new name in a free-form mapping
    for over, key in [
        ({"model": {"tiny": {"hidden_sise": 8}}}, "profiles.smoke.model.tiny.hidden_sise"),
        ({"evaluate": {"settings": {"main_il": {"episods": 2}}}}, "profiles.smoke.evaluate.settings.main_il.episods"),
        ({"evaluate": {"settings": {"main_ill": {"episodes": 2}}}}, "profiles.smoke.evaluate.settings.main_ill"),
    ]:  # fmt: skip
        raw = _raw()
        raw["profiles"]["smoke"] = over
        with pytest.raises(config.ConfigError, match=rf"^params.yaml: {key}: unknown key"):
            _load(raw, profile="smoke")


# ------------------------------------------------------------------------ cross-references
def _path(key: str) -> list:
    """``report.backbone[1].model`` -> ``["report", "backbone", 1, "model"]``."""
    return [int(p) if p.isdigit() else p for p in key.replace("[", ".").replace("]", "").split(".")]


# (key set to a name that points nowhere, what the error expects there)
REFERENCES = [
    ("evaluate.settings.main_il.variant", "a key of variants"),
    ("evaluate.settings.backbone_raw_llava.tasks[0]", "a task of tasks/"),
    ("evaluate.settings.fig4_vision.tasks[0]", "tag:<t>"),
    ("data.trajectories.tasks[0]", "a task of tasks/"),
    ("report.table1_tasks.mine:iron_ore", "a task of tasks/"),
    ("report.table4_tag", "a tag"),
    ("report.figure4_tag", "a tag"),
    ("report.table1_settings.il", "a key of evaluate.settings"),
    ("report.table2_settings.one_stage", "a key of evaluate.settings"),
    ("report.figure4_settings.vision", "a key of evaluate.settings"),
    ("report.table4_settings[2]", "a key of evaluate.settings"),
    ("report.figure5_settings[0]", "a key of evaluate.settings"),
    ("report.figure6_settings[1]", "a key of evaluate.settings"),
    ("report.backbone[0].setting", "a key of evaluate.settings"),
    ("vl_bench.models[3]", "a run of the variant graph"),
    ("report.table8_models.vision", "a run of the variant graph"),
    ("report.backbone[1].model", "a run of the variant graph"),
]


@pytest.mark.parametrize("key, expected", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_a_name_that_points_nowhere_is_an_error_naming_the_key(key, expected):
    raw = _raw()
    *head, last = _path(key)
    node = raw
    for p in head:
        node = node[p]
    if node == [] and last == 0:  # an empty list in params.yaml (data.trajectories.tasks)
        node.append(None)
    value = node[last]
    node[last] = "tag:nope" if isinstance(value, str) and value.startswith("tag:") else "nope"
    with pytest.raises(config.ConfigError) as e:
        _load(raw)
    msg = str(e.value)
    assert msg.startswith(f"params.yaml: {key}: expected {expected}"), msg
    assert msg.endswith(f", found {node[last]!r}"), msg


def test_a_new_users_mistakes_fail_in_load(tmp_path):
    raw = _raw()
    raw["evaluate"]["settings"]["main_il"]["variant"] = "nope"
    with pytest.raises(
        config.ConfigError, match=r"^params.yaml: evaluate.settings.main_il.variant: expected"
    ):
        config.load(_write(tmp_path, raw))
    raw = _raw()
    raw["data"]["trajectories"]["tasks"] = ["no_such_task"]
    with pytest.raises(
        config.ConfigError, match=r"^params.yaml: data.trajectories.tasks\[0\]: .*'no_such_task'"
    ):
        config.load(_write(tmp_path, raw))
    with pytest.raises(config.ConfigError, match=r"data.trajectories.tasks\[0\]"):  # a profile's too
        config.load(overrides={"data": {"trajectories": {"tasks": ["no_such_task"]}}})
