"""Perception vs control: teacher-forced action-token accuracy on held-out expert frames.

For each held-out sample (a whole held-out expert episode's steps, the trajectory datasets'
``eval`` split) the model sees the prompt and the expert's action tokens (teacher forcing), and
the argmax prediction at every action-token position is compared with the expert's token. The
positions are grouped by what the expert's token means:

``buttons``  a press token (groups 0-9: movement, attack, use, jump, hotbar, inventory ...) or the
             first camera token where the expert pressed nothing (the "no button" decision)
``pitch``    the pitch bin
``yaw``      the yaw bin
``yaw_dir``  the yaw bin's direction (left / none / right, relative to the null bin): the experts
             turn toward their target in proportion to its bearing (``envs/minetest/experts``),
             so this is the accuracy of the predicted turn direction against the target's
             bearing in the frame, the perception half of closed-loop aiming
``turns``    ``yaw_dir`` on the positions where the expert turns (the target is off-centre)

Accuracies are fractions in [0, 1] with their position counts ``n_<group>``. Chance for
``yaw_dir`` on ``turns`` positions is about 0.5 (left or right). Cheap: one forward pass per
batch, no game.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GROUPS = ("buttons", "pitch", "yaw", "yaw_dir", "turns")


def token_groups(atok: Any) -> dict[str, Any]:
    """Id sets of the action tokenizer: press tokens, pitch bins and yaw bins (id -> bin)."""
    from jvla.action_tokenizer import N_PRESS_GROUPS, PITCH_GROUP, YAW_GROUP

    press = {i for g in range(PITCH_GROUP) for i in atok.group_ids(g) if i is not None}
    pitch = {i: b for b, i in enumerate(atok.group_ids(PITCH_GROUP)) if i is not None}
    yaw = {i: b for b, i in enumerate(atok.group_ids(YAW_GROUP)) if i is not None}
    assert N_PRESS_GROUPS <= PITCH_GROUP
    return {"press": press, "pitch": pitch, "yaw": yaw, "null_bin": atok.space.quantizer.null_bin}


def score_positions(
    pred: Sequence[int], label: Sequence[int], prev: Sequence[int], ids: dict
) -> dict[str, list]:
    """Per-group hits of one sample.

    Args:
        pred: argmax ids predicted for each label position (already shifted: ``pred[t]`` is the
            prediction of ``label[t]``).
        label: the expert's ids (only action positions are scored).
        prev: the id before each label position (to find the "no button" decision: the first
            camera token right after BEGIN).
        ids: :func:`token_groups`.

    Returns:
        ``{group: [hit, ...]}`` booleans per scored position.
    """
    out: dict[str, list] = {g: [] for g in GROUPS}
    null = ids["null_bin"]
    for p, y, before in zip(pred, label, prev, strict=True):
        if y in ids["press"] or (y in ids["pitch"] and before not in ids["press"] and before not in ids["yaw"]
                                 and before not in ids["pitch"]):  # fmt: skip
            out["buttons"].append(p == y)
        if y in ids["pitch"]:
            out["pitch"].append(p == y)
        elif y in ids["yaw"]:
            out["yaw"].append(p == y)
            want = (ids["yaw"][y] > null) - (ids["yaw"][y] < null)
            got = (ids["yaw"][p] > null) - (ids["yaw"][p] < null) if p in ids["yaw"] else None
            out["yaw_dir"].append(got == want)
            if want:
                out["turns"].append(got == want)
    return out


def action_accuracy(
    model_dir: str | Path, params: Any, dataset: Any, limit: int = 256, batch_size: int = 8, by: str = "task"
) -> dict[str, dict[str, float]]:
    """Teacher-forced accuracy per group (:data:`GROUPS`) of a model on ``dataset`` samples.

    Args:
        model_dir: a model folder (:func:`jvla.models.load`).
        dataset: rows of the sample schema (a trajectory or task dataset's ``eval`` split).
        limit: at most this many samples, drawn at random (seed 0) so that every task of the
            split is represented.
        by: a key of the rows' ``source`` JSON to break the accuracies down by (e.g. ``task``), or
            "" for the total only.

    Returns:
        ``{"all": {group: acc, "n_<group>": n}, <by value>: {...}}``.
    """
    import json

    import torch

    from jvla import models
    from jvla.action_tokenizer import ActionTokenizer
    from jvla.actions import ActionSpace
    from jvla.training.collate import ChatCollator

    space = ActionSpace.from_config(params.action)
    model, processor = models.load(model_dir, params, action_space=space)
    model.eval()
    atok = ActionTokenizer.from_tokenizer(processor.tokenizer, space, params.action.encode_inventory)
    ids = token_groups(atok)
    collate = ChatCollator(processor, max_length=None)
    rows = dataset.shuffle(seed=0).select(range(min(limit, len(dataset))))
    hits: dict[str, dict[str, list]] = {}
    for start in range(0, len(rows), batch_size):
        batch = [rows[i] for i in range(start, min(start + batch_size, len(rows)))]
        enc = collate(batch)
        with torch.no_grad():
            logits = model(**{k: v for k, v in enc.items() if k != "labels"}).logits
        pred = logits[:, :-1].argmax(-1)
        labels, inputs = enc["labels"][:, 1:], enc["input_ids"]
        for b, row in enumerate(batch):
            mask = labels[b] != -100
            pos = mask.nonzero().flatten()
            res = score_positions(
                pred[b, pos].tolist(), labels[b, pos].tolist(), inputs[b, pos].tolist(), ids
            )
            keys = ["all"]
            if by:
                src = json.loads(row.get("source") or "{}")
                keys.append(str(src.get(by, row.get("id", "").rsplit("-", 2)[0])))
            for k in keys:
                acc = hits.setdefault(k, {g: [] for g in GROUPS})
                for g in GROUPS:
                    acc[g] += res[g]
    return {
        k: {
            **{g: (sum(v[g]) / len(v[g]) if v[g] else None) for g in GROUPS},
            **{f"n_{g}": len(v[g]) for g in GROUPS},
        }
        for k, v in hits.items()
    }
