"""Loaders for the released data (paper scale), converted to our schema and validated.

* ``CraftJarvis/minecraft-vla-sft``: parquet files (``train-*.parquet``, ``valid-*.parquet``,
  possibly under ``data/``) with ``id``, ``label``, ``conversations`` and ``image_bytes`` (or
  ``image`` paths), already our schema (``official-code.md`` §A6). -> ``vla_sft`` (train / eval).
* ``CraftJarvis/minecraft-vlp`` (gated): JSONL files with ``id``, ``label``, ``conversations``,
  ``image`` (a relative path or a list, e.g. ``images/mc-caption-241104/x.jpg``) and an optional
  ``source`` dict; images live in the folder or in ``images/<file stem>.zip``. Point items are in
  percent (our schema's unit). ``bbox`` items become text in the paper's format
  (``<|object_ref_start|>X<|object_ref_end|><|box_start|>(x0,y0),(x1,y1)<|box_end|>``, [0, 1000)).
  -> ``vlp_knowledge`` (``mc-qa*``, ``hallucination``), ``vlp_vision`` (``mc-caption*``,
  ``mc-vqa*``), ``vlp_grounding`` (``mc-grounding*``); rows of ``mc-knowledge-valid`` go to the
  eval split of the kind their label names.

Nothing here downloads: point ``data.released.vla_sft`` / ``vlp`` at local copies (e.g. from
``huggingface-cli download``). No pickle: images are bytes, rows JSON / Arrow.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jvla.data.schema import OBJECT_REF, normalise, to_1000

if TYPE_CHECKING:
    from jvla.config import ReleasedDataConfig

log = logging.getLogger(__name__)
BOX = ("<|box_start|>", "<|box_end|>")


def _item(it: dict[str, Any]) -> dict[str, Any]:
    kind = it.get("type")
    if kind == "bbox":
        b = [float(v) for v in it["bbox"]]
        x0, y0, x1, y1 = (to_1000(v) for v in b)
        text = f"{OBJECT_REF[0]}{it.get('label') or ''}{OBJECT_REF[1]}{BOX[0]}({x0},{y0}),({x1},{y1}){BOX[1]}"
        return {"type": "text", "text": text}
    if kind == "point":
        return {
            "type": "point",
            "point": [[float(x), float(y)] for x, y in it["point"]],
            "label": it.get("label"),
        }
    if kind == "image":
        return {"type": "image"}
    return {"type": kind, "text": it.get("text")}


def convert(row: dict[str, Any], image_bytes: list[bytes]) -> dict[str, Any]:
    """One released row -> a validated schema sample (raises ``SampleError`` if broken)."""
    convs = []
    for turn in row["conversations"]:
        content = turn["content"]
        if isinstance(content, str):  # plain-string content, as some chat datasets store it
            content = [{"type": "text", "text": content}]
        convs.append({"role": turn["role"], "content": [_item(it) for it in content]})
    src = row.get("source")
    return normalise(
        {
            "id": str(row["id"]),
            "label": list(row.get("label") or []),
            "conversations": convs,
            "image_bytes": image_bytes,
            "source": src if src else None,
        }
    )


# ----------------------------------------------------------------------------- minecraft-vla-sft
def _split_of(path: Path) -> str:
    name = path.name.lower()
    return (
        "eval" if name.startswith(("valid", "validation", "test")) or "/valid" in path.as_posix() else "train"
    )


def iter_vla_sft(root: str | Path, split: str, max_rows: int = 0) -> Iterator[dict[str, Any]]:
    """Schema samples of the ``split`` (``train`` / ``eval``) parquet files under ``root``."""
    import pyarrow.parquet as pq

    files = sorted(p for p in Path(root).rglob("*.parquet") if _split_of(p) == split)
    for f in files:
        n = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=256):
            for row in batch.to_pylist():
                imgs = row.get("image_bytes") or []
                if not imgs and row.get("image"):
                    paths = row["image"] if isinstance(row["image"], list) else [row["image"]]
                    imgs = [(Path(root).parent / p).read_bytes() for p in paths]
                yield convert(row, list(imgs))
                n += 1
                if max_rows and n >= max_rows:
                    break
            if max_rows and n >= max_rows:
                break


# ------------------------------------------------------------------------------- minecraft-vlp
class ImageResolver:
    """Finds a relative image path in ``root`` or inside ``root``'s zip files (indexed lazily)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._index: dict[str, tuple[zipfile.ZipFile, str]] | None = None

    def _build(self) -> dict[str, tuple[zipfile.ZipFile, str]]:
        index: dict[str, tuple[zipfile.ZipFile, str]] = {}
        for zp in sorted(self.root.rglob("*.zip")):
            zf = zipfile.ZipFile(zp)
            for member in zf.namelist():
                if member.endswith("/"):
                    continue
                for key in (member, f"images/{member}", f"images/{zp.stem}/{member}", Path(member).name):
                    index.setdefault(key, (zf, member))
        return index

    def read(self, rel: str) -> bytes:
        p = self.root / rel
        if p.is_file():
            return p.read_bytes()
        if self._index is None:
            self._index = self._build()
        for key in (rel, rel.removeprefix("images/"), Path(rel).name):
            if key in self._index:
                zf, member = self._index[key]
                return zf.read(member)
        raise FileNotFoundError(f"image {rel!r} is neither under {self.root} nor in its zip files")


def _vlp_kind(stem: str, label: list[str]) -> str | None:
    s = stem.lower()
    if s.startswith("mc-qa") or s.startswith("hallucination"):
        return "knowledge"
    if s.startswith(("mc-caption", "mc-vqa")):
        return "vision"
    if s.startswith("mc-grounding"):
        return "grounding"
    if s.startswith("mc-knowledge-valid"):
        head = (label or ["?"])[0]
        return {
            "qa": "knowledge",
            "caption": "vision",
            "vqa": "vision",
            "gui": "grounding",
            "embody": "grounding",
            "embodied": "grounding",
        }.get(head)
    return None


def iter_vlp(root: str | Path, kind: str, split: str, max_rows: int = 0) -> Iterator[dict[str, Any]]:
    """Schema samples of ``kind`` (knowledge / vision / grounding) for ``split`` under ``root``."""
    res = ImageResolver(root)
    for f in sorted(Path(root).rglob("*.jsonl")):
        valid_file = f.stem.lower().startswith("mc-knowledge-valid")
        if (split == "eval") != valid_file:
            continue
        n = 0
        with f.open() as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if _vlp_kind(f.stem, row.get("label") or []) != kind:
                    continue
                paths = row.get("image") or []
                paths = [paths] if isinstance(paths, str) else paths
                yield convert(row, [res.read(p) for p in paths])
                n += 1
                if max_rows and n >= max_rows:
                    break


def build(cfg: ReleasedDataConfig, out_dir: str | Path) -> dict[str, Any]:
    """Convert the configured local copies into ``vla_sft`` / ``vlp_<kind>`` datasets."""
    from jvla.data.store import save

    out = {}
    if cfg.vla_sft:
        out["vla_sft"] = save(
            {s: iter_vla_sft(cfg.vla_sft, s, cfg.max_rows) for s in ("train", "eval")},
            Path(out_dir) / "vla_sft",
        )
    if cfg.vlp:
        for kind in ("knowledge", "vision", "grounding"):
            out[f"vlp_{kind}"] = save(
                {s: iter_vlp(cfg.vlp, kind, s, cfg.max_rows) for s in ("train", "eval")},
                Path(out_dir) / f"vlp_{kind}",
            )
    return out
