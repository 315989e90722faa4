-- Minecraft-like content and GUI for jvla_bridge (loaded by init.lua).
--
-- * 9-slot hotbar and a 36-slot main inventory (9 x 4), as in Minecraft.
-- * The inventory screen (E) has a 2x2 crafting grid, as in Minecraft; a crafting table node
--   (recipe: 4 planks in 2x2) opens a 3x3 grid. Both use the player's "craft" list, resized.
-- * Formspecs of inventory, crafting table and furnace share one layout (9 columns, hotbar row
--   at the bottom), documented in jvla/envs/minetest/gui.py, which computes slot pixels from them.
-- * Furnace output taken by the player emits smelt_item and craft_item (Minecraft's "crafted"
--   statistic counts items taken out of a furnace).
-- * Raw/cooked porkchop, chicken and mutton for the pig, chicken and sheep stand-ins.
-- * Minecraft-style automatic pickup of dropped items, and sprint (aux1 = left Ctrl, x1.3 speed).

local S = minetest.get_translator("jvla_bridge")

-------------------------------------------------------------------------------- formspecs
-- Legacy (non real_coordinates) formspecs; coordinates are in inventory slots.
local PREPEND = "bgcolor[#080808BB;true]listcolors[#00000069;#5A5A5A;#141318;#30434C;#FFF]" ..
	"background9[5,5;1,1;gui_formbg.png;true;10]"
local MAIN = "list[current_player;main;0,4.2;9,3;9]" ..
	"list[current_player;main;0,7.4;9,1;]"
local SIZE = "size[9,8.4]"

jvla.formspecs = {}
jvla.formspecs.inventory = SIZE .. PREPEND ..
	"label[4,0;" .. minetest.formspec_escape("Crafting") .. "]" ..
	"list[current_player;craft;4,0.5;2,2;]" ..
	"image[6,1;1,1;sfinv_crafting_arrow.png]" ..
	"list[current_player;craftpreview;7,1;1,1;]" .. MAIN ..
	"listring[current_player;main]listring[current_player;craft]"
jvla.formspecs.crafting_table = SIZE .. PREPEND ..
	"label[1.5,0;" .. minetest.formspec_escape("Crafting Table") .. "]" ..
	"list[current_player;craft;1.5,0.5;3,3;]" ..
	"image[4.75,1.5;1,1;sfinv_crafting_arrow.png]" ..
	"list[current_player;craftpreview;6,1.5;1,1;]" .. MAIN ..
	"listring[current_player;main]listring[current_player;craft]"

local function furnace_fs(fuel_percent, item_percent)
	local fire = "default_furnace_fire_bg.png"
	local arrow = "gui_furnace_arrow_bg.png^[transformR270"
	if fuel_percent then
		fire = fire .. "^[lowpart:" .. fuel_percent .. ":default_furnace_fire_fg.png"
		arrow = "gui_furnace_arrow_bg.png^[lowpart:" .. item_percent ..
			":gui_furnace_arrow_fg.png^[transformR270"
	end
	return SIZE .. PREPEND ..
		"label[2.75,0;" .. minetest.formspec_escape("Furnace") .. "]" ..
		"list[context;src;2.75,0.5;1,1;]" ..
		"image[2.75,1.5;1,1;" .. fire .. "]" ..
		"list[context;fuel;2.75,2.5;1,1;]" ..
		"image[4,1.5;1,1;" .. arrow .. "]" ..
		"list[context;dst;5.5,1.5;1,1;]" .. MAIN ..
		"listring[context;dst]listring[current_player;main]" ..
		"listring[context;src]listring[current_player;main]" ..
		"listring[context;fuel]listring[current_player;main]"
end
jvla.formspecs.furnace = furnace_fs()
default.get_furnace_active_formspec = function(f, i) return furnace_fs(f, i) end
default.get_furnace_inactive_formspec = function() return furnace_fs() end

-------------------------------------------------------------------------------- player setup
if sfinv then sfinv.enabled = false end

local function return_craft_items(player)
	-- Minecraft returns what is left in a crafting grid to the inventory when the screen closes.
	local inv = player:get_inventory()
	for i, st in ipairs(inv:get_list("craft") or {}) do
		if not st:is_empty() then
			local left = inv:add_item("main", st)
			if not left:is_empty() then
				minetest.add_item(vector.add(player:get_pos(), {x = 0, y = 1, z = 0}), left)
			end
			-- one stack at a time: set_list() would reset the grid's width (shaped recipes need it)
			inv:set_stack("craft", i, "")
		end
	end
end
jvla.return_craft_items = return_craft_items

function jvla.set_craft_grid(player, n)
	-- n = 2 (inventory) or 3 (crafting table)
	local inv = player:get_inventory()
	if inv:get_width("craft") == n and inv:get_size("craft") == n * n then return end
	return_craft_items(player)
	inv:set_size("craft", n * n)
	inv:set_width("craft", n)
end

function jvla.setup_player(player)
	local inv = player:get_inventory()
	if inv:get_size("main") ~= 36 then inv:set_size("main", 36) end
	jvla.set_craft_grid(player, 2)
	player:hud_set_hotbar_itemcount(9)
	player:hud_set_hotbar_image("")
	player:hud_set_hotbar_selected_image("")
	player:set_inventory_formspec(jvla.formspecs.inventory)
	player:set_formspec_prepend(PREPEND)
	player:hud_set_flags({minimap = false, minimap_radar = false, basic_debug = false, chat = false})
	local privs = minetest.get_player_privs(player:get_player_name())
	privs.fast = nil
	privs.fly = nil
	privs.noclip = nil
	minetest.set_player_privs(player:get_player_name(), privs)
end

minetest.register_on_player_receive_fields(function(player, formname, fields)
	if not jvla.is_agent(player) then return false end
	if fields.quit then
		if formname == "jvla_bridge:crafting_table" or formname == "" then
			jvla.set_craft_grid(player, 2)
			return_craft_items(player)
		end
		if jvla.formspec ~= "" then
			jvla.emit("formspec", {name = jvla.formspec, open = false})
		end
		jvla.formspec = ""
	end
	return formname == "jvla_bridge:crafting_table"
end)

-------------------------------------------------------------------------------- crafting table
minetest.register_node("jvla_bridge:crafting_table", {
	description = S("Crafting Table"),
	tiles = {
		"default_wood.png^[colorize:#3a2410:70^(default_stick.png^[transformR45)",
		"default_wood.png",
		"default_wood.png^default_tool_woodpick.png",
		"default_wood.png^default_tool_woodaxe.png",
		"default_wood.png^default_tool_woodpick.png",
		"default_wood.png^default_tool_woodaxe.png",
	},
	paramtype2 = "facedir",
	groups = {choppy = 2, oddly_breakable_by_hand = 1, flammable = 2},
	is_ground_content = false,
	sounds = default.node_sound_wood_defaults(),
	on_rightclick = function(pos, node, clicker, itemstack)
		if jvla.is_agent(clicker) then jvla.open_crafting_table(clicker) end
		return itemstack
	end,
})

function jvla.open_crafting_table(player)
	jvla.set_craft_grid(player, 3)
	jvla.formspec = "crafting_table"
	jvla.emit("formspec", {name = "crafting_table", open = true})
	minetest.show_formspec(player:get_player_name(), "jvla_bridge:crafting_table", jvla.formspecs.crafting_table)
end

minetest.register_craft({
	output = "jvla_bridge:crafting_table",
	recipe = {{"group:wood", "group:wood"}, {"group:wood", "group:wood"}},
})
minetest.register_craft({type = "fuel", recipe = "jvla_bridge:crafting_table", burntime = 15})

-------------------------------------------------------------------------------- furnace events
for _, name in ipairs({"default:furnace", "default:furnace_active"}) do
	local def = minetest.registered_nodes[name]
	local orig_take = def.on_metadata_inventory_take
	local orig_rightclick = def.on_rightclick
	minetest.override_item(name, {
		on_metadata_inventory_take = function(pos, listname, index, stack, player)
			if listname == "dst" and jvla.is_agent(player) then
				jvla.emit("smelt_item", {item = stack:get_name(), count = stack:get_count()})
			end
			if orig_take then return orig_take(pos, listname, index, stack, player) end
			minetest.get_node_timer(pos):start(1.0)
		end,
		on_metadata_inventory_put = function(pos, listname, index, stack, player)
			jvla.furnace_pos = vector.new(pos)
			minetest.get_node_timer(pos):start(1.0)
		end,
		on_rightclick = orig_rightclick,
	})
end

-------------------------------------------------------------------------------- meats
local meats = {
	{"raw_porkchop", "Raw Porkchop", "cooked_porkchop", "Cooked Porkchop", "#ffb0b0:80", 3},
	{"raw_chicken", "Raw Chicken", "cooked_chicken", "Cooked Chicken", "#fff0d0:120", 2},
	{"raw_mutton", "Raw Mutton", "cooked_mutton", "Cooked Mutton", "#a03030:80", 2},
}
for _, m in ipairs(meats) do
	local raw, raw_desc, cooked, cooked_desc, tint, food = unpack(m)
	minetest.register_craftitem("jvla_bridge:" .. raw, {
		description = S(raw_desc), inventory_image = "mobs_meat_raw.png^[colorize:" .. tint,
		on_use = minetest.item_eat(food), groups = {food_meat_raw = 1, flammable = 2},
	})
	minetest.register_craftitem("jvla_bridge:" .. cooked, {
		description = S(cooked_desc), inventory_image = "mobs_meat.png^[colorize:" .. tint,
		on_use = minetest.item_eat(food * 2), groups = {food_meat = 1, flammable = 2},
	})
	minetest.register_craft({type = "cooking", output = "jvla_bridge:" .. cooked,
		recipe = "jvla_bridge:" .. raw, cooktime = 5})
end

-------------------------------------------------------------------------------- per-step player logic
local PICKUP_RADIUS = 1.5
local PICKUP_DELAY = 0.5 -- seconds; Minecraft's 10-tick pickup delay

function jvla.player_step(player, dtime)
	-- sprint: aux1 (left Ctrl) held while walking forward, as Minecraft's sprint key
	local ctrl = player:get_player_control()
	local sprint = ctrl.aux1 and ctrl.up
	if sprint ~= jvla._sprinting then
		jvla._sprinting = sprint
		player:set_physics_override({speed = sprint and 1.3 or 1.0})
	end
	if not jvla.cfg.auto_pickup or player:get_hp() <= 0 then return end
	local pos = vector.add(player:get_pos(), {x = 0, y = 0.5, z = 0})
	local inv = player:get_inventory()
	for _, obj in ipairs(minetest.get_objects_inside_radius(pos, PICKUP_RADIUS)) do
		local ent = obj:get_luaentity()
		if ent and ent.name == "__builtin:item" and (ent.age or 0) >= PICKUP_DELAY and ent.itemstring ~= "" then
			local st = ItemStack(ent.itemstring)
			local left = inv:add_item("main", st)
			local taken = st:get_count() - left:get_count()
			if taken > 0 then
				jvla.emit("pickup", {item = st:get_name(), count = taken, source = "ground"})
			end
			if left:is_empty() then
				ent.itemstring = ""
				obj:remove()
			else
				ent:set_item(left)
			end
		end
	end
end

-------------------------------------------------------------------------------- reported nodes
-- Nodes reported in the state snapshot: everything except air and common terrain filler,
-- plus the names the env watches (task targets).
local boring_groups = {"soil", "sand", "water", "lava", "leaves", "grass", "dry_grass", "flora", "snowy", "liquid"}
local boring_names = {
	["air"] = true, ["ignore"] = true, ["default:stone"] = true, ["default:desert_stone"] = true,
	["default:sandstone"] = true, ["default:desert_sandstone"] = true, ["default:silver_sandstone"] = true,
	["default:gravel"] = true, ["default:dirt"] = true, ["default:ice"] = true, ["default:cave_ice"] = true,
	["default:permafrost"] = true, ["default:permafrost_with_stones"] = true, ["default:permafrost_with_moss"] = true,
	["default:clay"] = true,
}
local interesting_cache = nil
function jvla.interesting_nodes()
	if interesting_cache then return interesting_cache end
	local set = {}
	for name, def in pairs(minetest.registered_nodes) do
		local boring = boring_names[name] or def.drawtype == "airlike"
		for _, g in ipairs(boring_groups) do
			if (def.groups[g] or 0) > 0 then boring = true end
		end
		if def.groups.not_in_creative_inventory and not name:find("furnace_active") then boring = true end
		if not boring then set[name] = true end
	end
	for name, _ in pairs(jvla.cfg.watch) do
		if minetest.registered_nodes[name] and name ~= "air" then set[name] = true end
	end
	local names = {}
	for name, _ in pairs(set) do names[#names + 1] = name end
	table.sort(names)
	interesting_cache = names
	return names
end
function jvla.invalidate_interesting() interesting_cache = nil end
