"""``out:`` folders, globs and optional outputs (``nbflow/outfiles.py``) on both executors,
with real kernels and a real Dask LocalCluster (sharing the disk, and sending files back
as bytes as a cluster without this disk does)."""

from __future__ import annotations

import os

import pytest

from nbflow import load_pipeline
from nbflow.cache import Cache

from ..conftest import code, step

pytestmark = pytest.mark.slow


DASK_WORKERS = 1


@pytest.fixture(params=["kernel", "dask", "dask-bytes"])
def executor(request):
    if request.param == "kernel":
        return "kernel"
    from nbflow.executors.dask import DaskExecutor

    shared = None if request.param == "dask" else False
    return DaskExecutor(request.getfixturevalue("client"), announce=False, shared_cache=shared)


WRITE = (
    "import pathlib\n"
    "for i in range(n):\n"
    "    pathlib.Path('plots').mkdir(exist_ok=True)\n"
    "    pathlib.Path(f'plots/{i}.png').write_text(f'plot {i}')\n"
    "pathlib.Path('parts/sub').mkdir(parents=True, exist_ok=True)\n"
    "for i in range(n):\n"
    "    pathlib.Path(f'parts/sub/{i}.csv').write_text(f'part {i}')\n"
    "written = n"
)


def pipeline(make_notebook, glob_tag="out:plots/*.png"):
    return make_notebook(
        [
            code("n = 3", "parameters"),
            step("make", WRITE, "out:parts/", glob_tag, "out?:maybe.txt"),
            step("count", "import pathlib\ncounted = len(list(pathlib.Path('parts').rglob('*.csv')))", "in:parts"),
        ]
    )


def files(folder, sub):
    return sorted(p.relative_to(folder).as_posix() for p in (folder / sub).rglob("*") if p.is_file())


def test_folder_and_glob_outputs_are_cached_and_restored(make_notebook, tmp_path, executor):
    path = pipeline(make_notebook)
    r = load_pipeline(path).run(executor=executor)
    assert r.status == "done", r.error
    entry = Cache(tmp_path / ".nbflow" / "cache").lookup("make", r.steps["make"]["key"])
    assert {n: i["pattern"] for n, i in entry.out_files.items()} == {
        "parts/sub/0.csv": "parts/",
        "parts/sub/1.csv": "parts/",
        "parts/sub/2.csv": "parts/",
        "plots/0.png": "plots/*.png",
        "plots/1.png": "plots/*.png",
        "plots/2.png": "plots/*.png",
    }
    assert entry.manifest["out_patterns"] == ["parts/", "plots/*.png"]
    # count reads the folder make writes: it depends on make, keyed on make's entry
    assert load_pipeline(path).deps["count"] == ("make",)
    (tmp_path / "plots" / "1.png").unlink()
    (tmp_path / "parts" / "sub" / "2.csv").write_text("edited by hand")
    r = load_pipeline(path).run(executor=executor)
    assert r.status == "done" and r.steps["make"]["status"] == "cached"
    assert (tmp_path / "plots" / "1.png").read_text() == "plot 1"
    assert (tmp_path / "parts" / "sub" / "2.csv").read_text() == "part 2"


def test_files_a_step_no_longer_writes_are_removed_but_never_the_users(make_notebook, tmp_path, executor):
    path = pipeline(make_notebook)
    assert load_pipeline(path).run(executor=executor).status == "done"
    (tmp_path / "plots" / "mine.png").write_text("the user's own file")
    # fewer plots: the three files of the first run are nbflow's, gone before it runs
    r = load_pipeline(path).run({"n": 1}, executor=executor)
    assert r.status == "done", r.error
    assert files(tmp_path, "plots") == ["plots/0.png", "plots/mine.png"]
    assert files(tmp_path, "parts") == ["parts/sub/0.csv"]
    # back to n=3, cached: restored as that run wrote them; n=1 again: the extra ones removed
    assert load_pipeline(path).run({"n": 3}, executor=executor).steps["make"]["status"] == "cached"
    assert files(tmp_path, "plots") == ["plots/0.png", "plots/1.png", "plots/2.png", "plots/mine.png"]
    r = load_pipeline(path).run({"n": 1}, executor=executor)
    assert r.steps["make"]["status"] == "cached"
    assert files(tmp_path, "plots") == ["plots/0.png", "plots/mine.png"]
    assert (tmp_path / "plots" / "mine.png").read_text() == "the user's own file"


def test_a_glob_needs_a_file_unless_optional(make_notebook, tmp_path, executor):
    path = pipeline(make_notebook)
    r = load_pipeline(path).run({"n": 0}, executor=executor)
    assert r.status == "failed"
    assert r.steps["make"]["error"] == (
        f"out:plots/*.png matched no file in {tmp_path} (write at least one, or tag out?:plots/*.png)"
    )
    os.unlink(path)
    path = pipeline(make_notebook, glob_tag="out?:plots/*.png")
    r = load_pipeline(path).run({"n": 0}, executor=executor)
    assert r.status == "done", r.error
    assert load_pipeline(path).plan({"n": 0})["make"].state == "fresh"


def test_in_glob_keys_on_the_files(make_notebook, tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text("1")
    path = make_notebook([step("read", "import glob\nk = len(glob.glob('raw/*.csv'))", "in:raw/*.csv")])
    assert load_pipeline(path).run().status == "done"
    assert load_pipeline(path).plan()["read"].state == "fresh"
    (tmp_path / "raw" / "b.csv").write_text("2")
    entry = load_pipeline(path).plan()["read"]
    assert entry.state == "stale" and "input file raw/*.csv changed" in entry.reasons
