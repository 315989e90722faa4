"""The action space: mu-law camera bins and VPT's hierarchical (agent) form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jvla.actions import (
    BUTTONS,
    INVENTORY_INDEX,
    N_BUTTON_COMBINATIONS,
    AgentAction,
    CameraQuantizer,
    all_button_combinations,
)

# paper.md §2.2: bin centres in degrees of the 21-bin JARVIS-VLA camera.
PAPER_BIN_CENTRES = [-10.0, -7.244, -5.211, -3.712, -2.607, -1.791, -1.19, -0.746, -0.419, -0.178,
                     0.0, 0.178, 0.419, 0.746, 1.19, 1.791, 2.607, 3.712, 5.211, 7.244, 10.0]  # fmt: skip


def test_bin_centres_match_the_paper(space):
    assert space.n_bins == 21, "maxval 10, binsize 1 must give 21 bins per axis"
    np.testing.assert_allclose(space.quantizer.bin_centres, PAPER_BIN_CENTRES, atol=5e-4)


def test_minestudio_default_camera_has_11_bins():
    q = CameraQuantizer(10, 2, 10)
    assert q.n_bins == 11
    # values measured on MineStudio's own quantiser (official-code.md §B2)
    assert q.discretize(2.0) == 7 and abs(q.undiscretize(7) - 1.61) < 0.01
    assert q.discretize(15.0) == 10 and q.undiscretize(10) == 10.0


@given(st.floats(-30, 30, allow_nan=False))
def test_quantiser_round_trip_is_within_half_a_bin(space, x):
    q = space.quantizer
    b = int(q.discretize(x))
    assert 0 <= b < q.n_bins
    # rounding happens in mu-law space: the decoded centre is within half a bin there ...
    assert abs(q.encode_space(q.undiscretize(b)) - q.encode_space(x)) <= 0.5 + 1e-9
    # ... and in degrees it is one of the two centres around the clipped value
    c = np.clip(x, -10, 10)
    centres = q.bin_centres
    lo, hi = centres[centres <= c + 1e-12].max(), centres[centres >= c - 1e-12].min()
    assert q.undiscretize(b) in (lo, hi)


def test_quantiser_clips_at_maxval(space):
    q = space.quantizer
    assert q.discretize(45.0) == 20 and q.discretize(-180.0) == 0
    assert q.undiscretize(20) == 10.0


def test_button_index_layout_matches_vpt():
    combos = all_button_combinations()
    assert len(combos) == N_BUTTON_COMBINATIONS + 1 == 8641
    assert combos[INVENTORY_INDEX] == ("inventory",)
    assert combos[0] == ("none",) * 9
    # last group (camera flag) varies fastest, hotbar slowest
    assert combos[1][-1] == "camera" and combos[864][0] == "hotbar.1"


def test_null_action(space):
    assert space.env_to_agent(space.null_env_action()) == AgentAction(0, 220)
    assert space.null_camera_index == 220, "camera index of (pitch 10, yaw 10) with 21 bins"


def test_vpt_exclusivity_rules(space):
    a = space.null_env_action()
    a.update(forward=1, back=1, left=1, sprint=1, sneak=1, **{"hotbar.2": 1, "hotbar.5": 1})
    c = space.canonical(a)
    assert c["forward"] == c["back"] == 0, "forward+back cancel"
    assert c["left"] == 1
    assert c["sneak"] == 1 and c["sprint"] == 0, "the later option of a group wins"
    assert c["hotbar.5"] == 1 and c["hotbar.2"] == 0
    a["inventory"] = 1
    a["camera"] = np.array([5.0, -5.0])
    c = space.canonical(a)
    assert c["inventory"] == 1 and sum(c[b] for b in BUTTONS) == 1
    assert np.all(c["camera"] == 0), "inventory is exclusive with the camera"


def test_camera_flag_off_nulls_the_camera(space):
    agent = AgentAction(buttons=0, camera=0)  # flag off, bins (0, 0)
    assert np.all(space.agent_to_env(agent)["camera"] == 0)


def test_validate_env_action_names_the_key(space):
    a = space.null_env_action()
    a["jump"] = 2
    with pytest.raises(ValueError, match="jump"):
        space.validate_env_action(a)
    a = space.null_env_action()
    a["fly"] = 1
    with pytest.raises(ValueError, match="fly"):
        space.validate_env_action(a)
