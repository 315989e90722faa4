"""Minecraft <-> Minetest names (minetest_game + mobs_redo + the jvla bridge mod).

Tasks, rewards and info counters use Minecraft's vocabulary; the Minetest backend translates on
the way in (setup, inventory) and back on the way out (event counters, inventory).

Minecraft distinguishes a block from the item it drops less than Minetest does: mining
``iron_ore`` yields the ``iron_ore`` item in Minecraft 1.16 but ``default:iron_lump`` in Minetest.
So there are two maps: :data:`BLOCKS` (placed nodes and ``mine_block`` events) and
:data:`ITEMS` (inventory, crafting, smelting, pickups), the latter falling back to the former.
"""

from __future__ import annotations

# Minecraft block name -> Minetest node name.
BLOCKS: dict[str, str] = {
    "stone": "default:stone",
    "cobblestone": "default:cobble",
    "dirt": "default:dirt",
    "grass_block": "default:dirt_with_grass",
    "sand": "default:sand",
    "gravel": "default:gravel",
    "oak_log": "default:tree",
    "oak_planks": "default:wood",
    "oak_leaves": "default:leaves",
    "iron_ore": "default:stone_with_iron",
    "coal_ore": "default:stone_with_coal",
    "gold_ore": "default:stone_with_gold",
    "diamond_ore": "default:stone_with_diamond",
    "obsidian": "default:obsidian",
    "furnace": "default:furnace",
    "glass": "default:glass",
    "ladder": "default:ladder_wood",
}

# Minecraft item name -> Minetest item name, where it differs from BLOCKS.
ITEMS: dict[str, str] = {
    "iron_ore": "default:iron_lump",  # what mining iron ore yields in Minetest, and what smelts
    "gold_ore": "default:gold_lump",
    "coal": "default:coal_lump",
    "diamond": "default:diamond",
    "stick": "default:stick",
    "iron_ingot": "default:steel_ingot",
    "gold_ingot": "default:gold_ingot",
    "wooden_pickaxe": "default:pick_wood",
    "stone_pickaxe": "default:pick_stone",
    "iron_pickaxe": "default:pick_steel",
    "diamond_pickaxe": "default:pick_diamond",
    "wooden_sword": "default:sword_wood",
    "stone_sword": "default:sword_stone",
    "iron_sword": "default:sword_steel",
    "diamond_sword": "default:sword_diamond",
    "beef": "mobs:meat_raw",
    "cooked_beef": "mobs:meat",
}


def block_to_mt(name: str) -> str | None:
    """Minecraft block -> Minetest node, or None if the game has no equivalent."""
    return BLOCKS.get(name)


def item_to_mt(name: str) -> str | None:
    """Minecraft item -> Minetest item, or None if the game has no equivalent."""
    return ITEMS.get(name) or BLOCKS.get(name)


_MT_TO_ITEM = {v: k for k, v in BLOCKS.items()} | {v: k for k, v in ITEMS.items()}
_MT_TO_BLOCK = {v: k for k, v in BLOCKS.items()}


def mt_to_item(name: str) -> str:
    """Minetest item -> Minecraft item name; unknown names are returned unchanged."""
    return _MT_TO_ITEM.get(name, name)


def mt_to_block(name: str) -> str:
    """Minetest node -> Minecraft block name; unknown names are returned unchanged."""
    return _MT_TO_BLOCK.get(name, name)
