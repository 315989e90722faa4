gameid = minetest_game
enable_damage = true
creative_mode = false
backend = sqlite3
player_backend = sqlite3
auth_backend = sqlite3
mod_storage_backend = sqlite3
load_mod_mobs = true
