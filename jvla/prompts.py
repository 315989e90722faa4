"""The policy prompt layout, shared by the trajectory datasets and the agent (one source of truth).

# NOTE(code agent_wrapper.py / processor_wrapper.py): the official layout, every text item ending
# in "\n". With ``H`` history frames a decision at step ``t`` is::

    user:      "<instruction>\nobservation: \n"  <image t-H>      (the oldest turn carries the instruction)
    assistant: "<actions chosen at t-H>\n"
    user:      "\nobservation: \n"  <image t-H+1>
    assistant: "<actions chosen at t-H+1>\n"
    ...
    user:      "\nobservation: \n"  <image t>                     (H = 0: "<instruction>\nobservation: \n" <image t>)
    assistant: <actions to learn / to generate>

At episode start the history is padded with copies of the first frame paired with the null
action (official agent). A history assistant turn holds the raw text the model produced at that
decision (a whole chunk of actions when chunking), so training data must hold the same.
The target assistant turn holds only the action tokens (no trailing newline): generation stops
at ``<|im_end|>`` right after the last ``END`` token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

OBSERVATION = "observation: "


def user_text(instruction: str | None) -> str:
    """Text of a user turn: with the instruction for the oldest turn, without otherwise."""
    if instruction is None:
        return f"\n{OBSERVATION}\n"
    return f"{instruction}\n{OBSERVATION}\n"


def decision_messages(instruction: str, past_actions: Sequence[str]) -> list[dict[str, Any]]:
    """Chat messages for one decision, without the answer.

    Args:
        instruction: the task instruction.
        past_actions: action-token text of the ``H`` previous decisions, oldest first (``H = 0``
            for no history).

    Returns:
        ``2H + 1`` messages; image items are ``{"type": "image"}`` placeholders, ``H + 1`` of
        them, in frame order (oldest first). Pair them with the frames ``t-H .. t``.
    """
    msgs: list[dict[str, Any]] = []
    for i in range(len(past_actions) + 1):
        text = user_text(instruction if i == 0 else None)
        msgs.append({"role": "user", "content": [{"type": "text", "text": text}, {"type": "image"}]})
        if i < len(past_actions):
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": past_actions[i] + "\n"}]})
    return msgs


def training_messages(instruction: str, past_actions: Sequence[str], target: str) -> list[dict[str, Any]]:
    """:func:`decision_messages` plus the target assistant turn (the action tokens to learn)."""
    return [
        *decision_messages(instruction, past_actions),
        {"role": "assistant", "content": [{"type": "text", "text": target}]},
    ]


def padded_history(frames: Sequence[Any], actions: Sequence[str], t: int, history: int, null_action: str):
    """The ``history`` (frame, action-text) pairs before step ``t``, padded at episode start.

    Args:
        frames: every frame of the episode so far (``frames[i]`` observed at decision ``i``).
        actions: the action text chosen at each decision (``len >= t``).
        t: the current decision index.
        history: ``H``.
        null_action: the null action's token text (the padding action).

    Returns:
        ``(past_frames, past_actions)``, each of length ``H``, oldest first; positions before the
        episode start hold ``frames[0]`` and ``null_action`` (official agent).
    """
    past_frames, past_actions = [], []
    for i in range(t - history, t):
        if i < 0:
            past_frames.append(frames[0])
            past_actions.append(null_action)
        else:
            past_frames.append(frames[i])
            past_actions.append(actions[i])
    return past_frames, past_actions
