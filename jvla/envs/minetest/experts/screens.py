"""GUI-task experts: craft in the inventory / crafting-table screen (:class:`CraftExpert`) and
smelt in the furnace screen (:class:`SmeltExpert`), by moving the cursor with the camera action
(MineRL's GUI semantics) and clicking slots."""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass

from jvla.actions import ActionSpace
from jvla.envs import items
from jvla.envs.minetest.experts.base import _Base, _dist
from jvla.envs.minetest.geometry import aim, camera_delta
from jvla.envs.tasks import Task

log = logging.getLogger(__name__)


@dataclass
class _Click:
    """Click ``button`` (attack = left, use = right) on slot ``(list, index)``.

    ``expect`` = ``(item, min_count)``: after the click, wait until the server's view of that
    slot holds it (a drop); None for picks, which only the client sees.
    """

    list: str
    index: int
    button: str = "attack"
    inventory: str | None = None
    expect: tuple[str, int] | None = None


def _slot_content(s: dict, c: _Click) -> tuple[str, int]:
    if c.inventory == "context":
        lst = (s.get("furnace") or {}).get(c.list) or []
    else:
        lst = s["inventory"].get(c.list) or []
    return tuple(lst[c.index]) if c.index < len(lst) else ("", 0)


class _GuiExpert(_Base):
    """Runs a queue of slot clicks: move the cursor there, press one step, release one step,
    then (for drops) wait for the server to confirm the move.

    Minetest's client predicts inventory moves and the server may briefly revert them (e.g. right
    after a furnace appears); a drop not confirmed within ``CONFIRM_STEPS`` makes the expert close
    the screen (items in hand return to the inventory), reopen it and plan again.
    """

    CONFIRM_STEPS = 40  # 2 s: the client can lag behind its input for a second after a reset
    SETTLE_STEPS = 3  # steps to wait after a screen opens before the first click

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.queue: list[_Click] = []
        self._phase = "move"
        self._planned = False
        self._wait = 0
        self._open_for = 0
        self._recovering = False

    def _gui_ready(self, env, s, a, kind: str) -> bool:
        """Make sure the task's screen is open; press keys / right-click to open it if not."""
        self._sens = env.cfg.mouse_sensitivity
        if self._recovering:
            if s.get("gui_open"):
                a["inventory"] = int(self.t % 2 == 0)  # close: what is in hand goes back
                return False
            self._recovering = False
        if s.get("gui_open") and (s.get("formspec") == kind or kind == "inventory"):
            self._open_for += 1
            return self._open_for > self.SETTLE_STEPS
        self._open_for = 0
        self._planned = False
        self.queue.clear()
        self._phase = "move"
        if s.get("gui_open"):  # a different screen: close it
            a["inventory"] = int(self.t % 2 == 0)
            return False
        if kind == "inventory":
            a["inventory"] = int(self.t % 2 == 0)
            return False
        # Crafting table / furnace: look at the nearest one and right-click it.
        want = {
            "crafting_table": {"jvla_bridge:crafting_table"},
            "furnace": {"default:furnace", "default:furnace_active"},
        }[kind]
        blocks = [n for n in s["nodes"] if n["name"] in want]
        if not blocks:
            return False
        target = min(blocks, key=lambda n: _dist(s["eye"], n["pos"]))["pos"]
        yaw, pitch = aim(s["eye"], target)
        dp, dy = camera_delta(s["yaw"], s["pitch"], yaw, pitch)
        if abs(dp) > 1 or abs(dy) > 1:
            self.turn(a, dp, dy)
        elif self.t % 4 == 0:
            a["use"] = 1
        return False

    def _recover(self) -> None:
        log.debug("%s: a click was not confirmed; closing the screen and planning again", self.task.name)
        self._recovering = True
        self._planned = False
        self.queue.clear()
        self._phase = "move"

    def _run_queue(self, s, a) -> bool:
        """Advance the click queue by one step; True when it is empty."""
        if not self.queue:
            return True
        c = self.queue[0]
        if self._phase == "move":
            if self.cursor_to(s, a, _find_slot(s, c.list, c.index, c.inventory)):
                a[c.button] = 1
                self._phase = "release"
        elif self._phase == "release":
            self._phase = "confirm" if c.expect else "move"
            self._wait = 0
            if not c.expect:
                self.queue.pop(0)
        else:  # confirm
            item, n = _slot_content(s, c)
            if item == c.expect[0] and n >= c.expect[1]:
                self.queue.pop(0)
                self._phase = "move"
            else:
                self._wait += 1
                if self._wait > self.CONFIRM_STEPS:
                    self._recover()
        return False


def _find_slot(s: dict, list_name: str, index: int, inventory: str | None) -> tuple[float, float]:
    for sl in s["gui_slots"]:
        if (
            sl["list"] == list_name
            and sl["index"] == index
            and (inventory is None or sl["inventory"] == inventory)
        ):
            x0, y0, x1, y1 = sl["rect"]
            return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    raise KeyError(f"slot {list_name}[{index}] is not on the open screen ({s.get('formspec')})")


_REGISTRIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _registry(env) -> dict:
    """The game's registry dump (recipes, fuels, item groups), fetched once per env."""
    if env not in _REGISTRIES:
        _REGISTRIES[env] = env.dump_registry()
    return _REGISTRIES[env]


def _matches(item: str, want: str, reg: dict) -> bool:
    if not item:
        return False
    if want.startswith("group:"):
        groups = (reg["items"].get(item) or {}).get("groups") or {}
        return all((groups.get(g) or 0) > 0 for g in want[6:].split(","))
    return item == want


def _free_main_slot(main: list, avoid: set[int]) -> int:
    for i, (it, _) in enumerate(main):
        if not it and i not in avoid:
            return i
    raise RuntimeError("no free inventory slot to drop the result into")


class CraftExpert(_GuiExpert):
    """Craft ``reward.objects[0]`` in the open inventory (2x2) or crafting-table (3x3) grid."""

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.kind = "crafting_table" if task.need_gui == "crafting_table" else "inventory"
        self.output = items.item_to_mt(task.reward.objects[0])

    def _act(self, env, s, a):
        if not self._gui_ready(env, s, a, self.kind):
            return
        if not self._planned:
            self._plan(env, s)
            self._planned = True
        if self._run_queue(s, a):
            self._planned = False  # crafted once; plan again if the reward wants more

    def _plan(self, env, s) -> None:
        reg = _registry(env)
        width = int(s.get("craft_width") or (3 if self.kind == "crafting_table" else 2))
        main = [list(x) for x in s["inventory"]["main"]]
        recipe = self._pick_recipe(reg, main, width)
        if recipe is None:
            raise RuntimeError(f"no recipe for {self.output} fits a {width}x{width} grid with the inventory")
        rw = int(recipe["width"])
        cells: dict[int, str] = {}
        for k, ing in enumerate(recipe["recipe"]):
            if ing:
                row, col = divmod(k, rw or width)
                cells[row * width + col] = ing
        self.queue = []
        used_slots: set[int] = set()
        counts = [n for _, n in main]
        for ing in sorted(set(cells.values())):
            targets = [c for c, v in cells.items() if v == ing]
            while targets:
                src = next(i for i, (it, _) in enumerate(main) if _matches(it, ing, reg) and counts[i] > 0)
                take = min(counts[src], len(targets))
                self.queue.append(_Click("main", src))  # pick the whole stack up
                for c in targets[:take]:  # drop one item per cell
                    self.queue.append(_Click("craft", c, "use", expect=(main[src][0], 1)))
                targets = targets[take:]
                counts[src] -= take
                if counts[src] > 0:  # put the rest back
                    self.queue.append(_Click("main", src, expect=(main[src][0], counts[src])))
                used_slots.add(src)
        free = _free_main_slot(main, used_slots)
        self.queue.append(_Click("craftpreview", 0))  # take the result: this is the craft
        self.queue.append(_Click("main", free, expect=(self.output, 1)))  # into the inventory

    def _pick_recipe(self, reg: dict, main: list, width: int) -> dict | None:
        have: dict[str, int] = {}
        for it, n in main:
            if it:
                have[it] = have.get(it, 0) + n
        for r in reg["craft_recipes"]:
            if r["output"].split(" ")[0] != self.output:
                continue
            ings = [x for x in r["recipe"] if x]
            rw = int(r["width"])
            rows = math.ceil(len(r["recipe"]) / rw) if rw else math.ceil(len(ings) / width)
            if rw > width or rows > width:
                continue
            need: dict[str, int] = {}
            for x in ings:
                need[x] = need.get(x, 0) + 1
            if all(sum(n for it, n in have.items() if _matches(it, w, reg)) >= k for w, k in need.items()):
                return r
        return None


class SmeltExpert(_GuiExpert):
    """Smelt ``reward.objects[0]`` in the open furnace screen and take one output."""

    FUEL_HINTS = ("coal", "wood", "tree", "stick")
    IDLE_STEPS = 60  # loaded but not burning for this long: reload (a reverted move)

    def __init__(self, task: Task, space: ActionSpace):
        super().__init__(task, space)
        self.output = items.item_to_mt(task.reward.objects[0])
        self._idle = 0

    def _act(self, env, s, a):
        if not self._gui_ready(env, s, a, "furnace"):
            return
        if not self._planned:
            self._plan(env, s)
            self._planned = True
        if not self._run_queue(s, a):
            return
        fur = s.get("furnace") or {}
        dst = fur.get("dst") or []
        if any(it == self.output and n > 0 for it, n in dst):
            main = s["inventory"]["main"]
            self.queue = [
                _Click("dst", 0, inventory="context"),
                _Click("main", _free_main_slot(main, set()), expect=(self.output, 1)),
            ]
            self._idle = 0
            return
        loaded = any(it for it, _ in fur.get("src") or []) and (
            fur.get("active") or any(it for it, _ in fur.get("fuel") or [])
        )
        self._idle = 0 if loaded else self._idle + 1
        if self._idle > self.IDLE_STEPS:
            self._idle = 0
            self._planned = False  # plan again: load what is missing

    def _plan(self, env, s) -> None:
        reg = _registry(env)
        main = s["inventory"]["main"]
        fur = s.get("furnace") or {}
        inputs = {c["input"] for c in reg["cooking_recipes"] if c["output"].split(" ")[0] == self.output}
        fuels = {f["item"] for f in reg["fuels"]}
        self.queue = []
        if not any(it for it, _ in fur.get("src") or []):
            src = next(
                (i for i, (it, _) in enumerate(main) if any(_matches(it, w, reg) for w in inputs)), None
            )
            if src is None:
                raise RuntimeError(f"nothing in the inventory smelts into {self.output}")
            self.queue += [
                _Click("main", src),
                _Click("src", 0, inventory="context", expect=(main[src][0], 1)),
            ]
        if not any(it for it, _ in fur.get("fuel") or []) and not fur.get("active"):
            cands = [
                i
                for i, (it, _) in enumerate(main)
                if it in fuels and not any(_matches(it, w, reg) for w in inputs)
            ]
            cands.sort(key=lambda i: not any(h in main[i][0] for h in self.FUEL_HINTS))
            if not cands:
                raise RuntimeError("no fuel in the inventory")
            self.queue += [
                _Click("main", cands[0]),
                _Click("fuel", 0, inventory="context", expect=(main[cands[0]][0], 1)),
            ]
