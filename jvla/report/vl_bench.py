"""The VL-benchmark stage's own report: one model's result files under ``results/vl_bench/``.

    results/vl_bench/<model-key>.json    {model, benchmarks: {benchmark: {category: {n, correct, accuracy}}}}
    results/vl_bench/<model-key>.jsonl   one scored question per line

``<model-key>`` is the model run's key (:func:`jvla.stages.key_of`); :func:`jvla.report.results.load_vl`
reads them back for the tables stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jvla.paths import RESULTS_DIR
from jvla.stages import key_of


def write_vl(model: str, records: list[dict[str, Any]], results_root: Path = RESULTS_DIR) -> dict[str, Any]:
    """Write ``vl_bench/<model-key>.json`` (accuracy per benchmark and category) and the
    per-question ``records`` beside it (``.jsonl``); return the summary."""
    from jvla.vl_bench import accuracy_by_category

    out = Path(results_root) / "vl_bench"
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model": model, "benchmarks": {}}
    for bench in sorted({r["benchmark"] for r in records}):
        summary["benchmarks"][bench] = accuracy_by_category([r for r in records if r["benchmark"] == bench])
    (out / f"{key_of(model)}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    with open(out / f"{key_of(model)}.jsonl", "w") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    return summary
