"""Episode records: one JSON line per finished episode in ``episodes.jsonl``, crash-safe and
resumable.

Every finished episode is appended at once (see :class:`EpisodeRecord` for the keys). A rerun reads
the file and skips the episodes already there, so an interrupted evaluation resumes without
redoing or losing finished episodes; a torn last line (a crash mid-write) is dropped with a
warning and repaired before the next append.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode, one line of ``episodes.jsonl``.

    Attributes:
        variant: model variant evaluated (e.g. ``actvlp``), or ``expert``.
        setting: evaluation setting within the variant (e.g. ``chunk2``), ``""`` by default.
        backend: ``minetest`` | ``minestudio`` | ``fake``.
        task, category: the task name and its category.
        episode: index within the task, 0-based.
        seed: the env seed used (derived from the base seed, task and episode).
        status: ``ok`` or ``infra_failed`` (every attempt crashed; excluded from rates).
        success: reward > 0 within ``max_steps``.
        steps: env steps taken (the success step, or ``max_steps``).
        wall_s: wall time of the successful attempt, seconds.
        infra_failures: attempts lost to game crashes before this record.
        n_decisions: policy calls (one per executed action chunk).
        agent_s: wall time the policy spent deciding for this episode, seconds (its share of
            batched calls); ``n_actions / agent_s`` is the agent's decision rate without the game.
        n_actions: actions executed.
        n_malformed: decoded segments replaced by the null action.
        instruction: the instruction given to the policy.
        video: repo-relative path of the rollout video, or ``""``.
    """

    variant: str
    setting: str
    backend: str
    task: str
    category: str
    episode: int
    seed: int
    status: str
    success: bool
    steps: int
    wall_s: float
    infra_failures: int = 0
    n_decisions: int = 0
    n_actions: int = 0
    n_malformed: int = 0
    instruction: str = ""
    video: str = ""
    agent_s: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.variant, self.setting, self.task, self.episode)


class EpisodeLog:
    """Append-only JSONL of :class:`EpisodeRecord` with crash-safe appends and resume."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> list[EpisodeRecord]:
        """All complete records; a torn last line (crash mid-write) is dropped with a warning."""
        if not self.path.exists():
            return []
        names = {f.name for f in dataclasses.fields(EpisodeRecord)}
        out = []
        for i, line in enumerate(self.path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(EpisodeRecord(**{k: v for k, v in d.items() if k in names}))
            except (json.JSONDecodeError, TypeError) as e:
                log.warning("%s line %d is not a complete record (%s); ignoring it", self.path.name, i + 1, e)
        return out

    def done(self) -> set[tuple[str, str, str, int]]:
        return {r.key for r in self.read()}

    def append(self, record: EpisodeRecord) -> None:
        # Repair a torn last line first so the new record starts on its own line.
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                with open(self.path, "a") as f:
                    f.write("\n")
        line = json.dumps(dataclasses.asdict(record), sort_keys=True) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
