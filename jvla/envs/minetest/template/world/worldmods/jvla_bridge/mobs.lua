-- Stand-ins for Minecraft's mobs, registered through mobs_redo (loaded by init.lua).
-- Debian ships only the mobs_redo API (no animals or monsters), so each mob is defined here with
-- textures from minetest_game. Each emits a kill_entity event when it dies, with the killer.
-- jvla.mob_info (used by the registry dump) keeps the Minecraft name and the facts QA needs.

jvla.mob_info = {}

local function on_die_event(mc_name)
	return function(self, pos)
		local cause = self.cause_of_death or {}
		local by_agent = cause.type == "punch" and jvla.is_agent(cause.puncher)
		jvla.emit("kill_entity", {entity = self.name, mc_name = mc_name, by_agent = by_agent,
			pos = jvla.vec3(pos), id = jvla.entity_id(self)})
	end
end

local function cube(top, bottom, side, front)
	-- cube visual faces: +Y, -Y, +X, -X, +Z (back), -Z (front)
	return {top, bottom, side, side, side, front}
end

-- Common fields of all stand-ins: no despawning, no natural spawning (spawns only by command).
local function register(name, mc_name, def)
	def.lifetimer = 100000
	def.on_die = on_die_event(mc_name)
	def.makes_footstep_sound = false
	def.sounds = {}
	def.fear_height = def.fear_height or 3
	def.floats = 1
	def.stepheight = def.stepheight or 1.1
	def.jump = def.jump ~= false
	mobs:register_mob("jvla_bridge:" .. name, def)
	-- No "Health: x / y, Owner:" infotext or nametag over the mobs (screen clutter).
	minetest.registered_entities["jvla_bridge:" .. name].update_tag = function(self)
		self.object:set_properties({nametag = "", infotext = ""})
	end
	local drops = {}
	for _, d in ipairs(def.drops or {}) do drops[#drops + 1] = d.name end
	jvla.mob_info["jvla_bridge:" .. name] = {
		mc_name = mc_name, type = def.type, passive = def.passive or false,
		hp_max = def.hp_max, damage = def.damage or 0, drops = drops,
	}
end

local function animal_box(w, h)
	return {-w / 2, -h / 2, -w / 2, w / 2, h / 2, w / 2}
end

register("sheep", "sheep", {
	type = "animal", passive = true, hp_min = 8, hp_max = 8, armor = 100,
	collisionbox = animal_box(0.9, 1.1), visual = "cube", visual_size = {x = 0.9, y = 1.1},
	textures = {cube("wool_white.png", "wool_white.png", "wool_white.png",
		"wool_white.png^(wool_grey.png^[resize:8x8)")},
	walk_velocity = 1, run_velocity = 2, runaway = true, walk_chance = 30, view_range = 6,
	drops = {{name = "jvla_bridge:raw_mutton", chance = 1, min = 1, max = 1},
		{name = "wool:white", chance = 1, min = 1, max = 1}},
})

register("cow", "cow", {
	type = "animal", passive = true, hp_min = 10, hp_max = 10, armor = 100,
	collisionbox = animal_box(0.9, 1.3), visual = "cube", visual_size = {x = 0.9, y = 1.3},
	textures = {cube("wool_brown.png", "wool_brown.png", "wool_brown.png^(wool_white.png^[resize:6x6)",
		"wool_brown.png^(wool_pink.png^[resize:8x4)")},
	walk_velocity = 1, run_velocity = 2, runaway = true, walk_chance = 30, view_range = 6,
	drops = {{name = "mobs:meat_raw", chance = 1, min = 1, max = 2},
		{name = "mobs:leather", chance = 1, min = 0, max = 2}},
})

register("pig", "pig", {
	type = "animal", passive = true, hp_min = 10, hp_max = 10, armor = 100,
	collisionbox = animal_box(0.9, 0.9), visual = "cube", visual_size = {x = 0.9, y = 0.9},
	textures = {cube("wool_pink.png", "wool_pink.png", "wool_pink.png",
		"wool_pink.png^(wool_magenta.png^[resize:6x4)")},
	walk_velocity = 1, run_velocity = 2, runaway = true, walk_chance = 30, view_range = 6,
	drops = {{name = "jvla_bridge:raw_porkchop", chance = 1, min = 1, max = 2}},
})

register("chicken", "chicken", {
	type = "animal", passive = true, hp_min = 4, hp_max = 4, armor = 100,
	collisionbox = animal_box(0.5, 0.7), visual = "cube", visual_size = {x = 0.5, y = 0.7},
	textures = {cube("wool_white.png", "wool_yellow.png", "wool_white.png",
		"wool_white.png^(wool_orange.png^[resize:6x6)")},
	walk_velocity = 1, run_velocity = 2, runaway = true, walk_chance = 30, view_range = 6,
	fall_damage = 0, fall_speed = -4,
	drops = {{name = "jvla_bridge:raw_chicken", chance = 1, min = 1, max = 1}},
})

local humanoid = {
	visual = "mesh", mesh = "character.b3d", collisionbox = {-0.3, 0.0, -0.3, 0.3, 1.7, 0.3},
	animation = {speed_normal = 30, speed_run = 30, stand_start = 0, stand_end = 79,
		walk_start = 168, walk_end = 187, run_start = 168, run_end = 187,
		punch_start = 189, punch_end = 198},
}
local function with(base, extra)
	local t = table.copy(base)
	for k, v in pairs(extra) do t[k] = v end
	return t
end

register("zombie", "zombie", with(humanoid, {
	type = "monster", passive = false, attack_type = "dogfight", damage = 2, reach = 2,
	hp_min = 12, hp_max = 12, armor = 100, textures = {{"character.png^[colorize:#2a6b2a:140"}},
	walk_velocity = 0.8, run_velocity = 1.6, view_range = 12, walk_chance = 50,
	drops = {{name = "default:paper", chance = 2, min = 0, max = 1}},
}))

register("skeleton", "skeleton", with(humanoid, {
	type = "monster", passive = false, attack_type = "dogfight", damage = 2, reach = 2,
	hp_min = 12, hp_max = 12, armor = 100, textures = {{"character.png^[colorize:#e8e8e0:200"}},
	walk_velocity = 0.8, run_velocity = 1.6, view_range = 12, walk_chance = 50,
	drops = {{name = "default:stick", chance = 1, min = 0, max = 2}},
}))

register("spider", "spider", {
	type = "monster", passive = false, attack_type = "dogfight", damage = 2, reach = 2,
	hp_min = 10, hp_max = 10, armor = 100,
	collisionbox = {-0.7, -0.45, -0.7, 0.7, 0.45, 0.7}, visual = "cube", visual_size = {x = 1.4, y = 0.9},
	textures = {cube("wool_black.png", "wool_black.png", "wool_black.png",
		"wool_black.png^(wool_red.png^[resize:3x3)")},
	walk_velocity = 1, run_velocity = 2, view_range = 12, walk_chance = 50, jump_height = 2,
	drops = {{name = "farming:string", chance = 1, min = 0, max = 2}},
})
