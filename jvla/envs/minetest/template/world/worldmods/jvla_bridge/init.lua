-- jvla_bridge: the server side of jvla's Minetest environment (jvla/envs/minetest/bridge.py).
--
-- Files under <world>/jvla/ (all JSON, written by Minetest's own JSON encoder):
--   events.jsonl  append-only event log, one object per line, flushed per line:
--                 {"seq", "t_us", "event", ...}; events: mine_block, craft_item, smelt_item,
--                 kill_entity, pickup, command (result of a command file), joinplayer, died,
--                 formspec (open/close of server-known formspecs)
--   state.json    snapshot of the player and its surroundings, rewritten atomically every
--                 server step (dedicated_server_step = one env tick)
--   cmd/*.json    command files written by Python (atomic rename); run in name order and deleted
-- Minecraft-like content (crafting table, 9-slot hotbar, 2x2 inventory grid, mobs, meats) lives in
-- content.lua and mobs.lua.

jvla = {}
local modpath = minetest.get_modpath("jvla_bridge")
local dir = minetest.get_worldpath() .. "/jvla"
minetest.mkdir(dir)
minetest.mkdir(dir .. "/cmd")
local PLAYER = "agent"
local t0 = minetest.get_us_time()

-- Settings changed by the "config" command.
jvla.cfg = {
	entity_radius = 24,  -- nodes; entities within this distance are reported
	node_radius = 8,     -- nodes; "interesting" nodes within this distance are reported
	max_nodes = 256,     -- nearest first
	watch = {},          -- node names always reported (task targets), name -> true
	auto_pickup = true,  -- Minecraft-style pickup of item entities touching the player
	scan = true,         -- report entities and nodes (off: only the player's own state)
}
jvla.weather = "clear"
jvla.formspec = ""       -- server-known open formspec: "crafting_table" or ""
jvla.furnace_pos = nil   -- the furnace the player last used or that was set up
jvla.arena = nil         -- {origin = pos, ...} of the last arena

-------------------------------------------------------------------------------- events
local events_file = io.open(dir .. "/events.jsonl", "a")
local seq = 0

function jvla.emit(event, fields)
	fields = fields or {}
	seq = seq + 1
	fields.event = event
	fields.seq = seq
	fields.t_us = minetest.get_us_time() - t0
	local ok, line = pcall(minetest.write_json, fields)
	if not ok or not line then
		line = minetest.write_json({event = "error", seq = seq, msg = "unserialisable event " .. event})
	end
	events_file:write(line, "\n")
	events_file:flush()
end

local function is_agent(obj)
	return obj and obj.is_player and obj:is_player() and obj:get_player_name() == PLAYER
end
jvla.is_agent = is_agent

minetest.register_on_dignode(function(pos, oldnode, digger)
	if is_agent(digger) then
		jvla.emit("mine_block", {item = oldnode.name, pos = pos})
	end
end)

minetest.register_on_craft(function(itemstack, player, old_craft_grid, craft_inv)
	if is_agent(player) then
		jvla.emit("craft_item", {item = itemstack:get_name(), count = itemstack:get_count()})
	end
end)

-- Items a dug node yields go straight into the inventory in Minetest; Minecraft drops them and
-- the player picks them up, which its "pickup" statistic counts. Count them as pickups too.
local builtin_handle_node_drops = minetest.handle_node_drops
function minetest.handle_node_drops(pos, drops, digger)
	if is_agent(digger) then
		for _, item in ipairs(drops) do
			local st = ItemStack(item)
			if not st:is_empty() then
				jvla.emit("pickup", {item = st:get_name(), count = st:get_count(), source = "dig"})
			end
		end
	end
	return builtin_handle_node_drops(pos, drops, digger)
end

-------------------------------------------------------------------------------- helpers
local function stack_list(inv, listname)
	local out = {}
	local list = inv:get_list(listname)
	if not list then return out end
	for i, st in ipairs(list) do
		out[i] = {st:get_name(), st:get_count()}
	end
	return out
end
jvla.stack_list = stack_list

local function round3(x) return math.floor(x * 1000 + 0.5) / 1000 end
local function vec3(p) return {round3(p.x), round3(p.y), round3(p.z)} end
jvla.vec3 = vec3

function jvla.get_player()
	return minetest.get_player_by_name(PLAYER)
end

dofile(modpath .. "/content.lua")
dofile(modpath .. "/mobs.lua")
dofile(modpath .. "/commands.lua")

-------------------------------------------------------------------------------- players
minetest.send_join_message = function() end
minetest.send_leave_message = function() end
minetest.get_server_status = function() return nil end

minetest.register_on_joinplayer(function(player)
	if player:get_player_name() ~= PLAYER then return end
	jvla.setup_player(player)
	-- default/init.lua sets the 8-slot hotbar images in its own joinplayer callback: redo ours after.
	minetest.after(0.3, function()
		local p = jvla.get_player()
		if p then jvla.setup_player(p) end
	end)
	jvla.emit("joinplayer", {name = PLAYER})
end)

minetest.register_on_dieplayer(function(player)
	if is_agent(player) then jvla.emit("died", {}) end
end)

-- Respawn where the episode's arena is, not at the world spawn.
minetest.register_on_respawnplayer(function(player)
	if is_agent(player) and jvla.arena then
		player:set_pos(jvla.arena.spawn)
		return true
	end
end)

-------------------------------------------------------------------------------- state
local function pointed_thing(player, eye)
	local dir = player:get_look_dir()
	local range = 4.0
	local wielded = player:get_wielded_item():get_definition()
	if wielded and wielded.range then range = wielded.range end
	local ray = minetest.raycast(eye, vector.add(eye, vector.multiply(dir, range)), true, false)
	for hit in ray do
		if hit.type == "node" then
			local node = minetest.get_node(hit.under)
			local def = minetest.registered_nodes[node.name]
			if not def or def.pointable ~= false then
				return {type = "node", name = node.name, under = vec3(hit.under), above = vec3(hit.above)}
			end
		elseif hit.type == "object" and not is_agent(hit.ref) then
			local ent = hit.ref:get_luaentity()
			return {type = "object", name = ent and ent.name or "?", id = ent and jvla.entity_id(ent) or -1}
		end
	end
	return {type = "nothing"}
end

local next_entity_id = 0
function jvla.entity_id(ent)
	if not ent._jvla_id then
		next_entity_id = next_entity_id + 1
		ent._jvla_id = next_entity_id
	end
	return ent._jvla_id
end

local function visible_from(eye, target_pos, want_node_pos, want_obj)
	-- true when the first thing hit on the segment eye -> target is the target itself
	for hit in minetest.raycast(eye, target_pos, want_obj ~= nil, false) do
		if hit.type == "node" then
			return want_node_pos ~= nil and vector.equals(hit.under, want_node_pos)
		elseif hit.type == "object" then
			if want_obj ~= nil and hit.ref == want_obj then return true end
			if not is_agent(hit.ref) and want_obj == nil then return false end
		end
	end
	return want_node_pos == nil
end

local function in_front(eye, dir, p, cos_limit)
	local d = vector.subtract(p, eye)
	local len = vector.length(d)
	if len < 0.001 then return true end
	return vector.dot(d, dir) / len >= cos_limit
end

local function scan_entities(player, pos, eye, dir)
	local out = {}
	for _, obj in ipairs(minetest.get_objects_inside_radius(pos, jvla.cfg.entity_radius)) do
		if not obj:is_player() then
			local ent = obj:get_luaentity()
			if ent then
				local props = obj:get_properties()
				local opos = obj:get_pos()
				local cb = props.collisionbox or {0, 0, 0, 0, 0, 0}
				local centre = {x = opos.x, y = opos.y + (cb[2] + cb[5]) / 2, z = opos.z}
				local rec = {
					id = jvla.entity_id(ent), name = ent.name, pos = vec3(opos),
					collisionbox = {cb[1], cb[2], cb[3], cb[4], cb[5], cb[6]},
					yaw = round3(obj:get_yaw() or 0), hp = obj:get_hp(),
					in_front = in_front(eye, dir, centre, 0.3),
				}
				if ent.name == "__builtin:item" then
					rec.item = ItemStack(ent.itemstring):get_name()
					rec.count = ItemStack(ent.itemstring):get_count()
				elseif ent.health then
					rec.hp = ent.health
				end
				if rec.in_front then rec.visible = visible_from(eye, centre, nil, obj) end
				out[#out + 1] = rec
			end
		end
	end
	return out
end

local function scan_nodes(pos, eye, dir)
	local r = jvla.cfg.node_radius
	local c = vector.round(pos)
	local names = jvla.interesting_nodes()
	local found = minetest.find_nodes_in_area(vector.subtract(c, r), vector.add(c, r), names)
	table.sort(found, function(a, b) return vector.distance(a, eye) < vector.distance(b, eye) end)
	local out = {}
	for i = 1, math.min(#found, jvla.cfg.max_nodes) do
		local p = found[i]
		local rec = {name = minetest.get_node(p).name, pos = {p.x, p.y, p.z}, in_front = in_front(eye, dir, p, 0.3)}
		if rec.in_front then rec.visible = visible_from(eye, p, p, nil) end
		out[#out + 1] = rec
	end
	return out
end

local function furnace_state()
	local p = jvla.furnace_pos
	if not p then return nil end
	local node = minetest.get_node(p)
	if node.name ~= "default:furnace" and node.name ~= "default:furnace_active" then return nil end
	local inv = minetest.get_meta(p):get_inventory()
	return {
		pos = {p.x, p.y, p.z}, active = node.name == "default:furnace_active",
		src = stack_list(inv, "src"), fuel = stack_list(inv, "fuel"), dst = stack_list(inv, "dst"),
	}
end

local state_path = dir .. "/state.json"
local step = 0

local function write_state()
	local player = jvla.get_player()
	if not player then return end
	step = step + 1
	local pos = player:get_pos()
	local props = player:get_properties()
	local eye = vector.add(pos, {x = 0, y = props.eye_height, z = 0})
	local dir = player:get_look_dir()
	local inv = player:get_inventory()
	local lists = {}
	for name, _ in pairs(inv:get_lists()) do lists[name] = stack_list(inv, name) end
	local s = {
		step = step, t_us = minetest.get_us_time() - t0, events_seq = seq,
		pos = vec3(pos), yaw = player:get_look_horizontal(), pitch = player:get_look_vertical(),
		look_dir = vec3(dir), eye_height = props.eye_height,
		hp = player:get_hp(), hp_max = props.hp_max, breath = player:get_breath(),
		wielded_index = player:get_wield_index(), wielded = player:get_wielded_item():get_name(),
		inventory = lists, craft_width = inv:get_width("craft"),
		formspec = jvla.formspec, furnace = furnace_state(),
		time_of_day = round3(minetest.get_timeofday()), weather = jvla.weather,
		pointed = pointed_thing(player, eye),
		entities = jvla.cfg.scan and scan_entities(player, pos, eye, dir) or {},
		nodes = jvla.cfg.scan and scan_nodes(pos, eye, dir) or {},
		arena = jvla.arena and {origin = vec3(jvla.arena.origin)} or nil,
		controls = player:get_player_control(),
	}
	local ok, text = pcall(minetest.write_json, s)
	if ok and text then
		minetest.safe_file_write(state_path, text)
	else
		minetest.log("error", "[jvla_bridge] cannot serialise state: " .. tostring(text))
	end
end

minetest.register_globalstep(function(dtime)
	jvla.run_commands()
	local player = jvla.get_player()
	if player then
		jvla.player_step(player, dtime)
		write_state()
	end
end)
