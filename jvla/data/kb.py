"""Structured game knowledge (the source of Stage I QA), from either game's data.

:class:`KB` is a source-neutral set of facts with human-readable names. Two adapters fill it:

* :func:`from_minetest` reads the registry the Minetest bridge dumps
  (``MinetestEnv.dump_registry()``: ``items``, ``craft_recipes``, ``cooking_recipes``, ``fuels``,
  ``entities``, ``biomes``) - the embedded default;
* :func:`from_minecraft_data` reads Minecraft 1.16.5 from the ``minecraft-data`` package
  (imported lazily; paper scale). It has no smelting or fuel tables, so those facts are absent.

# NOTE(paper §4.1): the paper's QA came from wiki text through GPT-3.5; ours is templated from the
# games' own registries, so categories without registry data (potions, architecture) are absent.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    output: str
    count: int
    ingredients: tuple[tuple[str, int], ...]  # (name, count), sorted by name
    grid: tuple[tuple[str, ...], ...] | None = None  # shaped: rows of names ("" = empty)


@dataclass(frozen=True)
class Block:
    name: str
    tool: str | None  # "pickaxe" | "axe" | "shovel" | ... | None (by hand)
    min_tool: str | None  # the weakest tool that can mine it, when a tier is needed
    drops: tuple[str, ...]


@dataclass(frozen=True)
class Mob:
    name: str
    hostile: bool
    hp: float | None
    damage: float | None
    drops: tuple[str, ...]


@dataclass(frozen=True)
class Crop:
    name: str
    seed: str | None
    stages: int
    harvest: tuple[str, ...]


@dataclass(frozen=True)
class Biome:
    name: str
    top: str | None = None
    climate: str | None = None  # hot | temperate | cold
    humidity: str | None = None  # wet | dry | moderate
    precipitation: str | None = None  # rain | snow | none
    category: str | None = None


@dataclass(frozen=True)
class Enchantment:
    name: str
    max_level: int
    applies_to: str
    curse: bool


@dataclass
class KB:
    source: str
    recipes: list[Recipe] = field(default_factory=list)
    cooking: list[tuple[str, str, float]] = field(default_factory=list)  # (input, output, seconds)
    fuels: list[tuple[str, float]] = field(default_factory=list)  # (item, burn seconds)
    blocks: list[Block] = field(default_factory=list)
    mobs: list[Mob] = field(default_factory=list)
    foods: list[tuple[str, float | None]] = field(default_factory=list)  # (item, food points)
    crops: list[Crop] = field(default_factory=list)
    biomes: list[Biome] = field(default_factory=list)
    enchantments: list[Enchantment] = field(default_factory=list)
    plain_items: list[str] = field(default_factory=list)  # neither food nor fuel (negatives)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items() if isinstance(v, list)}


# ------------------------------------------------------------------------------- Minetest
TOOL_GROUPS = {"cracky": "pickaxe", "choppy": "axe", "crumbly": "shovel"}
GROUP_NAMES = {
    "wood": "Wooden Planks",
    "tree": "Tree",
    "stick": "Stick",
    "stone": "Cobblestone",
    "wool": "Wool",
    "sand": "Sand",
    "leaves": "Leaves",
    "coal": "Coal Lump",
    "sapling": "Sapling",
}


def _desc(items: Mapping[str, Any], name: str) -> str:
    if name.startswith("group:"):
        g = name[6:].split(",")[0]
        return f"any {GROUP_NAMES.get(g, g.replace('_', ' ').title())}"
    d = (items.get(name) or {}).get("description") or ""
    d = re.sub(r"\x1b\([^)]*\)|\x1b[EF]", "", d).split("\n")[0].strip()
    return d or name.split(":")[-1].replace("_", " ").title()


# Mods whose many variants of one block would swamp the facts (stairs, slabs).
SKIP_MODS = ("stairs:",)
# minetest_game's recipe groups named food_* that are not edible (edibility is a Lua function,
# absent from the registry dump).
NOT_FOOD = {"food_wheat", "food_flour", "food_sugar", "food_cotton", "food_vegan"}


def _listed(items: Mapping[str, Any], name: str) -> bool:
    d = items.get(name) or {}
    return (
        bool(d.get("description"))
        and not (d.get("groups") or {}).get("not_in_creative_inventory")
        and not name.startswith(SKIP_MODS)
    )


def _stack(s: str) -> tuple[str, int]:
    parts = s.split()
    return parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1


def _times(cap: Mapping[str, Any]) -> dict[int, float]:
    t = cap.get("times") or {}
    if isinstance(t, list):
        return {i + 1: float(v) for i, v in enumerate(t) if v is not None}
    return {int(k): float(v) for k, v in t.items()}


def _drops(items: Mapping[str, Any], name: str, drop: Any) -> tuple[str, ...]:
    if drop is None:
        return (_desc(items, name),)
    if isinstance(drop, str):
        return (_desc(items, _stack(drop)[0]),) if drop else ()
    out = []
    for entry in drop.get("items") or []:
        for it in entry.get("items") or []:
            n = _desc(items, _stack(it)[0])
            if n not in out:
                out.append(n)
    return tuple(out)


def from_minetest(registry: Mapping[str, Any]) -> KB:
    """The KB of a Minetest registry dump (see the module docstring)."""
    items = registry.get("items") or {}
    kb = KB("minetest")
    by_out: dict[str, list[Recipe]] = {}
    for r in registry.get("craft_recipes") or []:
        out, n = _stack(r.get("output") or "")
        grid_names = [x or "" for x in (r.get("recipe") or [])]
        if (
            not out
            or not any(grid_names)
            or not _listed(items, out)
            or any(x.startswith(SKIP_MODS) for x in grid_names)
        ):
            continue
        counts = Counter(_desc(items, x) for x in grid_names if x)
        grid = None
        w = int(r.get("width") or 0)
        if r.get("type") == "shaped" and w > 0:
            grid = tuple(
                tuple(_desc(items, x) if x else "" for x in grid_names[i : i + w])
                for i in range(0, len(grid_names), w)
            )
        by_out.setdefault(out, []).append(Recipe(_desc(items, out), n, tuple(sorted(counts.items())), grid))
    # One recipe per output (the first in a stable order), so a fact has one answer.
    kb.recipes = [
        sorted(v, key=lambda r: (len(r.ingredients), r.ingredients))[0] for _, v in sorted(by_out.items())
    ]
    kb.cooking = sorted(
        {
            (_desc(items, c["input"]), _desc(items, _stack(c["output"])[0]), float(c.get("time") or 0))
            for c in registry.get("cooking_recipes") or []
            if not c["input"].startswith("group:")
        }
    )
    kb.fuels = sorted(
        {
            (_desc(items, f["item"]), float(f["burntime"]))
            for f in registry.get("fuels") or []
            if _listed(items, f["item"])
        }
    )

    tools: dict[str, list[tuple[tuple, str, Mapping]]] = {}
    for name, d in sorted(items.items()):
        caps = ((d.get("tool_capabilities") or {}).get("groupcaps")) or {}
        for g, kind in TOOL_GROUPS.items():
            if g in caps and name.split(":")[-1].split("_")[0] in ("pick", "axe", "shovel"):
                t = _times(caps[g])
                power = (int(caps[g].get("maxlevel") or 0), len(t), -sum(t.values()))
                tools.setdefault(kind, []).append((power, name, caps[g]))
    for kind in tools:
        tools[kind].sort()
    for name, d in sorted(items.items()):
        if d.get("type") != "node" or not _listed(items, name):
            continue
        groups = d.get("groups") or {}
        g = next((g for g in TOOL_GROUPS if groups.get(g)), None)
        if g is None:
            continue
        rating, level = int(groups[g]), int(groups.get("level") or 0)
        able = [
            n
            for _, n, cap in tools.get(TOOL_GROUPS[g], [])
            if rating in _times(cap) and int(cap.get("maxlevel") or 0) >= level
        ]
        min_tool = _desc(items, able[0]) if able else None
        kb.blocks.append(
            Block(_desc(items, name), TOOL_GROUPS[g], min_tool, _drops(items, name, d.get("drop")))
        )

    for name, m in sorted((registry.get("entities") or {}).items()):
        label = (m.get("mc_name") or name.split(":")[-1]).replace("_", " ")
        hostile = m.get("type") == "monster"
        kb.mobs.append(
            Mob(
                label,
                hostile,
                m.get("hp_max"),
                m.get("damage") if hostile else None,
                tuple(_desc(items, x) for x in m.get("drops") or []),
            )
        )

    fuel_names = {f for f, _ in kb.fuels}
    for name, d in sorted(items.items()):
        if not _listed(items, name):
            continue
        groups = d.get("groups") or {}
        if any(k.startswith("food_") and k not in NOT_FOOD for k in groups) or groups.get("food"):
            kb.foods.append((_desc(items, name), None))
        elif d.get("type") == "craft" and _desc(items, name) not in fuel_names:
            kb.plain_items.append(_desc(items, name))

    stages: dict[tuple[str, str], int] = {}
    for name, d in items.items():
        m = re.match(r"^([\w]+):([a-z]+)_(\d+)$", name)
        if m and (d.get("groups") or {}).get("plant"):
            key = (m.group(1), m.group(2))
            stages[key] = max(stages.get(key, 0), int(m.group(3)))
    for (mod, crop), n in sorted(stages.items()):
        seed = f"{mod}:seed_{crop}"
        last = items.get(f"{mod}:{crop}_{n}") or {}
        kb.crops.append(
            Crop(
                _desc(items, f"{mod}:{crop}") if f"{mod}:{crop}" in items else crop.title(),
                _desc(items, seed) if seed in items else None,
                n,
                _drops(items, f"{mod}:{crop}_{n}", last.get("drop")),
            )
        )

    for b in sorted(registry.get("biomes") or [], key=lambda b: b["name"]):
        name = b["name"]
        if any(s in name for s in ("_under", "_ocean", "_shore", "_dunes")):
            continue
        heat, hum = b.get("heat_point"), b.get("humidity_point")
        kb.biomes.append(
            Biome(
                name.replace("_", " "),
                _desc(items, b["node_top"]) if b.get("node_top") else None,
                None if heat is None else ("hot" if heat >= 60 else "cold" if heat <= 35 else "temperate"),
                None if hum is None else ("wet" if hum >= 65 else "dry" if hum <= 35 else "moderate"),
            )
        )
    return kb


# ------------------------------------------------------------------------- minecraft-data
MC_TIERS = ("wooden", "golden", "stone", "iron", "diamond", "netherite")
MC_MATERIAL_TOOL = {
    "rock": "pickaxe",
    "wood": "axe",
    "dirt": "shovel",
    "leaves": "shears",
    "web": "sword",
    "wool": "shears",
    "melon": "axe",
}


def from_minecraft_data(version: str = "1.16.5") -> KB:
    """The KB of Minecraft ``version`` from the ``minecraft-data`` package (lazy import)."""
    try:
        import minecraft_data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "data.knowledge.source=minecraft_data needs the `minecraft-data` package: "
            "pip install -c constraints.txt minecraft-data"
        ) from e
    mc = minecraft_data(version)
    by_id = {i["id"]: i for i in mc.items_list}
    name = lambda i: by_id[i]["displayName"] if i in by_id else str(i)  # noqa: E731
    kb = KB(f"minecraft_data-{version}")
    for _, variants in sorted(mc.recipes.items(), key=lambda kv: int(kv[0])):
        r = variants[0]
        if "inShape" in r:
            rows = [list(row) for row in r["inShape"]]
            cells = [x for row in rows for x in row if x is not None]
            grid = tuple(tuple(name(x) if x is not None else "" for x in row) for row in rows)
        else:
            cells, grid = list(r.get("ingredients") or []), None
        if not cells:
            continue
        counts = Counter(name(x) for x in cells)
        kb.recipes.append(
            Recipe(
                name(r["result"]["id"]), int(r["result"].get("count", 1)), tuple(sorted(counts.items())), grid
            )
        )
    tool_names = {
        i["id"]: i["name"] for i in mc.items_list if i["name"].endswith(("_pickaxe", "_axe", "_shovel"))
    }
    loot = {b["block"]: b for b in (mc.blockLoot_list or [])}
    for b in mc.blocks_list:
        if not b.get("diggable") or b.get("hardness") in (None, 0):
            continue
        ht = [tool_names[int(t)] for t in (b.get("harvestTools") or {}) if int(t) in tool_names]
        ht.sort(key=lambda n: MC_TIERS.index(n.split("_")[0]) if n.split("_")[0] in MC_TIERS else 99)
        min_tool = ht[0].replace("_", " ").title() if ht else None
        drops = tuple(
            by_id[mc.items_name[d["item"]]["id"]]["displayName"]
            for d in (loot.get(b["name"]) or {}).get("drops", [])
            if d["item"] in mc.items_name
        )
        kb.blocks.append(
            Block(b["displayName"], MC_MATERIAL_TOOL.get(b.get("material") or ""), min_tool, drops)
        )
    for e in mc.entities_list:
        cat = e.get("category") or ""
        if cat not in ("Hostile mobs", "Passive mobs"):
            continue
        loot_e = mc.entityLoot.get(e["name"]) or []
        loot_e = loot_e.get("drops", []) if isinstance(loot_e, dict) else loot_e
        drops = tuple(
            mc.items_name[d["item"]]["displayName"]
            if d["item"] in mc.items_name
            else d["item"].replace("_", " ")
            for d in loot_e
            if d.get("dropChance", 0) >= 0.5
        )
        kb.mobs.append(Mob(e["displayName"], cat == "Hostile mobs", None, None, drops))
    kb.foods = [(f["displayName"], float(f["foodPoints"])) for f in mc.foods_list]
    food_names = {f for f, _ in kb.foods}
    kb.plain_items = [i["displayName"] for i in mc.items_list if i["displayName"] not in food_names][:400]
    for b in mc.blocks_list:
        age = next((s for s in b.get("states") or [] if s["name"] == "age"), None)
        if age and b.get("material") == "plant":
            kb.crops.append(Crop(b["displayName"], None, int(age["num_values"]), ()))
    for b in mc.biomes_list:
        if b.get("dimension") != "overworld":
            continue
        t = b.get("temperature", 0.5)
        kb.biomes.append(
            Biome(
                b["displayName"],
                None,
                "hot" if t >= 1.0 else "cold" if t <= 0.2 else "temperate",
                None,
                b.get("precipitation"),
                b.get("category"),
            )
        )
    kb.enchantments = [
        Enchantment(
            e["displayName"], int(e["maxLevel"]), e["category"].replace("_", " "), bool(e.get("curse"))
        )
        for e in mc.enchantments_list
    ]
    return kb
