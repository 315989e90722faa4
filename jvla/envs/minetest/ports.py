"""Loopback UDP ports for game servers, leased among all processes of this machine.

Every :class:`~jvla.envs.minetest.launcher.GameProcess` runs its server on a port held by a
:class:`PortLease`, so that instances started side by side (evaluation stages in parallel, each
with its own games) never share a port. Server ports are drawn outside the kernel's ephemeral
range where there is room (:func:`server_port_candidates`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import socket
import tempfile
from pathlib import Path

from jvla.envs.base import EnvCrashed

log = logging.getLogger(__name__)


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for ephemeral ports (``bind(0)``, a client's own socket), inclusive."""
    try:
        lo, hi = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999  # Linux's default
    return lo, hi


def server_port_candidates() -> range:
    """Ports a game server may take: outside the ephemeral range where there is room, so that no
    program's ``bind(0)`` (every Minetest *client* socket is one) can take a reserved server port
    between its reservation and the server's bind."""
    lo, hi = _ephemeral_ports()
    if lo - 10000 >= 1000:
        return range(10000, lo)
    if 65535 - hi >= 1000:
        return range(hi + 1, 65536)
    return range(10000, 65536)  # no room outside it: collisions are left to the bind-failure retry


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortLease:
    """A loopback UDP port reserved for one game server among all processes of this machine.

    The reservation is an exclusive ``flock`` on ``<tmp>/jvla-minetest-ports/<port>.lock``, held
    (an open file descriptor, not inherited by children) until :meth:`release` or the death of the
    process; so evaluations running side by side, each with its own games, never pick the same
    port. A release deletes the file while it still holds the lock, and a lease counts only if
    the locked file is still the one at the path (the usual lock-file protocol), so the folder
    holds only live leases (and those of SIGKILLed processes, which are free to take). A port is
    leased only if it is also free right now. Ports of the wanted one first, else random ones
    from :func:`server_port_candidates`, skipping ``avoid``.
    """

    def __init__(self, want: int | None = None, avoid: set[int] | frozenset[int] = frozenset()):
        d = Path(tempfile.gettempdir()) / "jvla-minetest-ports"
        d.mkdir(exist_ok=True)
        rng = random.Random()  # OS-seeded: processes started together draw different ports
        self._fd: int | None = None
        cands = server_port_candidates()
        tries = ([want] if want is not None and want not in avoid else []) + [
            rng.choice(cands) for _ in range(200)
        ]
        for port in tries:
            if port in avoid:
                continue
            path = d / f"{port}.lock"
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                mine = os.fstat(fd).st_ino == os.stat(path).st_ino  # not unlinked by a release meanwhile
            except (BlockingIOError, FileNotFoundError):
                mine = False
            if mine and _udp_port_free(port):
                if want is not None and port != want:
                    log.warning("port %d is busy; using %d", want, port)
                self.port, self._fd, self._path = port, fd, path
                return
            if mine:  # locked but busy: leave no file behind
                path.unlink(missing_ok=True)
            os.close(fd)
        raise EnvCrashed(f"no free UDP port for the game server after {len(tries)} tries")

    def release(self) -> None:
        """Give the port back (idempotent)."""
        if self._fd is not None:
            self._path.unlink(missing_ok=True)  # while still locked: a later lease creates a new file
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.release()
