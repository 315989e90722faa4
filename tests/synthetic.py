"""Small synthetic datasets in the project's schema, for tests and benchmarks (no game needed)."""

from __future__ import annotations

import random
from typing import Any

from jvla.action_tokenizer import action_token_strings
from jvla.actions import ActionSpace
from jvla.config import Params

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 30),
    "purple": (150, 40, 200),
    "cyan": (30, 210, 210),
    "white": (240, 240, 240),
    "black": (15, 15, 15),
}


def colour_actions(space: ActionSpace) -> dict[str, dict]:
    """One distinct env action per colour of :data:`COLOURS` (buttons and camera)."""
    presses = {
        "red": ("attack",),
        "green": ("forward", "jump"),
        "blue": ("use",),
        "yellow": ("left",),
        "purple": ("back", "sneak"),
        "cyan": ("hotbar.3",),
        "white": ("right", "sprint"),
        "black": (),
    }
    cams = {
        "red": (0, 0),
        "green": (0, 0),
        "blue": (-5.2, 0),
        "yellow": (0, 3.7),
        "purple": (1.2, -1.2),
        "cyan": (0, 0),
        "white": (0, -7.2),
        "black": (2.6, 2.6),
    }
    out = {}
    for c in COLOURS:
        a = space.null_env_action()
        for b in presses[c]:
            a[b] = 1
        a["camera"] = list(cams[c])
        out[c] = a
    return out


def synthetic_samples(
    kind: str,
    n: int,
    params: Params,
    *,
    seed: int = 0,
    chunk: int = 1,
    history: int = 0,
    size: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Small schema samples for tests and benchmarks (no game needed).

    ``trajectory``: a frame filled with one colour of :data:`COLOURS`, the user turn
    ``"<instruction>\\nobservation: " + image``, the assistant turn the colour's action
    (:func:`colour_actions`) repeated ``chunk`` times; ``history`` earlier (frame, action) turns
    of random colours precede it (a fixed count, as the data stage pads histories).
    ``knowledge``: text QA, 1-3 turns. ``vision``: a captioned frame. ``grounding``: a point
    answer on a frame with a square.
    """
    from PIL import Image, ImageDraw

    from jvla.action_tokenizer import ActionTokenizer
    from jvla.data.schema import encode_image, normalise

    rng = random.Random(seed)
    w, h = size or (params.env.width, params.env.height)
    space = ActionSpace.from_config(params.action)
    tok = ActionTokenizer(space, {s: i for i, s in enumerate(action_token_strings(space))})
    acts = colour_actions(space)
    names = list(COLOURS)
    instructions = [
        "Mine the iron ore.",
        "Chop down the tree and collect the oak logs.",
        "Kill the zombie.",
        "Craft a crafting table from planks.",
        "Smelt the iron ore into an iron ingot.",
    ]

    def frame(colour: str) -> bytes:
        return encode_image(Image.new("RGB", (w, h), COLOURS[colour]))

    out = []
    for i in range(n):
        c = rng.choice(names)
        if kind == "trajectory":
            ins = rng.choice(instructions)
            turns, imgs = [], []
            for _ in range(history):
                hc = rng.choice(names)
                turns += [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": f"{ins}\nobservation: "}, {"type": "image"}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": tok.encode([acts[hc]])}]},
                ]
                imgs.append(frame(hc))
            turns += [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": f"{ins}\nobservation: "}, {"type": "image"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": tok.encode([acts[c]] * chunk)}]},
            ]
            imgs.append(frame(c))
            s = {"id": f"traj-{i}", "label": ["trajectory", c], "conversations": turns, "image_bytes": imgs}
        elif kind == "knowledge":
            turns = []
            for _ in range(rng.randint(1, 3)):
                k = rng.choice(names)
                turns += [
                    {"role": "user", "content": [{"type": "text", "text": f"What does a {k} block mean?"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": f"A {k} block means {k}."}]},
                ]
            s = {"id": f"qa-{i}", "label": ["knowledge"], "conversations": turns, "image_bytes": []}
        elif kind == "vision":
            s = {
                "id": f"cap-{i}",
                "label": ["vision", c],
                "image_bytes": [frame(c)],
                "conversations": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": f"The screen is {c}."}]},
                ],
            }
        elif kind == "grounding":
            im = Image.new("RGB", (w, h), COLOURS["black"])
            x, y = rng.uniform(10, 90), rng.uniform(10, 90)
            ImageDraw.Draw(im).rectangle(
                [x * w / 100 - 8, y * h / 100 - 8, x * w / 100 + 8, y * h / 100 + 8], fill=COLOURS[c]
            )
            s = {
                "id": f"pt-{i}",
                "label": ["grounding", c],
                "image_bytes": [encode_image(im)],
                "conversations": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": f"Point to the {c} square."}],
                    },
                    {
                        "role": "assistant",
                        "content": [{"type": "point", "point": [[x, y]], "label": f"{c} square"}],
                    },
                ],
            }
        else:
            raise ValueError(f"kind: expected trajectory, knowledge, vision or grounding, found {kind!r}")
        out.append(normalise(s))
    return out
