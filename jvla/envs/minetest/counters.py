"""Bridge events and state snapshots -> the contract's ``info`` (Minecraft names), without a game.

The bridge reports what happened in one step as events in Minetest names (``jvla_bridge``'s
``events.jsonl``); :func:`count_events` adds them to cumulative per-episode counters keyed by
Minecraft names, and :func:`info_from_state` builds the ``info`` dict of :mod:`jvla.envs.base`
from the counters and the latest state snapshot. :func:`minecraft_names` gives the Minecraft
names of a snapshot's inventory, entities and nodes for the privileged state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from jvla.envs import items
from jvla.envs.base import COUNTER_KEYS, Info


def new_counters() -> dict[str, Counter]:
    """Empty per-episode counters, one :class:`~collections.Counter` per key of
    :data:`~jvla.envs.base.COUNTER_KEYS`."""
    return {k: Counter() for k in COUNTER_KEYS}


def count_events(counters: Mapping[str, Counter], events: Iterable[Mapping[str, Any]]) -> None:
    """Add the bridge ``events`` of one step to ``counters`` (in place), in Minecraft names.

    ``mine_block`` counts one per event; ``craft_item``, ``smelt_item`` and ``pickup`` count the
    event's ``count`` (items); ``kill_entity`` counts only kills by the agent.
    """
    for ev in events:
        kind = ev.get("event")
        n = int(ev.get("count", 1))
        if kind == "mine_block":
            counters["mine_block"][items.mt_to_block(ev["item"])] += 1
        elif kind == "craft_item":
            counters["craft_item"][items.mt_to_item(ev["item"])] += n
        elif kind == "smelt_item":
            # NOTE(code MineStudio RewardsCallback): Minecraft's "crafted" statistic counts
            # items taken out of a furnace, and the official smelt tasks reward craft_item.
            name = items.mt_to_item(ev["item"])
            counters["smelt_item"][name] += n
            counters["craft_item"][name] += n
        elif kind == "kill_entity" and ev.get("by_agent"):
            counters["kill_entity"][items.mt_to_entity(ev["entity"])] += 1
        elif kind == "pickup":
            counters["pickup"][items.mt_to_item(ev["item"])] += n


def info_from_state(
    state: Mapping[str, Any] | None,
    counters: Mapping[str, Counter] | None,
    gui_open: bool,
    gui_kind: str,
) -> Info:
    """The contract's ``info``: the event counters (none before the first reset), ``inventory``
    (Minecraft item -> count over the 36 main slots), ``health`` (0-20), ``is_gui_open``, and the
    extras ``pos`` [x, y, z] (nodes, feet) and ``gui`` (the open GUI's kind, "" when closed)."""
    st = state or {}
    inv: Counter = Counter()
    for it, n in st.get("inventory", {}).get("main", []):
        if it:
            inv[items.mt_to_item(it)] += int(n)
    info: Info = {k: dict(v) for k, v in counters.items()} if counters is not None else {}
    info.update(
        inventory=dict(inv),
        health=float(st.get("hp", 20.0)),
        is_gui_open=bool(gui_open),
        pos=list(st.get("pos", [0.0, 0.0, 0.0])),
        gui=gui_kind if gui_open else "",
    )
    return info


def minecraft_names(state: Mapping[str, Any]) -> dict[str, Any]:
    """The Minecraft-named parts of the privileged state of one bridge snapshot: ``inventory_mc``
    (``{list: [[item, count], ...]}``, "" for an empty slot), and ``entities`` / ``nodes`` with an
    ``mc_name`` added to each (unknown Minetest names pass through unchanged)."""
    return {
        "inventory_mc": {
            k: [[items.mt_to_item(it) if it else "", n] for it, n in v]
            for k, v in state.get("inventory", {}).items()
        },
        "entities": [{**e, "mc_name": items.mt_to_entity(e["name"])} for e in state.get("entities", [])],
        "nodes": [{**n, "mc_name": items.mt_to_block(n["name"])} for n in state.get("nodes", [])],
    }
