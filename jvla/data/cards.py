"""Dataset cards (JSON + Markdown under ``results/data/``) and sample rendering for the notebook.

A card holds counts per split and per kind/category, turns and images per sample, the on-disk
size, the seed and the params section that produced it. No timestamps: the same data gives the
same card.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from jvla.data.schema import render_point, source_of


def category_of(label: list[str], source: dict[str, Any]) -> str:
    """Eval samples: the reference's category; train samples: the kind (``label[0]``) and, for
    trajectories and grounding, the task / GUI-vs-embodied."""
    ref = source.get("ref")
    if ref:
        return ref["category"]
    if label and label[0] == "trajectory":
        return label[1]
    if label and label[0] == "grounding":
        return label[2]
    return label[0] if label else "?"


def dir_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def describe(dd: Any) -> dict[str, Any]:
    """Counts of a ``DatasetDict`` (schema datasets) per split and category."""
    out: dict[str, Any] = {}
    for split, ds in dd.items():
        cats: Counter = Counter()
        for row in ds.select_columns(["label", "source"]).to_list():
            cats[category_of(row["label"], source_of(row))] += 1
        turns = _total_length(ds, "conversations")
        out[split] = {
            "samples": len(ds),
            "by_category": dict(sorted(cats.items())),
            "turns_per_sample": round(turns / max(1, len(ds)), 2),
            "images": _total_length(ds, "image_bytes"),
        }
    return out


def _total_length(ds, column: str) -> int:
    """Sum of the list lengths of ``column`` (read from Arrow, without decoding rows)."""
    import pyarrow.compute as pc

    if len(ds) == 0:
        return 0
    col = ds.data.table.column(column)
    if ds._indices is not None:  # a selection: count only the selected rows
        col = col.take(ds._indices.column(0))
    return int(pc.sum(pc.list_value_length(col)).as_py() or 0)


def write_card(
    name: str,
    path: str | Path | None,
    stats: dict[str, Any],
    config: dict[str, Any],
    seed: int,
    results_dir: str | Path,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``<results_dir>/<name>.json`` and ``.md``; return the card dict.

    Args:
        path: the dataset folder (for its size), or None.
        stats: usually :func:`describe` of the dataset.
        config: the params section that produced it (plain data).
    """
    card = {"name": name, "seed": seed, "splits": stats, "config": config}
    if path is not None:
        card["bytes"] = dir_size(path)
    if extra:
        card.update(extra)
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    lines = [f"# Dataset `{name}`", "", f"Seed {seed}."]
    if "bytes" in card:
        lines[-1] += f" On disk: {card['bytes'] / 1e6:.1f} MB."
    for split, s in stats.items():
        lines += ["", f"## {split}", ""]
        if isinstance(s, dict) and "by_category" in s:
            lines += [
                f"{s['samples']} samples, {s['turns_per_sample']} turns and "
                f"{s['images'] / max(1, s['samples']):.2f} images per sample.",
                "",
                "| category | samples |",
                "|---|---|",
            ]
            lines += [f"| {k} | {v} |" for k, v in s["by_category"].items()]
        else:
            lines.append(f"```\n{json.dumps(s, indent=1, sort_keys=True)}\n```")
    for k, v in (extra or {}).items():
        lines += ["", f"## {k}", "", f"```\n{json.dumps(v, indent=1, sort_keys=True)}\n```"]
    lines += ["", "## config", "", f"```\n{json.dumps(config, indent=1, sort_keys=True)}\n```", ""]
    (out / f"{name}.md").write_text("\n".join(lines))
    return card


def render_sample(sample: dict[str, Any], max_chars: int = 1200, width: int = 640):
    """A ``PIL.Image`` of one sample: its images side by side (points and reference boxes
    drawn) above the conversation text (point items rendered in the paper's format)."""
    from PIL import Image, ImageDraw

    from jvla.data.schema import decode_images

    images = decode_images(sample)
    ref = source_of(sample).get("ref") or {}
    drawn = []
    for k, im in enumerate(images):
        im = im.copy()
        d = ImageDraw.Draw(im)
        w, h = im.size
        if k == len(images) - 1:
            for turn in sample["conversations"]:
                for it in turn["content"]:
                    if it["type"] == "point":
                        for x, y in it["point"]:
                            u, v = x * w / 100, y * h / 100
                            d.ellipse([u - 4, v - 4, u + 4, v + 4], outline=(255, 255, 0), width=2)
                            d.text((u + 5, v - 5), it.get("label") or "", fill=(255, 255, 0))
            for b in ref.get("boxes") or []:
                d.rectangle(
                    [b[0] * w / 1000, b[1] * h / 1000, b[2] * w / 1000, b[3] * h / 1000], outline=(255, 0, 0)
                )
        drawn.append(im)
    lines = []
    for turn in sample["conversations"]:
        parts = []
        for it in turn["content"]:
            if it["type"] == "text":
                parts.append(it["text"])
            elif it["type"] == "image":
                parts.append("<image>")
            else:
                parts.append(render_point(it["point"], it.get("label") or ""))
        lines.append(f"{turn['role']}: {''.join(parts)}")
    text = "\n".join(lines)
    text = text if len(text) <= max_chars else text[:max_chars] + " ..."
    wrapped = []
    for line in text.split("\n"):
        while len(line) > width // 7:
            wrapped.append(line[: width // 7])
            line = line[width // 7 :]
        wrapped.append(line)
    strip_h = 14 * len(wrapped) + 10
    if drawn:
        scale = width / sum(im.width for im in drawn)
        drawn = [im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale)))) for im in drawn]
    img_h = max((im.height for im in drawn), default=0)
    canvas = Image.new("RGB", (width, img_h + strip_h), (255, 255, 255))
    x = 0
    for im in drawn:
        canvas.paste(im, (x, 0))
        x += im.width
    ImageDraw.Draw(canvas).multiline_text((5, img_h + 5), "\n".join(wrapped), fill=(0, 0, 0), spacing=2)
    return canvas
