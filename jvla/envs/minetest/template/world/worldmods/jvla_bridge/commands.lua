-- Command channel of jvla_bridge (loaded by init.lua).
--
-- Python writes <world>/jvla/cmd/<10-digit seq>.json atomically (rename); each file holds one
-- JSON object {"id": int, "cmd": name, ...arguments} or a list of them. Every server step the
-- files are run in name order and deleted; each command's outcome is logged as an event
-- {"event": "command", "id", "cmd", "ok", "result" | "error"}. Asynchronous commands
-- (find_arena, which waits for map generation) log their event when they finish.
-- Positions are [x, y, z] in nodes; yaw/pitch in radians (Minetest convention, see bridge.py).

local dir = minetest.get_worldpath() .. "/jvla"
local cmd_dir = dir .. "/cmd"
local handlers = {}
jvla.command_handlers = handlers

local function vec(t) return {x = t[1], y = t[2], z = t[3]} end

local function player_or_error()
	local p = jvla.get_player()
	if not p then error("player not connected") end
	return p
end

local function done(c, ok, payload)
	local ev = {id = c.id, cmd = c.cmd, ok = ok}
	if ok then ev.result = payload else ev.error = tostring(payload) end
	jvla.emit("command", ev)
end

function jvla.run_commands()
	local files = minetest.get_dir_list(cmd_dir, false)
	if #files == 0 then return end
	table.sort(files)
	for _, fname in ipairs(files) do
		if fname:sub(-5) == ".json" then
			local path = cmd_dir .. "/" .. fname
			local f = io.open(path, "r")
			local text = f and f:read("*a") or ""
			if f then f:close() end
			os.remove(path)
			local data = minetest.parse_json(text)
			if type(data) ~= "table" then
				jvla.emit("command", {id = -1, cmd = "?", ok = false, error = "unparsable command file " .. fname})
			else
				if data.cmd then data = {data} end
				for _, c in ipairs(data) do
					local h = handlers[c.cmd]
					if not h then
						done(c, false, "unknown command " .. tostring(c.cmd))
					else
						local ok, res = pcall(h, c)
						if not ok then
							done(c, false, res)
						elseif res ~= "async" then
							done(c, true, res or true)
						end
					end
				end
			end
		end
	end
end

-------------------------------------------------------------------------------- handlers
handlers.ping = function(c) return {step_ok = true} end

handlers.formspecs = function(c) return jvla.formspecs end

handlers.config = function(c)
	for _, k in ipairs({"entity_radius", "node_radius", "max_nodes", "auto_pickup", "scan"}) do
		if c[k] ~= nil then jvla.cfg[k] = c[k] end
	end
	if c.watch then
		jvla.cfg.watch = {}
		for _, n in ipairs(c.watch) do jvla.cfg.watch[n] = true end
		jvla.invalidate_interesting()
	end
	return true
end

handlers.clear_inventory = function(c)
	local inv = player_or_error():get_inventory()
	for name, list in pairs(inv:get_lists()) do
		for i = 1, #list do inv:set_stack(name, i, "") end  -- keeps each list's size and width
	end
	return true
end

handlers.give = function(c)
	local player = player_or_error()
	local inv = player:get_inventory()
	local st = ItemStack(c.item .. " " .. (c.count or 1))
	if not minetest.registered_items[st:get_name()] then error("unknown item " .. c.item) end
	if c.slot ~= nil then
		-- slot is 0-based like Minecraft's; Lua lists are 1-based
		inv:set_stack(c.list or "main", c.slot + 1, st)
		return true
	end
	local left = inv:add_item(c.list or "main", st)
	if not left:is_empty() then error("inventory full, " .. left:to_string() .. " not given") end
	return true
end

handlers.set_node = function(c)
	local name = c.name
	if name ~= "air" and not minetest.registered_nodes[name] then error("unknown node " .. name) end
	local param2 = c.param2 or 0
	minetest.set_node(vec(c.pos), {name = name, param2 = param2})
	if name == "default:furnace" then jvla.furnace_pos = vec(c.pos) end
	return true
end

handlers.fill = function(c)
	if c.name ~= "air" and not minetest.registered_nodes[c.name] then error("unknown node " .. c.name) end
	local p1, p2 = vec(c.from), vec(c.to)
	local minp = {x = math.min(p1.x, p2.x), y = math.min(p1.y, p2.y), z = math.min(p1.z, p2.z)}
	local maxp = {x = math.max(p1.x, p2.x), y = math.max(p1.y, p2.y), z = math.max(p1.z, p2.z)}
	local list = {}
	for x = minp.x, maxp.x do for y = minp.y, maxp.y do for z = minp.z, maxp.z do
		list[#list + 1] = {x = x, y = y, z = z}
	end end end
	minetest.bulk_set_node(list, {name = c.name})
	return #list
end

handlers.spawn = function(c)
	local obj = minetest.add_entity(vec(c.pos), c.entity)
	if not obj then error("cannot spawn " .. tostring(c.entity)) end
	if c.yaw then obj:set_yaw(c.yaw) end
	local ent = obj:get_luaentity()
	return {id = ent and jvla.entity_id(ent) or -1}
end

handlers.clear_objects = function(c)
	local player = player_or_error()
	local centre = c.pos and vec(c.pos) or player:get_pos()
	local n = 0
	for _, obj in ipairs(minetest.get_objects_inside_radius(centre, c.radius or 64)) do
		if not obj:is_player() then
			obj:remove()
			n = n + 1
		end
	end
	return n
end

handlers.time = function(c)
	minetest.set_timeofday(c.value)
	return true
end

handlers.weather = function(c)
	local player = player_or_error()
	jvla.weather = c.value
	-- minetest_game has no rain; "rain" darkens the sky and clouds as a visual stand-in.
	if c.value == "rain" then
		player:set_sky({type = "plain", base_color = "#6b7580", clouds = true})
		player:set_clouds({density = 0.9, color = "#5a5f66f0", height = 60})
	else
		player:set_sky({type = "regular", clouds = true})
		player:set_clouds({density = 0.4, color = "#fff0f0e5", height = 120})
	end
	return true
end

handlers.teleport = function(c)
	local player = player_or_error()
	player:set_pos(vec(c.pos))
	if c.yaw then player:set_look_horizontal(c.yaw) end
	if c.pitch then player:set_look_vertical(c.pitch) end
	return true
end

handlers.set_look = function(c)
	local player = player_or_error()
	player:set_look_horizontal(c.yaw)
	player:set_look_vertical(c.pitch)
	return true
end

handlers.set_hp = function(c)
	player_or_error():set_hp(c.hp)
	return true
end

handlers.reset_player = function(c)
	local player = player_or_error()
	minetest.close_formspec(player:get_player_name(), "")
	jvla.formspec = ""
	jvla.setup_player(player)
	jvla.set_craft_grid(player, 2)
	local inv = player:get_inventory()
	for i = 1, inv:get_size("craft") do inv:set_stack("craft", i, "") end
	if player:get_hp() <= 0 then player:respawn() end
	player:set_hp(player:get_properties().hp_max or 20)
	player:set_breath(player:get_properties().breath_max or 10)
	player:set_physics_override({speed = 1, jump = 1, gravity = 1})
	jvla.furnace_pos = nil
	return true
end

handlers.close_formspec = function(c)
	local player = player_or_error()
	minetest.close_formspec(player:get_player_name(), "")
	jvla.set_craft_grid(player, 2)
	jvla.formspec = ""
	return true
end

handlers.show_formspec = function(c)
	-- A fallback to opening GUIs with real input (the env presses E / right-clicks).
	local player = player_or_error()
	if c.kind == "crafting_table" then
		jvla.open_crafting_table(player)
	elseif c.kind == "inventory" then
		minetest.show_formspec(player:get_player_name(), "", jvla.formspecs.inventory)
	else
		error("unknown formspec kind " .. tostring(c.kind))
	end
	return true
end

handlers.chat = function(c)
	local line = c.line or ""
	local name, param = line:match("^/?(%S+)%s*(.*)$")
	local def = name and minetest.registered_chatcommands[name]
	if not def then error("unknown chat command " .. tostring(name)) end
	local ok, msg = def.func(jvla.get_player() and "agent" or "", param or "")
	if ok == false then error(msg or "failed") end
	return msg or true
end

-------------------------------------------------------------------------------- arena
-- A flat clearing: floor of `floor` at origin.y - 1 with `base` below, air above up to `height`,
-- over a square of half-width `radius` centred on the origin. The player stands on the centre
-- node at feet height origin.y, facing +z.
local function build_arena(origin, radius, height, floor, base)
	local vm = minetest.get_voxel_manip()
	local minp = {x = origin.x - radius, y = origin.y - 4, z = origin.z - radius}
	local maxp = {x = origin.x + radius, y = origin.y + height, z = origin.z + radius}
	local emin, emax = vm:read_from_map(minp, maxp)
	local area = VoxelArea:new({MinEdge = emin, MaxEdge = emax})
	local data = vm:get_data()
	local c_air = minetest.get_content_id("air")
	local c_floor = minetest.get_content_id(floor)
	local c_base = minetest.get_content_id(base)
	local c_stone = minetest.get_content_id("default:stone")
	local changed = 0
	for z = minp.z, maxp.z do for y = minp.y, maxp.y do for x = minp.x, maxp.x do
		local i = area:index(x, y, z)
		local want
		if y >= origin.y then
			want = c_air
		elseif y == origin.y - 1 then
			want = c_floor
		elseif y >= origin.y - 3 then
			want = c_base
		else
			want = c_stone
		end
		if data[i] ~= want then
			data[i] = want
			changed = changed + 1
		end
	end end end
	if changed == 0 then return 0 end  -- intact: rewriting would make the client re-mesh for nothing
	if changed < 64 then
		-- a few nodes (last episode's blocks): set them one by one, cheaper for the client
		for z = minp.z, maxp.z do for y = minp.y, maxp.y do for x = minp.x, maxp.x do
			local p = {x = x, y = y, z = z}
			local want = minetest.get_name_from_content_id(data[area:index(x, y, z)])
			if minetest.get_node(p).name ~= want then minetest.set_node(p, {name = want}) end
		end end end
		return changed
	end
	vm:set_data(data)
	vm:calc_lighting()
	vm:write_to_map(true)
	vm:update_liquids()
	-- node metadata (furnaces, chests) inside the cleared box is stale now
	for _, p in ipairs(minetest.find_nodes_with_meta(minp, maxp)) do
		minetest.get_meta(p):from_table(nil)
	end
	return changed
end

handlers.arena = function(c)
	local player = player_or_error()
	local origin
	if c.origin then
		origin = vec(c.origin)
	elseif jvla.arena then
		origin = jvla.arena.origin
	else
		local p = player:get_pos()
		origin = {x = math.floor(p.x + 0.5), y = math.floor(p.y + 0.5), z = math.floor(p.z + 0.5)}
	end
	local changed = build_arena(origin, c.radius or 6, c.height or 12, c.floor or "default:dirt_with_grass",
		c.base or "default:dirt")
	local spawn = {x = origin.x, y = origin.y - 0.5, z = origin.z}
	jvla.arena = {origin = origin, spawn = spawn}
	player:set_pos(spawn)
	player:set_look_horizontal(c.yaw or 0)
	player:set_look_vertical(c.pitch or 0)
	return {origin = {origin.x, origin.y, origin.z}, changed = changed}
end

-- Search outward from (0, 0) for a surface point in one of `biomes` (exact names),
-- emerge the map around it, then answer with {origin}. Asynchronous.
handlers.find_arena = function(c)
	local wanted = c.biomes or {"grassland", "deciduous_forest", "coniferous_forest", "savanna"}
	local step = c.step or 16
	local max_dist = c.max_dist or 800
	local found = nil
	local start = c.start and vec(c.start) or {x = 0, y = 0, z = 0}
	local function probe(x, z, w)
		local y = minetest.get_spawn_level(x, z)
		if not y or y <= 2 or y >= 60 then return nil end
		local bd = minetest.get_biome_data({x = x, y = y, z = z})
		local bname = bd and minetest.get_biome_name(bd.biome) or ""
		if bname == w then return {x = x, y = y, z = z, biome = bname} end
	end
	for _, w in ipairs(wanted) do
		for r = 0, max_dist, step do
			for d = -r, r, step do
				for _, xz in ipairs({{d, -r}, {d, r}, {-r, d}, {r, d}}) do
					found = found or probe(start.x + xz[1], start.z + xz[2], w)
				end
			end
			if found then break end
		end
		if found then break end
	end
	if not found then error("no surface point in biomes " .. table.concat(wanted, ",") .. " within " .. max_dist) end
	local r = (c.radius or 6) + 16
	minetest.emerge_area(vector.subtract(found, r), vector.add(found, {x = r, y = r, z = r}),
		function(blockpos, action, calls_remaining)
			if calls_remaining == 0 then
				done(c, true, {origin = {found.x, found.y, found.z}, biome = found.biome})
			end
		end)
	return "async"
end

-------------------------------------------------------------------------------- registry dump
local function copy_plain(v, depth)
	depth = depth or 0
	if type(v) == "table" then
		if depth > 6 then return nil end
		local t = {}
		for k, x in pairs(v) do
			if type(k) == "string" or type(k) == "number" then
				local y = copy_plain(x, depth + 1)
				if y ~= nil then t[k] = y end
			end
		end
		return t
	elseif type(v) == "function" or type(v) == "userdata" then
		return nil
	end
	return v
end

handlers.dump_registry = function(c)
	local items, crafts, cooking, fuels = {}, {}, {}, {}
	for name, def in pairs(minetest.registered_items) do
		if name ~= "" and name ~= "air" and name ~= "ignore" and name ~= "unknown" then
			items[name] = {
				description = minetest.strip_colors(minetest.get_translated_string("en", def.description or "")),
				type = def.type, groups = copy_plain(def.groups or {}),
				drop = copy_plain(def.drop), tool_capabilities = copy_plain(def.tool_capabilities),
				stack_max = def.stack_max,
			}
			for _, r in ipairs(minetest.get_all_craft_recipes(name) or {}) do
				if r.method == "normal" then
					local grid = {}
					for i = 1, (r.width > 0 and r.width * math.ceil(#r.items / r.width) or 0) do
						grid[i] = r.items[i] or ""
					end
					local n = 0
					for _ in pairs(r.items) do n = n + 1 end
					if r.width == 0 then
						grid = {}
						for _, it in pairs(r.items) do grid[#grid + 1] = it end
					end
					crafts[#crafts + 1] = {output = r.output, type = r.width == 0 and "shapeless" or "shaped",
						width = r.width, recipe = grid}
				elseif r.method == "cooking" then
					local res = minetest.get_craft_result({method = "cooking", width = 1, items = {r.items[1]}})
					cooking[#cooking + 1] = {input = r.items[1], output = r.output, time = res and res.time or 0}
				end
			end
			local fuel = minetest.get_craft_result({method = "fuel", width = 1, items = {name}})
			if fuel and fuel.time and fuel.time > 0 then
				fuels[#fuels + 1] = {item = name, burntime = fuel.time}
			end
		end
	end
	local biomes = {}
	for _, b in pairs(minetest.registered_biomes) do
		biomes[#biomes + 1] = {name = b.name, node_top = b.node_top, node_filler = b.node_filler,
			heat_point = b.heat_point, humidity_point = b.humidity_point}
	end
	local data = {items = items, craft_recipes = crafts, cooking_recipes = cooking, fuels = fuels,
		entities = jvla.mob_info, biomes = biomes}
	local path = dir .. "/registry.json"
	minetest.safe_file_write(path, minetest.write_json(data))
	return {path = "registry.json"}
end
