"""The dry run of the whole pipeline at one profile: what it would execute, on what, at what cost.

::

    python -m jvla.plan --profile paper            # or: python -m jvla.pipeline --plan --profile paper

prints, without running anything: the GPU-count assumptions (``cluster``) and the launch line of a
training run; the data the data stage builds (generated sizes, released copies on disk); every
training run of the variant graph in order (:func:`jvla.variants.expand`: parents first) with its
batch arithmetic, token budget and estimated GPU-hours; the totals against the paper's reported
640 GPU-hours; and the evaluation's episode count. Then it checks what a run would need first and
exits 1 (listing each problem with its fix) when a checkpoint, a released dataset, the MineStudio
engine or Ray is missing, so a cluster job fails at submission, not hours in.

GPU-hour estimate of one run (the usual ``6 N T`` training FLOPs: forward + backward):

    tokens  T   = max_steps x total batch x max_length       (an upper bound: samples are <= max_length)
    FLOPs       = 6 x N x T                                  (N = cluster.model_params_b x 1e9)
    GPU-hours   = FLOPs / (cluster.gpu_peak_tflops x 1e12 x cluster.mfu) / 3600

It ignores that Stages I/III do not back-propagate into the frozen vision tower, evaluation
passes and checkpoint saves.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from jvla import config
from jvla.config import Params
from jvla.paths import PARAMS_FILE, PROJECT_ROOT
from jvla.variants import RunSpec, expand, train_config

# NOTE(paper App. B): 32 A800; VL post-training (Stages I/II) 128 GPU-hours, action post-training
# (Stage III) 512: 640 in all, for the main model (JARVIS-VLA-Qwen2-VL-7B).
REPORTED_GPU_HOURS = {"VL post-training (Stages I+II)": 128.0, "action post-training (Stage III)": 512.0}
# The runs of the paper's main model (variant actvlp) that the reported hours cover.
MAIN_RUNS = {
    "VL post-training (Stages I+II)": ("post/qwen2_vl/knowledge", "post/qwen2_vl/vlp"),
    "action post-training (Stage III)": ("stage3/qwen2_vl/vlp/c1",),
}


@dataclass(frozen=True)
class RunCost:
    """The batch arithmetic and compute of one training run."""

    run: RunSpec
    steps: int
    per_device: int
    grad_accum: int
    processes: int
    max_length: int

    @property
    def total_batch(self) -> int:
        return self.per_device * self.grad_accum * self.processes

    @property
    def tokens(self) -> int:
        """Upper bound on the tokens trained on: every sample at ``max_length``."""
        return self.steps * self.total_batch * self.max_length

    def gpu_hours(self, params: Params) -> float:
        c = params.cluster
        flops = 6 * c.model_params_b * 1e9 * self.tokens
        return flops / (c.gpu_peak_tflops * 1e12 * c.mfu) / 3600


def run_costs(params: Params) -> list[RunCost]:
    """Every training run of ``params.variants``, parents first (base runs that only load a
    checkpoint are left out)."""
    out = []
    for run in expand(params.variants).values():
        if run.stage == "base" and _source(params, run.backbone) != "tiny":
            continue
        cfg = train_config(params, run)
        if cfg.max_steps == 0:  # pretrain.max_steps: 0 = the random-init build, no training
            continue
        out.append(RunCost(run, cfg.max_steps, cfg.batch_size, cfg.grad_accum, params.cluster.processes,
                           cfg.max_length))  # fmt: skip
    return out


def _source(params: Params, backbone: str) -> str:
    return params.model.source if backbone == params.model.backbone else params.model.ablation_source


def _looks_like_path(src: str) -> bool:
    return src.startswith((".", "/", "~")) or Path(src).expanduser().exists()


def problems(params: Params) -> list[tuple[str, str]]:
    """``(what is missing, how to fix it)`` for everything the profile's runs need first."""
    out = []
    for key, src in (
        ("model.source", params.model.source),
        ("model.ablation_source", params.model.ablation_source),
    ):
        if src == "tiny":
            continue
        if _looks_like_path(src):
            path = Path(src).expanduser()
            path = path if path.is_absolute() else PROJECT_ROOT / path
            if not (path / "config.json").is_file():
                out.append((f"{key}: checkpoint {path} not found (no config.json)",
                            f"copy the checkpoint there, or set {key} to a local copy or a hub id"))  # fmt: skip
        elif os.environ.get("HF_HUB_OFFLINE") == "1":
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(src, "config.json"), str):
                out.append((f"{key}: hub id {src!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1",
                            f"huggingface-cli download {src}   (on a machine that reaches the hub), "
                            f"or set {key} to a local copy"))  # fmt: skip
    for key in ("vla_sft", "vlp"):
        path = getattr(params.data.released, key)
        if path and not Path(path).expanduser().is_dir():
            out.append((f"data.released.{key}: {path} is not a folder",
                        "download the dataset there (README, Paper scale) or set the key to null"))  # fmt: skip
    if params.env.backend == "minestudio":
        from jvla.envs.minestudio.precheck import find_problems

        ms = params.env.minestudio
        out += [(f"MineStudio: {p.what}", p.fix) for p in find_problems(ms.minestudio_dir, ms.gpu_render)]
    if params.evaluate.executor == "ray" and importlib.util.find_spec("ray") is None:
        out.append(("evaluate.executor: ray, but ray is not installed in this Python",
                    "pip install -c constraints.txt -e '.[scale]'"))  # fmt: skip
    return out


def render(params: Params) -> str:
    """The plan as text (see the module docstring)."""
    c, lines = params.cluster, []
    add = lines.append
    nodes = math.ceil(c.processes / c.gpus_per_node)
    add(f"# Plan: profile {params.profile}")
    add("")
    add("## Cluster (cluster.*)")
    add(
        f"- {c.processes} data-parallel processes per training run = {nodes} node(s) x {min(c.processes, c.gpus_per_node)} GPUs"
    )
    add(f"- launch, on every node: accelerate launch --config_file configs/accelerate/zero1.yaml "
        f"--num_machines {nodes} --num_processes {c.processes} --machine_rank <0..{nodes - 1}> "
        "--main_process_ip <node 0> -m jvla.training --profile " + params.profile + " --run <run>")  # fmt: skip
    add(
        f"- estimate: {c.model_params_b:g}B parameters, {c.gpu_peak_tflops:g} TFLOP/s peak per GPU, MFU {c.mfu:g}"
    )
    add("")
    add("## Data (data.*, env.backend: " + params.env.backend + ")")
    d = params.data
    add(f"- Stage I knowledge: from {d.knowledge.source} (Minecraft {d.knowledge.minecraft_version}), "
        f"{d.knowledge.turns_min}-{d.knowledge.turns_max} QA turns per dialogue")  # fmt: skip
    add(f"- Stage II frames: {d.capture.scenes} scenes x {d.capture.frames_per_scene} frames = "
        f"{d.capture.scenes * d.capture.frames_per_scene} frames; {d.vision.vqa_per_frame} VQA and "
        f"{d.grounding.queries_per_frame} grounding queries per frame")  # fmt: skip
    tasks = _trajectory_tasks(params)
    t = d.trajectories
    add(f"- Stage III trajectories: {t.episodes_per_task} expert episodes x {tasks} tasks = "
        f"{t.episodes_per_task * tasks}; fine-tuning: {t.finetune_episodes_per_task} x {tasks} = "
        f"{t.finetune_episodes_per_task * tasks}")  # fmt: skip
    for key in ("vla_sft", "vlp"):
        path = getattr(d.released, key)
        add(
            f"- released {key}: "
            + (f"{path} ({_size(path)})" if path else "not used (data.released." + key + ": null)")
        )
    add("")
    add("## Training runs, in order (parents first)")
    add(
        "| run | stage | parent | data | steps | batch = per device x accum x processes | max length | tokens (<=) | GPU-hours |"
    )
    add("|---|---|---|---|---:|---|---:|---:|---:|")
    costs = run_costs(params)
    for r in costs:
        add(f"| {r.run.name} | {r.run.stage} | {r.run.parent or '-'} | {', '.join(r.run.data) or 'generic'} | {r.steps} | "
            f"{r.total_batch} = {r.per_device} x {r.grad_accum} x {r.processes} | {r.max_length} | {r.tokens:,} | "
            f"{r.gpu_hours(params):.1f} |")  # fmt: skip
    total = sum(r.gpu_hours(params) for r in costs)
    add("")
    add("## GPU-hours")
    add(
        "GPU-hours = 6 x N x T / (peak x MFU) / 3600, T = steps x total batch x max length (tokens, upper bound),"
    )
    add(f"N = {c.model_params_b:g}e9 parameters, peak = {c.gpu_peak_tflops:g} TFLOP/s, MFU = {c.mfu:g}")
    add("")
    by_name = {r.run.name: r for r in costs}
    add("| part of the paper's main model | runs | estimated | reported (paper App. B) |")
    add("|---|---|---:|---:|")
    main_total = 0.0
    for part, names in MAIN_RUNS.items():
        est = sum(by_name[n].gpu_hours(params) for n in names if n in by_name)
        main_total += est
        add(f"| {part} | {', '.join(names)} | {est:.1f} | {REPORTED_GPU_HOURS[part]:g} |")
    add(f"| main model | | {main_total:.1f} | {sum(REPORTED_GPU_HOURS.values()):g} |")
    add(f"| every run above (all variants and ablations) | {len(costs)} runs | {total:.1f} | - |")
    if "stage3/qwen2_vl/vlp/c1" in by_name:
        s3 = by_name["stage3/qwen2_vl/vlp/c1"].tokens
        # NOTE(paper §2.3): "approximately 10 billion tokens" of trajectory data for action post-training.
        add(f"\nStage III here trains on at most {s3 / 1e9:.2f}B tokens; the paper reports ~10B tokens of "
            "action post-training data (§2.3), so its 512 GPU-hours cover more tokens than stage3.max_steps does.")  # fmt: skip
    add("")
    ev = params.evaluate
    episodes = sum(_setting_episodes(params, name) for name in ev.settings)
    add("## Evaluation")
    add(f"- {len(ev.settings)} settings, {episodes} episodes in all; executor {ev.executor}, "
        f"{ev.workers} workers x {ev.slots} games each")  # fmt: skip
    return "\n".join(lines) + "\n"


def _trajectory_tasks(params: Params) -> int:
    from jvla.envs.tasks import load_tasks

    names = params.data.trajectories.tasks or None
    backend = params.env.backend
    return len(load_tasks(suite=backend if backend == "minetest" else "paper", backend=backend, names=names))


def _setting_episodes(params: Params, name: str) -> int:
    from jvla.evaluation.settings import select_tasks

    return len(select_tasks(params, params.evaluate.settings[name].tasks)) * params.evaluate.episodes_of(name)


def _size(path: str) -> str:
    p = Path(path).expanduser()
    if not p.is_dir():
        return "missing"
    files = [f for f in p.rglob("*") if f.is_file()]
    return f"{len(files)} files, {sum(f.stat().st_size for f in files) / 1e9:.1f} GB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jvla.plan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--params", default=str(PARAMS_FILE))
    ap.add_argument("--profile", default=None, help="default | smoke | paper (default: the file's profile)")
    a = ap.parse_args(argv)
    params = config.load(a.params, profile=a.profile)
    print(render(params), end="")
    missing = problems(params)
    if missing:
        print(f"\nNOT READY: {len(missing)} problem(s) would stop this run:", file=sys.stderr)
        for i, (what, fix) in enumerate(missing, 1):
            print(f"  {i}. {what}\n     fix: " + fix.replace("\n", "\n          "), file=sys.stderr)
        return 1
    print("\nready: every checkpoint, dataset and engine this profile needs is here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
