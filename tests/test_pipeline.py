"""The DVC pipeline: consistency of dvc.yaml, params, notebooks and results, report rendering
from a fixture, and the smoke `dvc repro` of the whole pipeline in a temporary copy."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from jvla import closure, config, pipeline, stages
from jvla.envs.minetest.launcher import binaries_available
from jvla.paths import PROJECT_ROOT

DVC = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def _stage_notebook(stage: dict) -> str:
    body = stage.get("do", stage)
    return body["cmd"].split()[1]  # "${nb} notebooks/NN_x.ipynb ..."


def test_pipeline_yaml_is_in_sync_with_params():
    assert pipeline.main(["--check"]) == 0, "pipeline.yaml is stale: run `python -m jvla.pipeline`"


def _notebook_stages() -> dict[str, dict]:
    """The stages of dvc.yaml that run a notebook: all but the ``code`` stage."""
    return {name: st for name, st in DVC["stages"].items() if name != pipeline.CODE_STAGE}


def test_every_stage_has_its_notebook_params_and_results_folder():
    for name, stage in _notebook_stages().items():
        nb = PROJECT_ROOT / _stage_notebook(stage)
        assert nb.exists(), f"stage {name}: notebook {nb.name} missing"
        body = stage.get("do", stage)
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in body["outs"]]
        assert any(o.startswith(f"results/{name}") for o in outs), f"stage {name}: no results/{name} output"
        code = _code_deps(name)
        assert "jvla/config.py" in code, f"stage {name}: every stage reads params through jvla/config.py"
        for key in body.get("params", []):
            key = key.replace("${profile}", PARAMS["profile"])  # stages depend on their profile only
            top = key.split(".")[0]
            assert top in PARAMS, f"stage {name}: params key {key!r} is not in params.yaml"
            if "${" not in key:
                node = PARAMS
                for part in key.split("."):
                    assert part in node, f"stage {name}: params key {key!r} does not exist"
                    node = node[part]


def _code_deps(name: str) -> list[str]:
    """The files that the code fingerprint of stage ``name`` covers, as the ``code`` stage writes it."""
    text = pipeline.fingerprint(stages.STAGES[name])
    return [line.split("  ", 1)[1] for line in text.splitlines()]


def test_every_stage_depends_on_exactly_the_code_its_notebook_can_run():
    """A stage's code dep is the fingerprint of the import closure of its notebook and of the
    notebook runner (jvla.closure), one line per file, after the notebook itself; ``tasks`` iff
    that code reads the task YAMLs. The ``code`` stage writes every fingerprint, from ``jvla``
    and ``notebooks``."""
    code = DVC["stages"][pipeline.CODE_STAGE]
    assert code["deps"] == ["jvla", "notebooks"]
    written = {next(iter(o)) for o in code["outs"]}
    for name, stage in _notebook_stages().items():
        body = stage.get("do", stage)
        nb = _stage_notebook(stage)
        modules = [*closure.notebook_modules(PROJECT_ROOT / nb), stages.NOTEBOOK_RUNNER]
        assert body["deps"][0] == nb, f"stage {name}: its notebook comes first"
        fp = f"results/code/{Path(nb).stem}.txt"
        assert body["deps"][1] == fp and fp in written, f"stage {name}: its code fingerprint comes second"
        assert _code_deps(name) == closure.source_files(modules), f"stage {name}: code deps != import closure"
        assert not [d for d in body["deps"] if d.startswith("jvla")], f"stage {name}: code listed beside it"
        reads_tasks = "TASKS_DIR" in closure.imported_names(modules, "jvla.paths")
        assert ("tasks" in body["deps"]) == reads_tasks, f"stage {name}: tasks dep"


def test_a_fingerprint_changes_exactly_with_the_code_it_covers(tmp_path):
    """Writing fingerprints in a copy of the package: a module edit changes the fingerprint of the
    stages whose closure holds it and of no other; an untouched copy writes identical text."""
    shutil.copytree(PROJECT_ROOT / "jvla", tmp_path / "jvla", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT_ROOT / "notebooks", tmp_path / "notebooks")
    before = {f.name: f.read_text() for f in pipeline.write_fingerprints(root=tmp_path)}
    assert before == {
        Path(pipeline.fingerprint_path(s.notebook)).name: pipeline.fingerprint(s) for s in stages.TABLE
    }
    touched = "jvla/report/tables.py"
    with open(tmp_path / touched, "a") as fh:
        fh.write("# touched\n")
    after = {f.name: f.read_text() for f in pipeline.write_fingerprints(root=tmp_path)}
    changed = {n for n in before if before[n] != after[n]}
    holders = {
        Path(pipeline.fingerprint_path(s.notebook)).name
        for s in stages.TABLE
        if touched in _code_deps(s.name)
    }
    assert changed == holders and 0 < len(holders) < len(before), (changed, holders)


def test_notebooks_import_reporting_only_from_their_own_stage():
    """Touching one stage's report code reruns only that stage: the paper tables and figures are
    code of the tables and figures stages alone, a training run's report of the training stages."""
    shared = {
        "jvla/report/tables.py",
        "jvla/report/figures.py",
        "jvla/report/paper.py",
        "jvla/report/readme.py",
    }
    for name in _notebook_stages():
        code = set(_code_deps(name))
        # the report site quotes the paper's claims and Figure 5 threshold from paper.py
        allowed = {"jvla/report/paper.py"} if name == "report" else set()
        if name not in ("tables", "figures"):
            assert not (code & shared) - allowed, f"stage {name} depends on {sorted(code & shared)}"
        if name not in stages.TRAIN_STAGES:
            assert "jvla/report/training.py" not in code, f"stage {name} depends on the training report"
    base = set(_code_deps("base"))
    assert {"jvla/action_tokenizer.py", "jvla/actions.py", "jvla/data/schema.py"} <= base, "the vocabulary"
    assert "jvla/models.py" in _code_deps("evaluate")


def test_dvc_stages_are_the_stage_table():
    assert list(DVC["stages"]) == [pipeline.CODE_STAGE, *(s.name for s in stages.TABLE)]
    assert len(set(stages.STAGES)) == len(stages.TABLE)
    for s in stages.TABLE:
        body = DVC["stages"][s.name]
        assert ("foreach" in body) == (s.foreach is not None)
        body = body.get("do", body)
        assert body["params"] == list(s.all_params())
        assert body["deps"][len(body["deps"]) - len(s.deps) :] == list(s.deps), s.name
        if s.is_training:
            assert {"training", *s.sections} <= set(body["params"]), s.name
    assert set(pipeline.graph(config.load())["runs"]) == set(stages.RUN_STAGES)


def test_a_new_row_of_the_stage_table_becomes_a_dvc_stage():
    """The generator reads the table: a row added to it is a stage with its notebook's closure."""
    extra = stages.Stage(
        "probe",
        "notebooks/09_tables.ipynb",
        "a probe",
        params=("report",),
        deps=("results/evaluate",),
        outs=({"results/probe": {"cache": False}},),
    )
    g = pipeline.graph(config.load())
    dvc = yaml.safe_load(pipeline.render_dvc(g, table=(*stages.TABLE, extra)))
    assert list(dvc["stages"])[-1] == "probe"
    probe = dvc["stages"]["probe"]
    tables = DVC["stages"]["tables"]["deps"]
    assert probe["deps"] == [*tables[: len(tables) - len(stages.STAGES["tables"].deps)], "results/evaluate"]
    assert probe["cmd"] == "${nb} notebooks/09_tables.ipynb results/probe/09_tables.ipynb"


def test_stage_kinds_are_written_out_only_in_the_stage_table():
    """No module that reads stage kinds keeps its own list of them (they come from jvla.stages)."""
    names = set(stages.STAGES)
    readers = ["jvla/training/runner.py", "jvla/variants.py", "jvla/pipeline.py", "jvla/report/results.py"]
    for rel in readers:
        for node in ast.walk(ast.parse((PROJECT_ROOT / rel).read_text())):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and items:
                kinds = {n.value for n in items if isinstance(n, ast.Constant) and n.value in names}
                assert len(kinds) < 2, f"{rel}:{node.lineno} lists stage kinds {sorted(kinds)}"
    from jvla.report import results
    from jvla.training import runner

    assert {s.name: s.trainable for s in stages.TABLE if s.trainable} == runner.TRAINABLE
    assert results.TRAIN_STAGES == stages.TRAIN_STAGES


def test_every_notebook_is_used_by_a_stage():
    used = {_stage_notebook(s) for s in _notebook_stages().values()}
    assert {f"notebooks/{p.name}" for p in NOTEBOOKS} == used


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one parameters cell"
    assert nb.cells[0].cell_type == "markdown" and "paper" in nb.cells[0].source.lower(), (
        "a title naming the paper part"
    )
    for c in code:
        assert not c.outputs and c.execution_count is None, "outputs stripped in git"
        tree = ast.parse(c.source)
        defs = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        ]
        assert not defs, f"no function or class definitions in notebooks ({path.name})"
    assert "profile = None" in tagged[0].source


def test_report_renders_from_a_results_fixture(tmp_path, monkeypatch):
    """Tables and figures from a small hand-made set of result files."""
    import pandas as pd

    from jvla.report import readme
    from jvla.report.results import eval_composition, load_curves, load_eval, load_runs, load_vl

    params = config.load()
    res = tmp_path / "results"
    rng = __import__("random").Random(0)
    for name, s in params.evaluate.settings.items():
        tasks = [t.name for t in __import__("jvla.evaluation", fromlist=["x"]).select_tasks(params, s.tasks)]
        per_task = []
        for t in tasks:
            k = rng.randint(0, 10)
            per_task.append({"variant": s.variant, "setting": name, "task": t, "category": t.split("_")[0], "n": 10,
                             "successes": k, "success_rate": k / 10, "ci_low": max(0, k / 10 - 0.3),
                             "ci_high": min(1, k / 10 + 0.3), "infra_failed": 0, "mean_steps_success": 50.0,
                             "malformed_rate": 0.0})  # fmt: skip
        cats = {}
        for r in per_task:
            cats.setdefault(r["category"], []).append(r["success_rate"])
        v = params.variants[s.variant]
        d = res / "evaluate" / name
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({
            "setting": name, "variant": s.variant, "backbone": v.backbone, "apt_chunk": v.apt_chunk,
            "ft_chunk": v.ft_chunk, "inference_chunk": s.inference_chunk or v.ft_chunk, "history": 2,
            "episodes": 10 * len(tasks), "fps": 20.0 * (s.inference_chunk or 1), "malformed_rate": 0.0,
            "infra_failures": 0, "tasks": tasks, "per_task": per_task,
            "per_category": [{"variant": s.variant, "setting": name, "category": c, "n_tasks": len(x),
                              "success_rate": sum(x) / len(x)} for c, x in cats.items()]}))  # fmt: skip
    for m in params.vl_bench.models:
        d = res / "vl_bench"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{m.replace('/', '-')}.json").write_text(json.dumps({"model": m, "benchmarks": {
            b: {"all": {"n": 20, "correct": rng.randint(0, 20), "accuracy": 0.5}} for b in ("knowledge", "vision", "grounding")}}))  # fmt: skip
    for stage, run in (("stage2", "post/qwen2_vl/grounding"), ("finetune", "finetune/actvlp")):
        d = res / stage / run.replace("/", "-")
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"run": run, "stage": stage, "steps": 5, "train_loss_last": 1.0,
                                                    "eval": {"eval_grounding_loss": 2.0, "eval_task_c1_loss": 0.4}}))  # fmt: skip
        (d / "loss.tsv").write_text("timestamp\tstep\tloss\n0\t1\t3.0\n0\t2\t2.0\n")
    per_task, per_cat, settings = load_eval(res)
    built = readme.write_tables(params, per_task, per_cat, settings, load_vl(res), load_runs(res),
                                eval_composition(res), res / "tables")  # fmt: skip
    assert len(built["table1"]) == 8 + 3, "eight reported rows and our three"
    ours = built["table1"].iloc[-1]
    assert "[" in ours["mine:obsidian"], "measured cells carry their interval"
    assert ours["mine:iron_ore"] == "-", "a column no main setting plays stays empty"
    assert set(built["claims"].verdict) <= {"reproduced", "not reproduced", "inconclusive", "not measured"}
    assert (res / "tables" / "README.md").read_text().count("### ") >= 9
    figs = readme.write_figures(params, per_task, settings, load_runs(res), load_curves(res), res / "figures")
    assert {"figure4", "figure5", "figure6", "loss_curves"} <= set(figs)
    assert (res / "figures" / "figure4.png").stat().st_size > 10_000
    assert isinstance(load_curves(res), pd.DataFrame)


def test_table4_compares_its_rows_on_the_tasks_they_all_played():
    import pandas as pd

    from jvla.report import tables

    names = ["main_actvlp", "t4_a", "t4_b", "t4_c", "t4_d"]
    rows = [("main_actvlp", "craft_diamond_sword", 0.2), ("main_actvlp", "smelt_cooked_beef", 0.9)]
    rows += [(n, "craft_diamond_sword", 0.1 * i) for i, n in enumerate(names[1:4], 1)]  # t4_d: no results
    per_task = pd.DataFrame([{"setting": n, "task": t, "n": 10, "success_rate": r} for n, t, r in rows])
    settings = pd.DataFrame({"setting": names, "fps": [10.0, 9.0, 18.0, 27.0, None]})
    t4 = tables.table4(per_task, settings, names).set_index("setting")["success (ours)"]
    assert t4.tolist() == ["0.20", "0.10", "0.20", "0.30", "-"], "smelt, played by main alone, is left out"


def test_the_learning_study_writes_outside_the_pipelines_outputs():
    """DVC clears a stage's outputs before it runs it: a study figure in one would be deleted."""
    outs = set()
    for st in DVC["stages"].values():
        for o in st.get("outs", []) + st.get("do", {}).get("outs", []):
            outs.add(next(iter(o)) if isinstance(o, dict) else o)
    nb = nbformat.read(PROJECT_ROOT / "benchmarks" / "learning_study.ipynb", as_version=4)
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    stems = [ast.literal_eval(n.value) for n in ast.parse(params.source).body
             if isinstance(n, ast.Assign) and n.targets[0].id.endswith("_stem")]  # fmt: skip
    assert stems, "the study notebook names its figure stems"
    for stem in stems:
        hits = [o for o in outs if "$" not in o and (stem == o or stem.startswith(o.rstrip("/") + "/"))]
        assert not hits, f"{stem} lies inside the DVC output {hits}"


def test_readme_section_injection(tmp_path):
    from jvla.report.readme import BEGIN, END, inject

    f = tmp_path / "README.md"
    f.write_text("# x\n\nintro\n")
    once = inject(f, "table A")
    f.write_text(once)
    twice = inject(f, "table B")
    assert BEGIN in twice and "table B" in twice and "table A" not in twice and twice.count(END) == 1


def _copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")  # fmt: skip
    for f in files:
        if not f:
            continue
        src = PROJECT_ROOT / f.decode()
        if src.is_file() and not f.decode().startswith("results/"):
            (dst / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f.decode())


def _placeholders(repo: Path) -> list[str]:
    """Create an empty stand-in for every output and dependency of the pipeline in ``repo`` that
    does not exist (a file where the path has a suffix, else a folder holding one file); return
    the addresses of its stages (``name`` or ``name@key``)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with contextlib.chdir(repo), Repo(".") as r:
        found = list(r.index.stages)
        paths = [o.fs_path for s in found for o in s.outs]
        paths += [d.fs_path for s in found for d in s.deps if not isinstance(d, ParamsDependency)]
        names = [s.addressing for s in found]
    for f in map(Path, paths):
        if f.suffix and not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("")
        elif not f.exists():
            f.mkdir(parents=True)
            (f / "placeholder").write_text("")
    return names


@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory):
    """A copy of the repository whose every stage is recorded in dvc.lock as up to date, over
    placeholder outputs (``dvc commit``, smoke profile): ``(repo, run, stage addresses)``."""
    repo = tmp_path_factory.mktemp("status") / "repo"
    repo.mkdir()
    _copy_repo(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    p = repo / "params.yaml"
    p.write_text(p.read_text().replace("\nprofile: default", "\nprofile: smoke", 1))
    env = dict(
        os.environ,
        DVC_NO_ANALYTICS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.pop("JVLA_ROOT", None)
    run = lambda *a: subprocess.run(a, cwd=repo, env=env, check=True, capture_output=True, text=True)  # noqa: E731
    run("git", "init", "-q")
    run("dvc", "config", "--local", "core.no_scm", "true")
    run(sys.executable, "-m", "jvla.pipeline", "--fingerprints")  # the code stage's real outputs
    names = _placeholders(repo)
    run("dvc", "commit", "--force", "--quiet")
    assert json.loads(run("dvc", "status", "--json").stdout) == {}, "every stage up to date after commit"
    return repo, run, names


@pytest.mark.slow
def test_touching_a_module_changes_exactly_the_stages_that_can_run_it(committed_copy):
    """Append a comment to modules of different reach and rerun the ``code`` stage; ``dvc status``
    must report changed code fingerprints for exactly the stages (every item) whose notebook's
    import closure contains the module, and nothing else."""
    repo, run, names = committed_copy
    closures = {
        s.name: set(closure.source_files([*closure.notebook_modules(repo / s.notebook, repo),
                                          stages.NOTEBOOK_RUNNER], repo))
        for s in stages.TABLE
    }  # fmt: skip
    evaluate_only = sorted(
        closures["evaluate"] - set().union(*(c for n, c in closures.items() if n != "evaluate"))
    )
    probes = ["jvla/report/tables.py", "jvla/report/training.py", evaluate_only[0]]
    for f in probes:
        with open(repo / f, "a") as fh:
            fh.write("# touched\n")
    assert pipeline.CODE_STAGE in json.loads(run("dvc", "status", "--json").stdout), "code deps changed"
    run("dvc", "repro", "--single-item", pipeline.CODE_STAGE)
    status = json.loads(run("dvc", "status", "--json").stdout)
    stage_of = {a: stages.STAGES[a.split("@")[0]] for a in names if a != pipeline.CODE_STAGE}
    changed = {
        a: {d for e in status.get(a, []) if isinstance(e, dict) for d in e.get("changed deps", {})}
        for a in stage_of
    }
    assert set(status) <= set(stage_of), f"only notebook stages change: {sorted(status)}"
    for a, stage in stage_of.items():
        touched = {f for f in probes if f in closures[stage.name]}
        want = {pipeline.fingerprint_path(stage.notebook)} if touched else set()
        assert changed[a] == want, f"{a}: closure holds {sorted(touched)}, dvc status {sorted(changed[a])}"
    for f in probes:
        assert any(f in c for c in closures.values()), f"{f} is in no stage's closure"


@pytest.mark.slow
@pytest.mark.minetest
@pytest.mark.skipif(not binaries_available(), reason="needs minetest and Xvfb (`make apt`)")
def test_smoke_dvc_repro_end_to_end(tmp_path):
    """The real dvc.yaml, every notebook and stage, on the smoke profile, in a temporary copy."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    p = repo / "params.yaml"
    p.write_text(p.read_text().replace("\nprofile: default", "\nprofile: smoke", 1))
    # A run from scratch: the default profile's lock records nothing the smoke run can reuse, and DVC
    # rereads and rewrites the whole lock after every stage (measured: 2.9 s of DVC time for one
    # stage with a 9.9k-line lock, 1.0 s with a 1.6k-line one).
    (repo / "dvc.lock").unlink()
    env = dict(os.environ, DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
    env.pop("JVLA_ROOT", None)
    run = lambda *a: subprocess.run(a, cwd=repo, env=env, check=True, capture_output=True, text=True)  # noqa: E731
    run("git", "init", "-q")
    run("dvc", "config", "--local", "core.no_scm", "true")
    # Independent stages side by side (jvla/repro.py). A smoke stage is mostly fixed cost: DVC's
    # rewrite of dvc.lock, which it does holding the repository lock (so rewrites queue), the kernel
    # and the imports (benchmarks/stage_overhead.py). A third job fills the cores while one waits;
    # measured on 2 cores, one run each: 723 s with 2 jobs, 650 s with 3, 641 s with 4 (README).
    proc = subprocess.run([sys.executable, "-m", "jvla.repro", "--jobs", "3"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = repo / "results"
    for f in ("tables/table1.md", "tables/claims.md", "tables/README.md", "figures/figure4.png", "figures/figure5.png",
              "figures/figure6.png", "evaluate/main_actvlp/summary.json", "data/knowledge.json",
              "site/index.html", "site/settings/main_actvlp.html"):  # fmt: skip
        assert (res / f).exists(), f"results/{f} was not produced"
    summary = json.loads((res / "evaluate" / "main_actvlp" / "summary.json").read_text())
    assert summary["episodes"] >= 4 and summary["malformed_rate"] == 0.0, (
        "constrained decoding: no malformed action"
    )
    assert list((res / "evaluate" / "main_actvlp" / "videos").glob("*.mp4")), "rollout videos written"
    status = subprocess.run(["dvc", "status"], cwd=repo, env=env, capture_output=True, text=True)
    assert "up to date" in status.stdout, status.stdout[-2000:]


def test_executed_notebooks_carry_no_machine_path(tmp_path):
    """jvla.notebook.clean makes the repository root relative in every text output."""
    import nbformat

    from jvla.notebook import clean

    root = tmp_path / "checkout"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=f"saved to {root}/models/base\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"'{root}'"}, execution_count=1),
        nbformat.v4.new_output("error", ename="E", evalue=f"{root}/x", traceback=[f"File {root}/jvla/a.py"]),
    ]
    nb.cells.append(cell)
    text = nbformat.writes(clean(nb, root))
    assert str(root) not in text
    assert "saved to models/base" in text and "'.'" in text and "File jvla/a.py" in text
