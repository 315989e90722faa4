"""The scale-out paths, run for real on this machine: evaluation on a local Ray instance, and a
Stage III run under ``accelerate launch`` with two processes (DistributedDataParallel over gloo).

Both are marked ``scale`` (``pytest -m scale``); they run in ``make test``, which installs the
``ray`` extra.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import synthetic  # tests/synthetic.py: test data
import yaml

from jvla import config
from jvla.envs.fake import FakeEnv, FakeExpert
from jvla.envs.tasks import parse_task
from jvla.evaluation import EpisodeLog, ExpertPolicy, evaluate, plan_episodes

pytestmark = pytest.mark.scale
TASKS = [
    parse_task({"name": n, "category": c, "key": f"x:{n}", "instruction": f"Do {n}.",
                "reward": {"event": "mine_block", "objects": [n]}, "max_steps": 60})
    for n, c in (("a", "mine"), ("b", "kill"), ("c", "craft"))
]  # fmt: skip


# --------------------------------------------------------------------------------------- Ray
class KillingEnv(FakeEnv):
    """The fake game; its process is SIGKILLed (a lost Ray worker: no cleanup, no flush) the first
    time an episode with seed ``kill_seed`` is reset. Every reset is logged to ``runs`` (one line
    ``<task> <seed> <pid>``), so the test can count how often each episode was started."""

    def __init__(self, runs: str, marker: str, kill_seed: int):
        super().__init__(seed=0)
        self.runs, self.marker, self.kill_seed = runs, marker, kill_seed

    def reset(self, task, seed=None):
        with open(self.runs, "a") as f:
            f.write(f"{task.name} {seed} {os.getpid()}\n")
        if seed == self.kill_seed and not os.path.exists(self.marker):
            Path(self.marker).touch()
            time.sleep(0.5)  # let Ray deliver the records this shard already yielded
            os.kill(os.getpid(), signal.SIGKILL)
        return super().reset(task, seed=seed)


def expert(space):
    return ExpertPolicy(space, lambda task: FakeExpert(space))


class Descendants(threading.Thread):
    """Every process below this one seen while it runs (polled every 0.1 s)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: dict[int, str] = {}
        self.stop = threading.Event()

    def run(self):
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            # a process may vanish between listing and reading it: skip it, keep polling
            children = []
            with contextlib.suppress(psutil.Error):
                children = me.children(recursive=True)
            for p in children:
                with contextlib.suppress(psutil.Error):
                    self.seen.setdefault(p.pid, p.name())
            time.sleep(0.1)

    def alive(self) -> dict[int, str]:
        import psutil

        out = {}
        for pid, name in self.seen.items():
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out[pid] = name
            except psutil.NoSuchProcess:
                pass
        return out


@contextlib.contextmanager
def time_limit(seconds: float):
    """Bound a Ray evaluation: past ``seconds`` this process gets SIGINT (as from Ctrl-C), so the
    executor's own cleanup shuts Ray down, and the test fails."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    except KeyboardInterrupt:
        pytest.fail(f"the Ray evaluation ran over {seconds} s")
    finally:
        timer.cancel()


def test_ray_executor_equals_local_and_resumes_a_killed_shard(tmp_path, space):
    """One setting (3 fake tasks x 4 episodes, 2 shards of 6) on a local Ray instance of 2 CPUs whose
    worker is killed in the middle of shard 0; against the local executor on the same episodes."""
    import ray

    # Ray pickles the env factory for its workers: this module is not importable there by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    specs = plan_episodes(TASKS, 4, base_seed=7)
    policy = functools.partial(expert, space)
    local = evaluate(specs, tmp_path / "local.jsonl", functools.partial(FakeEnv, seed=0), policy,
                     variant="expert", backend="fake", slots=2)  # fmt: skip

    shard0 = specs[0::2]  # the executor's shards: todo[i::workers]
    victim = shard0[3]  # the 4th of 6: its first two rounds (2 slots) are recorded by then
    runs, marker = tmp_path / "runs.txt", tmp_path / "killed"
    env = functools.partial(KillingEnv, str(runs), str(marker), victim.seed)
    watch = Descendants()
    watch.start()
    t0 = time.monotonic()
    try:
        with time_limit(120):
            recs = evaluate(specs, tmp_path / "ray.jsonl", env, policy, variant="expert", backend="fake",
                            slots=2, workers=2, executor="ray", max_retries=1)  # fmt: skip
    finally:
        watch.stop.set()
        watch.join()
    wall = time.monotonic() - t0
    assert not ray.is_initialized(), "the Ray instance the executor started must be shut down"
    assert marker.exists(), "the worker was never killed: the test did not test the retry"

    keys = [r.key for r in recs]
    assert len(keys) == len(set(keys)) == len(specs), "every episode exactly once, none lost or duplicated"
    assert len(EpisodeLog(tmp_path / "ray.jsonl").read()) == len(specs), "no duplicate line in the file"
    volatile = {"wall_s", "agent_s"}
    same = lambda r: {k: v for k, v in dataclasses.asdict(r).items() if k not in volatile}  # noqa: E731
    assert {r.key: same(r) for r in recs} == {r.key: same(r) for r in local}, (
        "the Ray records must equal the local executor's, key by key and field by field"
    )

    started: dict[tuple[str, int], int] = {}
    for line in runs.read_text().splitlines():
        task, seed, _ = line.split()
        started[(task, int(seed))] = started.get((task, int(seed)), 0) + 1
    twice = {k for k, n in started.items() if n > 1}
    # The retry runs only what episodes.jsonl lacks: the killed episode and the one beside it
    # (2 slots), never the shard's first rounds, which were recorded before the kill.
    assert (victim.task.name, victim.seed) in twice and len(twice) <= 2, f"episodes started twice: {twice}"
    assert all(started[(s.task.name, s.seed)] == 1 for s in shard0[:2]), "a recorded episode was rerun"

    deadline = time.monotonic() + 30
    while watch.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not watch.alive(), f"processes left after the Ray evaluation: {watch.alive()}"
    assert any(_ray_process(n) for n in watch.seen.values()), (
        "no Ray process was seen: Ray did not start here"
    )
    print(f"ray evaluation: {wall:.1f} s")


def _ray_process(name: str) -> bool:
    """A Ray process: its node manager (``raylet``) or a worker (``ray::<task>``). Under load the
    poller can miss the raylet while it is still a child of the driver (seen in CI: only
    ``ray::IDLE`` workers), so either counts."""
    return name == "raylet" or name.startswith("ray::")


def _minetest_available() -> bool:
    from jvla.envs.minetest.launcher import binaries_available

    return binaries_available()


@pytest.mark.minetest
@pytest.mark.skipif(not _minetest_available(), reason="needs minetest and Xvfb (`make apt`)")
def test_ray_runs_a_real_minetest_shard(tmp_path, space):
    """Two expert episodes of ``mine_dirt`` in the real game on one Ray worker, against the local
    executor: the same records (keys and counts), and no game, X server or Ray process left."""
    import ray

    from jvla.envs.factory import make_env
    from jvla.envs.tasks import load_tasks

    params = config.load(profile="smoke")
    task = next(t for t in load_tasks(backend="minetest") if t.name == "mine_dirt")
    specs = plan_episodes([dataclasses.replace(task, max_steps=200)], 2, base_seed=3)
    kw = {"variant": "expert", "backend": "minetest", "slots": 1}
    env, policy = functools.partial(make_env, params), functools.partial(ExpertPolicy, space)
    local = evaluate(specs, tmp_path / "local.jsonl", env, policy, **kw)
    watch = Descendants()
    watch.start()
    t0 = time.monotonic()
    try:
        with time_limit(180):
            recs = evaluate(specs, tmp_path / "ray.jsonl", env, policy, workers=1, executor="ray", **kw)
    finally:
        watch.stop.set()
        watch.join()
    wall = time.monotonic() - t0
    assert not ray.is_initialized()
    assert sorted(r.key for r in recs) == sorted(r.key for r in local), "the same episodes, once each"
    assert [set(dataclasses.asdict(r)) for r in recs] == [set(dataclasses.asdict(r)) for r in local]
    assert all(r.status == "ok" for r in recs), [r.status for r in recs]
    deadline = time.monotonic() + 30
    while watch.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not watch.alive(), f"processes left after the Ray evaluation: {watch.alive()}"
    names = set(watch.seen.values())
    assert "minetest" in names and any(_ray_process(n) for n in names), (
        f"expected the game under a Ray worker, saw {sorted(names)}"
    )
    print(f"ray minetest shard: {wall:.1f} s")


# ----------------------------------------------------------------------------- accelerate DDP
RUN = "stage3/qwen2_vl/none/c1"  # the `il` variant's Stage III, parent base/qwen2_vl
STEPS, SAVE = 24, 4
STAGE3 = {"max_steps": STEPS, "batch_size": 2, "grad_accum": 2, "save_steps": SAVE, "eval_steps": 1000,
          "logging_steps": 1, "warmup_steps": 0, "learning_rate": 0.005, "sampling": "random",
          "dataloader_workers": 0}  # fmt: skip
PROCESSES = 2


def launch_cmd(root: Path, processes: int = PROCESSES, extra: tuple[str, ...] = ()) -> list[str]:
    """The README's ``accelerate launch ... -m jvla.training`` on CPU. ``--multi_gpu`` selects
    accelerate's torchrun launcher, which starts the processes; the Trainer (``use_cpu``) then
    joins them over gloo. (``--cpu`` would start one process: accelerate sends it to its simple
    launcher, whatever ``--num_processes`` says.)"""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        *extra, "-m", "jvla.training", "--params", str(root / "params.yaml"), "--run", RUN,
        "--data-root", str(root / "data"), "--models-root", str(root / "models"),
    ]  # fmt: skip


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it. A process group is not enough: torchrun starts
    each rank in a session of its own (torch.distributed.elastic's ``start_new_session=True``)."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=30)


def run_launch(cmd: list[str], timeout: float, log: Path, until=None) -> int | None:
    """Run ``cmd``; kill it with every rank on timeout (then fail) or as soon as ``until()`` is
    true (returns None). Returns the exit code otherwise."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if until is not None and until():
                kill_tree(proc.pid)  # every rank at once: no cleanup, no final save
                proc.wait()
                return None
            if time.monotonic() > deadline:
                pytest.fail(f"{' '.join(cmd[:6])} ... ran over {timeout} s; log: {log.read_text()[-3000:]}")
            time.sleep(0.02)
        return proc.returncode
    finally:
        kill_tree(proc.pid)
        proc.wait()


@pytest.fixture(scope="module")
def ddp_root(tmp_path_factory):
    """A params file (smoke sizes, the Stage III above, ``cluster.processes: 2``), the tiny base
    model and 64 synthetic trajectory samples."""
    from jvla import tiny
    from jvla.data import store
    from jvla.paths import PARAMS_FILE

    root = tmp_path_factory.mktemp("ddp")
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    raw["profile"] = "smoke"
    raw["profiles"]["smoke"]["stage3"] = STAGE3
    raw["profiles"]["smoke"]["cluster"] = {"processes": PROCESSES}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = config.load(root / "params.yaml")
    tiny.build_tiny(params, "qwen2_vl", [], root / "models" / "base" / "qwen2_vl" / "model")
    samples = synthetic.synthetic_samples("trajectory", 64, params, seed=0)
    store.save({"train": samples}, root / "data" / "trajectory_c1")
    return root, params


def loss_rows(out: Path) -> list[tuple[int, float]]:
    rows = (out / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()[1:]
    return [(int(r.split("\t")[0]), float(r.split("\t")[1])) for r in rows]


def test_two_process_stage3_batch_checkpoint_logging_and_resume(ddp_root, tmp_path):
    import shutil

    from jvla import models
    from jvla.training.runner import weights_checksum

    root, params = ddp_root
    out = root / "models" / RUN
    t0 = time.monotonic()
    rc = run_launch(launch_cmd(root), 240, tmp_path / "full.log")
    assert rc == 0, (tmp_path / "full.log").read_text()[-3000:]
    wall_full = time.monotonic() - t0
    rec = json.loads((out / "run.json").read_text())

    # the effective batch: per device x processes x accumulation = the configured total, measured
    b = rec["batch"]
    total = STAGE3["batch_size"] * STAGE3["grad_accum"] * params.cluster.processes
    assert (b["per_device"], b["processes"], b["grad_accum"]) == (2, PROCESSES, 2), b
    assert b["total"] == total == 8, b
    assert b["measured_per_step"] == pytest.approx(total), (
        f"the data loaders consumed {b['measured_per_step']} samples per optimizer step, not the "
        f"configured {total}: a rank did not shard the data or an accumulation step was lost"
    )
    assert rec["global_step"] == STEPS

    # the rank-0 checkpoint loads and holds the trained weights of both ranks
    model, _ = models.load(out / "model", params)
    saved = weights_checksum(model)
    assert len(rec["weights_checksum"]) == PROCESSES, rec["weights_checksum"]
    for rank, sums in enumerate(rec["weights_checksum"]):
        assert sums == pytest.approx(saved, rel=1e-9), (
            f"rank {rank}'s trained weights differ from the saved model"
        )
    parent, _ = models.load(root / "models" / "base" / "qwen2_vl" / "model", params)
    assert weights_checksum(parent) != pytest.approx(saved, rel=1e-9), (
        "the saved model is the untrained parent"
    )

    # the loss falls; only rank 0 logged (one row per step) and wrote run.json
    rows = loss_rows(out)
    assert [s for s, _ in rows] == list(range(1, STEPS + 1)), f"steps logged (twice = two writers): {rows}"
    losses = [v for _, v in rows]
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, f"the loss did not fall: {losses}"
    assert rec["rank"] == 0 and rec["train_loss_last"] == pytest.approx(losses[-1])
    assert not (out / "checkpoints").exists(), "checkpoints are removed after a finished run"
    full_rows, full_sums = dict(rows), rec["weights_checksum"][0]

    # resume under two processes: kill every rank after the first checkpoint, launch again
    shutil.rmtree(out)
    first = out / "checkpoints" / f"checkpoint-{SAVE}" / "trainer_state.json"
    t0 = time.monotonic()
    assert run_launch(launch_cmd(root), 240, tmp_path / "killed.log", until=first.exists) is None, (
        "the run finished before it could be killed"
    )
    assert not (out / "run.json").exists() and not (out / "model").exists(), "killed mid-run"
    rc = run_launch(launch_cmd(root), 240, tmp_path / "resumed.log")
    assert rc == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    wall_resume = time.monotonic() - t0
    rec = json.loads((out / "run.json").read_text())
    k = int(rec["resumed_from"].split("-")[1])
    assert rec["resumed_from"].startswith("checkpoint-") and 0 < k < STEPS and rec["global_step"] == STEPS
    assert rec["batch"]["measured_per_step"] == pytest.approx(total)
    resumed = dict(loss_rows(out))
    after = list(range(k + 1, STEPS + 1))
    assert [resumed[s] for s in after] == pytest.approx([full_rows[s] for s in after], rel=1e-4), (
        "the resumed two-process run must reproduce the uninterrupted losses"
    )
    assert rec["weights_checksum"][0] == pytest.approx(full_sums, rel=1e-6)
    print(f"2-process Stage III: {wall_full:.1f} s; killed + resumed: {wall_resume:.1f} s")


def test_a_run_launched_on_another_process_count_stops_before_training(params):
    """The configured total batch holds only for ``cluster.processes`` processes."""
    from jvla.training.runner import check_processes

    p = dataclasses.replace(params, cluster=dataclasses.replace(params.cluster, processes=32))
    check_processes(p.stage3, p, 32, "stage3/x")
    with pytest.raises(config.ConfigError, match=r"cluster.processes: 32 .* runs on 8 processes"):
        check_processes(p.stage3, p, 8, "stage3/x")


def test_the_fsdp_config_on_cpu_stops_instead_of_training_ddp(ddp_root, tmp_path):
    """``configs/accelerate/fsdp.yaml`` with the CPU overrides cannot shard here: accelerate 1.15
    enables FSDP only on GPU-like devices, and the Trainer would silently wrap the model in DDP.
    The run must stop before its first step and say so."""
    from jvla.paths import PROJECT_ROOT

    root, _ = ddp_root
    fsdp = ("--config_file", str(PROJECT_ROOT / "configs" / "accelerate" / "fsdp.yaml"))
    cmd = launch_cmd(root, extra=fsdp)
    cmd.remove("--multi_gpu")  # the config's distributed_type chooses the launcher
    rc = run_launch(cmd, 240, tmp_path / "fsdp.log")
    text = (tmp_path / "fsdp.log").read_text()
    assert rc != 0 and "FSDP needs GPUs" in text, text[-3000:]
    assert "step 1/" not in text, "a step ran under DDP"
