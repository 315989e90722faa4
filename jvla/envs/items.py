"""Minecraft <-> Minetest names (minetest_game + mobs_redo + the jvla bridge mod).

Tasks, rewards and info counters use Minecraft's vocabulary; the Minetest backend translates on
the way in (setup, inventory) and back on the way out (event counters, inventory, snapshots).

Minecraft distinguishes a block from the item it drops less than Minetest does: mining
``iron_ore`` yields the ``iron_ore`` item in Minecraft 1.16 but ``default:iron_lump`` in Minetest.
So there are two maps: :data:`BLOCKS` (placed nodes and ``mine_block`` events) and
:data:`ITEMS` (inventory, crafting, smelting, pickups), the latter falling back to the former.
:data:`ENTITIES` maps mobs to the bridge mod's stand-ins.

A Minetest name with no Minecraft counterpart is passed through unchanged (``default:mese``), so
it can never be confused with a Minecraft name. Some Minecraft names map to an approximation;
:data:`APPROXIMATE` says which and why (listed in ``docs/deviations.md``).
"""

from __future__ import annotations

# Minecraft block name -> Minetest node name.
BLOCKS: dict[str, str] = {
    "stone": "default:stone",
    "cobblestone": "default:cobble",
    "mossy_cobblestone": "default:mossycobble",
    "stone_bricks": "default:stonebrick",
    "dirt": "default:dirt",
    "grass_block": "default:dirt_with_grass",
    "podzol": "default:dirt_with_coniferous_litter",
    "sand": "default:sand",
    "red_sand": "default:desert_sand",
    "sandstone": "default:sandstone",
    "gravel": "default:gravel",
    "clay": "default:clay",
    "snow_block": "default:snowblock",
    "snow": "default:snow",
    "ice": "default:ice",
    "oak_log": "default:tree",
    "oak_planks": "default:wood",
    "oak_leaves": "default:leaves",
    "oak_sapling": "default:sapling",
    "spruce_log": "default:pine_tree",
    "spruce_planks": "default:pine_wood",
    "spruce_leaves": "default:pine_needles",
    "jungle_log": "default:jungletree",
    "jungle_planks": "default:junglewood",
    "jungle_leaves": "default:jungleleaves",
    "acacia_log": "default:acacia_tree",
    "acacia_planks": "default:acacia_wood",
    "acacia_leaves": "default:acacia_leaves",
    "birch_log": "default:aspen_tree",
    "birch_planks": "default:aspen_wood",
    "birch_leaves": "default:aspen_leaves",
    "coal_ore": "default:stone_with_coal",
    "iron_ore": "default:stone_with_iron",
    "gold_ore": "default:stone_with_gold",
    "diamond_ore": "default:stone_with_diamond",
    "coal_block": "default:coalblock",
    "iron_block": "default:steelblock",
    "gold_block": "default:goldblock",
    "diamond_block": "default:diamondblock",
    "obsidian": "default:obsidian",
    "crafting_table": "jvla_bridge:crafting_table",
    "furnace": "default:furnace",
    "chest": "default:chest",
    "bookshelf": "default:bookshelf",
    "glass": "default:glass",
    "bricks": "default:brick",
    "ladder": "default:ladder_wood",
    "torch": "default:torch",
    "cactus": "default:cactus",
    "sugar_cane": "default:papyrus",
    "dead_bush": "default:dry_shrub",
    "white_wool": "wool:white",
    "black_wool": "wool:black",
    "tnt": "tnt:tnt",
    "water": "default:water_source",
    "lava": "default:lava_source",
    "air": "air",
}

# Minecraft item name -> Minetest item name, where it differs from BLOCKS.
ITEMS: dict[str, str] = {
    "iron_ore": "default:iron_lump",  # what mining iron ore yields in Minetest, and what smelts
    "gold_ore": "default:gold_lump",
    "coal": "default:coal_lump",
    "diamond": "default:diamond",
    "flint": "default:flint",
    "clay_ball": "default:clay_lump",
    "brick": "default:clay_brick",
    "stick": "default:stick",
    "paper": "default:paper",
    "book": "default:book",
    "apple": "default:apple",
    "iron_ingot": "default:steel_ingot",
    "gold_ingot": "default:gold_ingot",
    "wooden_pickaxe": "default:pick_wood",
    "stone_pickaxe": "default:pick_stone",
    "iron_pickaxe": "default:pick_steel",
    "diamond_pickaxe": "default:pick_diamond",
    "wooden_axe": "default:axe_wood",
    "stone_axe": "default:axe_stone",
    "iron_axe": "default:axe_steel",
    "diamond_axe": "default:axe_diamond",
    "wooden_shovel": "default:shovel_wood",
    "stone_shovel": "default:shovel_stone",
    "iron_shovel": "default:shovel_steel",
    "diamond_shovel": "default:shovel_diamond",
    "wooden_sword": "default:sword_wood",
    "stone_sword": "default:sword_stone",
    "iron_sword": "default:sword_steel",
    "diamond_sword": "default:sword_diamond",
    "wooden_hoe": "farming:hoe_wood",
    "stone_hoe": "farming:hoe_stone",
    "iron_hoe": "farming:hoe_steel",
    "diamond_hoe": "farming:hoe_diamond",
    "wheat": "farming:wheat",
    "wheat_seeds": "farming:seed_wheat",
    "bread": "farming:bread",
    "string": "farming:string",
    "leather": "mobs:leather",
    "beef": "mobs:meat_raw",
    "cooked_beef": "mobs:meat",
    "porkchop": "jvla_bridge:raw_porkchop",
    "cooked_porkchop": "jvla_bridge:cooked_porkchop",
    "chicken": "jvla_bridge:raw_chicken",
    "cooked_chicken": "jvla_bridge:cooked_chicken",
    "mutton": "jvla_bridge:raw_mutton",
    "cooked_mutton": "jvla_bridge:cooked_mutton",
    "bucket": "bucket:bucket_empty",
    "water_bucket": "bucket:bucket_water",
    "lava_bucket": "bucket:bucket_lava",
    "glass_bottle": "vessels:glass_bottle",
    "flint_and_steel": "fire:flint_and_steel",
    "white_dye": "dye:white",
    "black_dye": "dye:black",
    "red_dye": "dye:red",
    "yellow_dye": "dye:yellow",
}

# Minecraft entity -> the bridge mod's mobs_redo stand-in.
ENTITIES: dict[str, str] = {
    "sheep": "jvla_bridge:sheep",
    "cow": "jvla_bridge:cow",
    "pig": "jvla_bridge:pig",
    "chicken": "jvla_bridge:chicken",
    "zombie": "jvla_bridge:zombie",
    "skeleton": "jvla_bridge:skeleton",
    "spider": "jvla_bridge:spider",
    "item": "__builtin:item",
}

# Extra Minetest names that mean the same Minecraft block (variants of one node).
_MT_VARIANTS: dict[str, str] = {
    "default:furnace_active": "furnace",
    "default:torch_wall": "torch",
    "default:torch_ceiling": "torch",
    "default:dirt_with_grass_footsteps": "grass_block",
    "default:river_water_source": "water",
    "default:water_flowing": "water",
    "default:lava_flowing": "lava",
}

APPROXIMATE: dict[str, str] = {
    "crafting_table": "registered by the bridge mod (minetest_game has none); same 2x2 planks recipe",
    "birch_log": "aspen is minetest_game's only white-barked tree",
    "porkchop": "raw/cooked pork, chicken and mutton are bridge-mod items (mobs_redo ships only beef)",
    "zombie": "bridge-mod mobs drawn with minetest_game textures; skeletons fight in melee (no bows)",
    "iron_ore": "as an item it is Minetest's iron lump (what mining the ore yields and what smelts)",
    "gold_ore": "as an item it is Minetest's gold lump",
}


def block_to_mt(name: str) -> str | None:
    """Minecraft block -> Minetest node, or None if the game has no equivalent."""
    return BLOCKS.get(name)


def item_to_mt(name: str) -> str | None:
    """Minecraft item -> Minetest item, or None if the game has no equivalent."""
    return ITEMS.get(name) or BLOCKS.get(name)


def entity_to_mt(name: str) -> str | None:
    """Minecraft entity -> the bridge mod's entity, or None if there is no stand-in."""
    return ENTITIES.get(name)


_MT_TO_ITEM = {v: k for k, v in BLOCKS.items()} | {v: k for k, v in ITEMS.items()} | _MT_VARIANTS
_MT_TO_BLOCK = {v: k for k, v in BLOCKS.items()} | _MT_VARIANTS
_MT_TO_ENTITY = {v: k for k, v in ENTITIES.items()}


def mt_to_item(name: str) -> str:
    """Minetest item -> Minecraft item name; unknown names are returned unchanged."""
    return _MT_TO_ITEM.get(name, name)


def mt_to_block(name: str) -> str:
    """Minetest node -> Minecraft block name; unknown names are returned unchanged."""
    return _MT_TO_BLOCK.get(name, name)


def mt_to_entity(name: str) -> str:
    """Minetest entity -> Minecraft entity name; unknown names are returned unchanged."""
    return _MT_TO_ENTITY.get(name, name)
