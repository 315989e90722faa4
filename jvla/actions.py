"""The Minecraft action space in its two forms, and the mu-law camera quantiser.

**Env form** (MineRL / MineStudio ``action_type="env"``): a dict with one 0/1 entry per button
in :data:`BUTTONS` and ``camera`` = ``[pitch, yaw]`` in degrees (float). Positive pitch looks
down, positive yaw turns right (MineRL ``CameraAction``; the same signs as a mouse moved down /
right). Both game backends consume this form.

**Agent form** (VPT ``CameraHierarchicalMapping``, MineStudio ``action_type="agent"``): two joint
indices, ``buttons`` in ``[0, 8641)`` and ``camera`` in ``[0, n_bins**2)``. ``buttons`` is the
mixed-radix index over the button groups of :data:`BUTTON_GROUPS` (last group varying fastest,
i.e. ``itertools.product`` order), and ``8640`` means "inventory", which is exclusive with every
other button and with the camera. ``camera = pitch_bin * n_bins + yaw_bin``.

Conversion env -> agent is lossy in the same places as VPT's: forward+back (or left+right)
pressed together cancel, two hotbar keys (or sprint+sneak) keep the later one of the group, and
inventory wins over everything. :meth:`ActionSpace.canonical` gives the env action that survives
that conversion, which is what a round trip through tokens returns.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jvla.config import ActionConfig

# NOTE(code MineStudio vpt_lib/actions.py Buttons.ALL): the button order of the env form.
BUTTONS: tuple[str, ...] = (
    "attack", "back", "forward", "jump", "left", "right", "sneak", "sprint", "use", "drop",
    "inventory", *(f"hotbar.{i}" for i in range(1, 10)),
)  # fmt: skip

# NOTE(code VPT action_mapping.py CameraHierarchicalMapping.BUTTONS_GROUPS): groups of mutually
# exclusive options; option 0 of every group is "none". The order defines the joint index.
BUTTON_GROUPS: dict[str, tuple[str, ...]] = {
    "hotbar": ("none", *(f"hotbar.{i}" for i in range(1, 10))),
    "fore_back": ("none", "forward", "back"),
    "left_right": ("none", "left", "right"),
    "sprint_sneak": ("none", "sprint", "sneak"),
    "use": ("none", "use"),
    "drop": ("none", "drop"),
    "attack": ("none", "attack"),
    "jump": ("none", "jump"),
    "camera": ("none", "camera"),  # the "camera moved" meta flag, not a button
}
GROUP_NAMES: tuple[str, ...] = tuple(BUTTON_GROUPS)
GROUP_SIZES: tuple[int, ...] = tuple(len(v) for v in BUTTON_GROUPS.values())
N_BUTTON_COMBINATIONS: int = math.prod(GROUP_SIZES)  # 8640
INVENTORY_INDEX: int = N_BUTTON_COMBINATIONS  # joint index 8640 = "inventory"

EnvAction = dict  # {button: int 0/1 for each of BUTTONS, "camera": np.ndarray([pitch, yaw])}


@dataclass(frozen=True)
class AgentAction:
    """One action in VPT's hierarchical (agent) form: two joint indices."""

    buttons: int
    camera: int


class CameraQuantizer:
    """Mu-law quantisation of camera degrees into ``n_bins`` bins per axis.

    ``n_bins = 2 * maxval / binsize + 1`` (21 for JARVIS-VLA's maxval 10, binsize 1, mu 20; 11 for
    MineStudio's default maxval 10, binsize 2, mu 10). Bin ``n_bins // 2`` is 0 degrees.

    Encoding clips to ``[-maxval, maxval]``, maps ``x`` to
    ``v = sign(x) * maxval * ln(1 + mu |x| / maxval) / ln(1 + mu)`` and rounds ``(v + maxval) /
    binsize`` half-to-even (``np.round``, as MineStudio does, so ties land on the same bin).
    Decoding inverts the map at the bin centre; so a round trip errs by at most half a bin in
    mu-law space, which is a few hundredths of a degree near 0 and up to ~1.4 degrees near 10.
    """

    def __init__(self, maxval: float, binsize: float, mu: float, scheme: str = "mu_law"):
        if scheme not in ("mu_law", "linear"):
            raise ValueError(f"camera quantisation scheme: expected 'mu_law' or 'linear', found {scheme!r}")
        n = 2 * maxval / binsize + 1
        if abs(n - round(n)) > 1e-9:
            raise ValueError(f"2 * maxval / binsize must be an integer, found {2 * maxval / binsize}")
        self.maxval, self.binsize, self.mu, self.scheme = float(maxval), float(binsize), float(mu), scheme
        self.n_bins: int = int(round(n))
        self.null_bin: int = self.n_bins // 2

    @classmethod
    def from_config(cls, cfg: ActionConfig) -> CameraQuantizer:
        return cls(cfg.camera_maxval, cfg.camera_binsize, cfg.camera_mu, cfg.camera_scheme)

    def encode_space(self, degrees: np.ndarray | float) -> np.ndarray:
        """Degrees -> continuous position in bin units (before rounding), after clipping."""
        x = np.clip(np.asarray(degrees, dtype=np.float64), -self.maxval, self.maxval)
        if self.scheme == "mu_law":
            x = np.sign(x) * self.maxval * np.log1p(self.mu * np.abs(x) / self.maxval) / np.log1p(self.mu)
        return (x + self.maxval) / self.binsize

    def discretize(self, degrees: np.ndarray | float) -> np.ndarray:
        """Degrees (any shape) -> int64 bins in ``[0, n_bins)``."""
        return np.round(self.encode_space(degrees)).astype(np.int64)

    def undiscretize(self, bins: np.ndarray | int) -> np.ndarray:
        """Bins (any shape) -> degrees at the bin centres."""
        v = (np.asarray(bins, dtype=np.float64) * self.binsize - self.maxval) / self.maxval
        if self.scheme == "mu_law":
            v = np.sign(v) * (np.power(1.0 + self.mu, np.abs(v)) - 1.0) / self.mu
        return v * self.maxval

    @cached_property
    def bin_centres(self) -> np.ndarray:
        """Degrees of every bin centre, shape ``(n_bins,)``, ascending."""
        return self.undiscretize(np.arange(self.n_bins))


class ActionSpace:
    """Conversions between the env form, VPT's agent form and the 12 per-group digits.

    The digit form is what the action tokenizer writes: ``digits[g]`` for ``g`` in 0..8 is the
    option index within :data:`BUTTON_GROUPS` group ``g``; ``digits[9]`` is inventory (0/1);
    ``digits[10]`` / ``digits[11]`` are the pitch / yaw bins.
    """

    def __init__(self, quantizer: CameraQuantizer):
        self.quantizer = quantizer
        self.n_bins = quantizer.n_bins
        self.null_camera_index = quantizer.null_bin * self.n_bins + quantizer.null_bin
        self.n_camera = self.n_bins * self.n_bins
        # The radix of each digit, in the order written to tokens (official layout).
        self.digit_bases: tuple[int, ...] = (*GROUP_SIZES, 2, self.n_bins, self.n_bins)

    @classmethod
    def from_config(cls, cfg: ActionConfig) -> ActionSpace:
        return cls(CameraQuantizer.from_config(cfg))

    # -- env form ---------------------------------------------------------------------------
    @staticmethod
    def null_env_action() -> EnvAction:
        action: EnvAction = dict.fromkeys(BUTTONS, 0)
        action["camera"] = np.zeros(2, dtype=np.float64)
        return action

    def null_agent_action(self) -> AgentAction:
        return AgentAction(buttons=0, camera=self.null_camera_index)

    @staticmethod
    def validate_env_action(action: EnvAction) -> None:
        """Raise ``ValueError`` naming the key if ``action`` is not a well-formed env action."""
        for b in BUTTONS:
            if b not in action:
                raise ValueError(f"env action: missing button {b!r}")
            if int(action[b]) not in (0, 1):
                raise ValueError(f"env action: button {b!r} must be 0 or 1, found {action[b]!r}")
        unknown = set(action) - set(BUTTONS) - {"camera"}
        if unknown:
            raise ValueError(f"env action: unknown keys {sorted(unknown)}")
        cam = np.asarray(action.get("camera"), dtype=np.float64)
        if cam.shape != (2,) or not np.all(np.isfinite(cam)):
            raise ValueError(
                f"env action: camera must be finite [pitch, yaw], found {action.get('camera')!r}"
            )

    # -- env <-> agent ------------------------------------------------------------------------
    def env_to_agent(self, action: EnvAction) -> AgentAction:
        """VPT ``ActionTransformer.env2policy`` + ``CameraHierarchicalMapping.from_factored``."""
        if int(action.get("inventory", 0)):
            return AgentAction(INVENTORY_INDEX, self.null_camera_index)
        pitch, yaw = self.quantizer.discretize(np.asarray(action["camera"], dtype=np.float64))
        camera = int(pitch) * self.n_bins + int(yaw)
        digits = []
        for name, options in BUTTON_GROUPS.items():
            if name == "camera":
                digits.append(0 if camera == self.null_camera_index else 1)
                continue
            pressed = [i for i, opt in enumerate(options) if i and int(action.get(opt, 0))]
            # NOTE(code VPT factored_buttons_to_groups): forward+back and left+right pressed
            # together mean neither; otherwise the later option of a group wins.
            if name in ("fore_back", "left_right") and len(pressed) == 2:
                pressed = []
            digits.append(pressed[-1] if pressed else 0)
        return AgentAction(self._digits_to_index(digits), camera)

    def agent_to_env(self, agent: AgentAction) -> EnvAction:
        """VPT ``to_factored`` + ``policy2env``; the camera is null when the camera flag is off.

        # NOTE(code VPT to_factored): the inventory index has no camera flag and keeps its camera
        # bins (``BUTTON_IDX_TO_CAMERA_META_OFF`` is False for it), as MineStudio does.
        """
        env = self.null_env_action()
        if agent.buttons == INVENTORY_INDEX:
            env["inventory"] = 1
            pitch, yaw = divmod(agent.camera, self.n_bins)
            env["camera"] = self.quantizer.undiscretize(np.array([pitch, yaw]))
            return env
        digits = self._index_to_digits(agent.buttons)
        for (name, options), d in zip(BUTTON_GROUPS.items(), digits, strict=True):
            if name != "camera" and d:
                env[options[d]] = 1
        if digits[-1]:  # camera flag on
            pitch, yaw = divmod(agent.camera, self.n_bins)
            env["camera"] = self.quantizer.undiscretize(np.array([pitch, yaw]))
        return env

    def canonical(self, action: EnvAction) -> EnvAction:
        """The env action as it survives quantisation and VPT's exclusivity rules."""
        return self.agent_to_env(self.env_to_agent(action))

    # -- agent <-> digits ---------------------------------------------------------------------
    def agent_to_digits(self, agent: AgentAction) -> tuple[int, ...]:
        """Agent form -> the 12 digits (9 button groups, inventory, pitch bin, yaw bin)."""
        pitch, yaw = divmod(agent.camera, self.n_bins)
        if agent.buttons == INVENTORY_INDEX:
            return (*([0] * len(GROUP_SIZES)), 1, pitch, yaw)
        return (*self._index_to_digits(agent.buttons), 0, pitch, yaw)

    def digits_to_agent(self, digits: tuple[int, ...] | list[int]) -> AgentAction:
        """The 12 digits -> agent form. The camera flag digit is recomputed from the bins, as the
        official decoder does; inventory overrides every button digit."""
        if len(digits) != len(self.digit_bases):
            raise ValueError(f"expected {len(self.digit_bases)} digits, found {len(digits)}")
        for d, base in zip(digits, self.digit_bases, strict=True):
            if not 0 <= d < base:
                raise ValueError(f"digit {d} out of range [0, {base})")
        camera = digits[10] * self.n_bins + digits[11]
        if digits[9]:
            return AgentAction(INVENTORY_INDEX, camera)
        buttons = list(digits[: len(GROUP_SIZES)])
        buttons[-1] = 0 if camera == self.null_camera_index else 1
        return AgentAction(self._digits_to_index(buttons), camera)

    @staticmethod
    def _digits_to_index(digits: list[int] | tuple[int, ...]) -> int:
        index = 0
        for d, base in zip(digits, GROUP_SIZES, strict=True):
            index = index * base + d
        return index

    @staticmethod
    def _index_to_digits(index: int) -> list[int]:
        if not 0 <= index < N_BUTTON_COMBINATIONS:
            raise ValueError(f"button index {index} out of range [0, {N_BUTTON_COMBINATIONS})")
        digits = []
        for base in reversed(GROUP_SIZES):
            index, d = divmod(index, base)
            digits.append(d)
        return digits[::-1]


def all_button_combinations() -> list[tuple[str, ...]]:
    """Every joint button combination in index order (VPT's ``BUTTONS_COMBINATIONS``)."""
    return [*itertools.product(*BUTTON_GROUPS.values()), ("inventory",)]
