"""``nbflow export --to cwl``: ``cwltool --validate`` accepts the workflow and ``cwltool
--no-container`` (PyPI's cwltool, the local python) runs it to the values ``nbflow run``
produced, on every example notebook and on one with ``in:`` files and every parameter kind."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nbflow import load_pipeline
from nbflow.cli import main as cli
from nbflow.export import step_functions
from nbflow.outfiles import expand

from ..conftest import NOTEBOOKS, code, step, write_notebook
from .test_against_papermill import same
from .test_export_script import nbflow_values

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def cwltool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(BIN / "cwltool"), *args], cwd=cwd, capture_output=True, text=True, env=env)


def assert_cwl_matches(path: Path, job_changes: dict | None = None) -> dict:
    """Export ``path`` to CWL, validate and run it; compare its outputs with ``nbflow run``'s."""
    folder = path.with_name(path.stem + "-cwl")
    assert cli(["export", str(path), "--to", "cwl"]) == 0
    workflow, job = folder / f"{path.stem}.cwl", folder / f"{path.stem}-job.yml"
    validated = cwltool("--validate", str(workflow), cwd=path.parent)
    assert validated.returncode == 0 and "is valid CWL" in validated.stdout + validated.stderr, validated.stderr

    params = {}
    if job_changes:
        values = yaml.safe_load(job.read_text())
        values.update(job_changes)
        job.write_text(yaml.safe_dump(values))
        params = job_changes
    run = load_pipeline(path).run(params)
    assert run.status == "done", run.error

    outdir = path.parent / "cwl-out"
    ran = cwltool("--no-container", "--outdir", str(outdir), str(workflow), str(job), cwd=path.parent)
    assert ran.returncode == 0, ran.stderr[-3000:]
    outputs = json.loads(ran.stdout)
    expected = nbflow_values(path, run.id)
    pipeline = load_pipeline(path)
    compared = {}
    for name, fn in step_functions(pipeline).items():
        for value in fn.returns:
            with open(outputs[f"{name}_{value}"]["path"], "rb") as f:
                compared[value] = pickle.load(f)
    assert compared.keys() == expected.keys()
    for value in expected:
        assert same(compared[value], expected[value]), f"{path.name}: {value} differs from nbflow's"
    for name in pipeline.order:
        for out_file in pipeline.steps[name].out_files:
            key = f"{name}_out_{''.join(c if c.isalnum() else '_' for c in out_file)}"
            got, files = outputs[key], expand(path.parent, out_file)
            if got is None:  # an optional output nbflow did not see either
                assert files == []
            elif isinstance(got, list):  # a glob
                assert {Path(o["path"]).name: Path(o["path"]).read_bytes() for o in got} == {
                    Path(f).name: (path.parent / f).read_bytes() for f in files
                }
            elif got["class"] == "Directory":
                folder = Path(got["path"])
                assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == {
                    f[len(out_file) :]: (path.parent / f).read_bytes() for f in files
                }
            else:
                assert Path(got["path"]).read_bytes() == (path.parent / out_file).read_bytes()
    return compared


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_every_example_runs_in_cwltool_to_nbflows_values(notebook, tmp_path):
    path = tmp_path / notebook
    shutil.copy(NOTEBOOKS / notebook, path)
    if load_pipeline(path).language.name != "Python":  # refused in one line (test_export_script)
        assert cli(["export", str(path), "--to", "cwl"]) == 2
        return
    assert assert_cwl_matches(path)


def test_cwl_inputs_files_and_parameter_kinds(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.txt").write_text("3\n4\n5\n")
    path = write_notebook(
        tmp_path / "files.ipynb",
        [
            code("import json"),
            code(
                "scale = 2\nfactor = 0.5\nname = 'run'\nloud = False\nweights = [1, 2, 3]\nextra = {'k': (1, 2)}",
                "parameters",
            ),
            step("read", "numbers = [int(x) for x in open('data/numbers.txt')]", "in:data/numbers.txt"),
            step(
                "compute",
                "total = sum(n * w for n, w in zip(numbers, weights)) * scale * factor\n"
                "with open('report.json', 'w') as fh:\n    json.dump({'name': name, 'total': total, 'loud': loud}, fh)",
                "out:report.json",
                "keep:total",
            ),
            step(
                "again",
                "report = json.load(open('report.json'))\nshape = (extra['k'], loud)",
                "in:report.json",
                "keep:report",
                "keep:shape",
            ),
        ],
    )
    assert cli(["export", str(path), "--to", "cwl"]) == 0
    workflow = yaml.safe_load((tmp_path / "files-cwl" / "files.cwl").read_text())
    assert workflow["cwlVersion"] == "v1.2" and workflow["class"] == "Workflow"
    assert list(workflow["steps"]) == ["read", "compute", "again"]
    assert workflow["inputs"]["in_data_numbers_txt"]["type"] == "File"
    assert workflow["inputs"]["weights"]["type"] == {"type": "array", "items": "long"}
    assert workflow["inputs"]["loud"]["type"] == "boolean"
    got = assert_cwl_matches(path, {"scale": 3, "loud": True, "weights": [2, 2, 2], "name": "x y"})
    assert got["total"] == (3 + 4 + 5) * 2 * 3 * 0.5
    assert got["report"] == {"name": "x y", "total": 36.0, "loud": True}
    assert got["shape"] == ((1, 2), True)


def test_cwl_types_of_folder_glob_and_optional_outputs(tmp_path):
    path = write_notebook(
        tmp_path / "outs.ipynb",
        [
            step(
                "make",
                "import pathlib\npathlib.Path('parts').mkdir(exist_ok=True)\npathlib.Path('parts/a.txt').write_text('a')\n"
                "pathlib.Path('p1.png').write_text('1')\nn = 1",
                "out:parts/",
                "out:p*.png",
                "out?:maybe.txt",
            ),
        ],
    )
    assert cli(["export", str(path), "--to", "cwl"]) == 0
    workflow = yaml.safe_load((tmp_path / "outs-cwl" / "outs.cwl").read_text())
    types = {k: v["type"] for k, v in workflow["outputs"].items() if k.startswith("make_out_")}
    assert types == {
        "make_out_parts_": "Directory",
        "make_out_p__png": {"type": "array", "items": "File"},
        "make_out_maybe_txt": "File?",
    }
    assert_cwl_matches(path)  # valid CWL; cwltool collects the folder, the glob and no optional file
