"""Python side of the file bridge to the ``jvla_bridge`` Lua mod (``template/world/worldmods``).

Three channels under ``<world>/jvla/`` (see the header of the mod's ``init.lua``):

* ``cmd/<seq>.json``: commands, written atomically (temp file + rename); the mod runs them on
  its next server step (one env tick) and logs a ``command`` event with the outcome;
* ``events.jsonl``: the append-only event log, tailed here; game events (``mine_block``,
  ``craft_item``, ``smelt_item``, ``kill_entity``, ``pickup``, ...) queue up for the env,
  command outcomes are kept by id for :meth:`Bridge.wait`;
* ``state.json``: the latest snapshot, rewritten atomically every server step.

Conventions of the snapshot (Minetest's): positions in nodes, ``pos`` = the player's feet;
``yaw`` in radians in ``[0, 2 pi)``, 0 = looking along +z, increasing counter-clockwise seen from
above (turning left), so the look direction is ``(-sin yaw cos pitch, -sin pitch, cos yaw cos
pitch)``; ``pitch`` in radians, positive = looking down. Empty Lua tables arrive as ``null`` and
are normalised to ``[]`` here; Lua numbers arrive as floats (counts are cast to int).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from jvla.envs.base import EnvCrashed

log = logging.getLogger(__name__)


class BridgeError(RuntimeError):
    """A bridge command failed inside the game (unknown item, bad position, ...)."""


class Bridge:
    """Commands, events and state of one instance. ``root`` is ``<world>/jvla``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.cmd_dir = self.root / "cmd"
        self.cmd_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.root / "events.jsonl"
        self.state_path = self.root / "state.json"
        self._ids = itertools.count(1)
        self._file_seq = itertools.count(int(time.time() * 1000) % 10**9)
        self._offset = 0
        self._partial = b""
        self._results: dict[int, dict] = {}
        self.pending_events: list[dict] = []
        self._state: dict | None = None
        self._state_mtime: tuple = ()

    # -- commands -------------------------------------------------------------------------------
    def send(self, *commands: dict) -> list[int]:
        """Queue commands (``{"cmd": name, ...args}``) as one file; returns their ids."""
        batch, ids = [], []
        for c in commands:
            cid = next(self._ids)
            batch.append({**c, "id": cid})
            ids.append(cid)
        name = f"{next(self._file_seq):010d}.json"
        tmp = self.cmd_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(batch))
        os.replace(tmp, self.cmd_dir / name)
        return ids

    def wait(
        self, ids: list[int], timeout: float = 10.0, alive=lambda: True, check: bool = True
    ) -> list[Any]:
        """Block until every command in ``ids`` ran; return their results in order.

        Raises :class:`BridgeError` if one failed (when ``check``), :class:`EnvCrashed` if the game
        died or did not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if all(i in self._results for i in ids):
                break
            if not alive():
                raise EnvCrashed("the Minetest client died while a bridge command was pending")
            if time.monotonic() > deadline:
                raise EnvCrashed(f"bridge commands {ids} got no answer within {timeout:.0f} s (game hung?)")
            time.sleep(0.01)
        out = []
        for i in ids:
            r = self._results.pop(i)
            if check and not r.get("ok"):
                raise BridgeError(f"bridge command {r.get('cmd')!r} failed: {r.get('error')}")
            out.append(r.get("result") if r.get("ok") else r)
        return out

    def call(self, cmd: str, timeout: float = 10.0, alive=lambda: True, **args) -> Any:
        """Send one command and wait for its result."""
        return self.wait(self.send({"cmd": cmd, **args}), timeout, alive)[0]

    # -- events ---------------------------------------------------------------------------------
    def poll(self) -> None:
        """Read new lines of the event log: command outcomes by id, the rest to ``pending_events``."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        if not data:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                log.warning("bridge: unparsable event line %r", line[:200])
                continue
            if ev.get("event") == "command":
                self._results[int(ev.get("id", -1))] = ev
                if not ev.get("ok"):
                    log.debug("bridge command failed: %s", ev)
            else:
                self.pending_events.append(ev)

    def take_events(self) -> list[dict]:
        """Game events seen since the last call, oldest first."""
        self.poll()
        evs, self.pending_events = self.pending_events, []
        return evs

    def skip_events(self) -> None:
        """Forget queued game events (used at reset, after setup commands ran)."""
        self.take_events()

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> dict | None:
        """The latest snapshot (cached until the file changes); None before the first one."""
        try:
            st = os.stat(self.state_path)
        except FileNotFoundError:
            return self._state
        key = (st.st_ino, st.st_mtime_ns, st.st_size)  # atomic rename: a new inode per snapshot
        if key != self._state_mtime:
            try:
                raw = json.loads(self.state_path.read_bytes())
            except (json.JSONDecodeError, FileNotFoundError):
                return self._state  # replaced mid-read; keep the previous snapshot
            self._state_mtime = key
            self._state = normalise_state(raw)
        return self._state


def _list(v) -> list:
    return v if isinstance(v, list) else []


def normalise_state(raw: dict) -> dict:
    """Fix Lua-to-JSON artefacts: empty tables (``null``) to lists, float counts to int."""
    s = dict(raw)
    for k in ("entities", "nodes"):
        s[k] = _list(s.get(k))
    inv = s.get("inventory") or {}
    s["inventory"] = {name: [[it, int(n)] for it, n in _list(lst)] for name, lst in inv.items()}
    for k in ("step", "events_seq", "wielded_index", "craft_width"):
        if k in s and s[k] is not None:
            s[k] = int(s[k])
    s["hp"] = float(s.get("hp") or 0)
    fur = s.get("furnace")
    if isinstance(fur, dict):
        for k in ("src", "fuel", "dst"):
            fur[k] = [[it, int(n)] for it, n in _list(fur.get(k))]
    else:
        s["furnace"] = None
    for e in s["entities"]:
        e["id"] = int(e.get("id", -1))
    return s
