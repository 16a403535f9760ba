"""The warm-up ``%load_ext nbflow`` starts (``nbflow/live/warm.py``), in real kernels started
as Jupyter starts a notebook's (``JPY_SESSION_NAME``): it imports what a restore of the
session's notebook needs, never a GUI/backend module, can be turned off, is waited for
by a restore, yields to the user's cells between imports, and survives a broken cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.live import warm

from ..conftest import code, step, write_notebook
from .live import Kernel

#: modules a fresh kernel does not have; which the warm-up imports is what is tested
WATCHED = ["pandas", "sklearn.tree._classes", "matplotlib.pyplot", "contourpy.util.mpl_renderer"]

REPORT = (
    "import json as _j, sys as _s\n"
    "from nbflow.live import warm as _w\n"
    "_w.wait()\n"
    "_u = _w.current()\n"
    "print(_j.dumps({'started': _u is not None, 'done': _u is not None and _u.done.is_set(),"
    " 'imported': _u.imported if _u else [], 'left': _u.left if _u else {}, 'failed': _u.failed if _u else {},"
    f" 'modules': {{m: m in _s.modules for m in {WATCHED!r}}}}}))"
)


def wine_like(folder: Path, setup: str = "import matplotlib.pyplot as plt\nimport pandas as pd") -> Path:
    """A pipeline whose setup imports pandas and pyplot and whose cached model needs
    scikit-learn (imported by a step's cell, not by the setup)."""
    path = write_notebook(
        folder / "p.ipynb",
        [
            code(setup),
            code("depth = 2", "parameters"),
            step(
                "fit",
                "from sklearn.tree import DecisionTreeClassifier\n"
                "frame = pd.DataFrame({'x': [0, 1, 2, 3], 'y': [0, 0, 1, 1]})\n"
                "model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(frame[['x']], frame['y'])",
            ),
            step("score", "acc = float(model.score(frame[['x']], frame['y']))"),
        ],
    )
    run = load_pipeline(path).run()
    assert run.status == "done", run.error
    return path


def report(kernel: Kernel) -> dict:
    """The warm-up's record, from a cell that waits for the whole warm-up first (as a magic
    does; a plain cell waits only for the import under way)."""
    return json.loads(kernel.text(REPORT))


@pytest.fixture
def session_kernel(tmp_path):
    kernels: list[Kernel] = []

    def start(folder: Path = tmp_path) -> Kernel:
        kernels.append(Kernel(folder, session="p.ipynb"))
        return kernels[-1]

    try:
        yield start
    finally:
        for k in kernels:
            k.close()


def test_warm_up_imports_what_the_restore_needs_and_leaves_gui_modules_to_the_main_thread(tmp_path, session_kernel):
    setup = "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom contourpy.util.mpl_renderer import MplRenderer"
    path = wine_like(tmp_path, setup)
    entry = load_pipeline(path).config.cache().latest("fit")
    assert "sklearn.tree._classes" in entry.manifest["modules"]  # recorded at write time

    kernel = session_kernel()
    assert kernel.value(f"[m for m in {WATCHED!r} if m in __import__('sys').modules]") == []
    assert kernel.text("%load_ext nbflow") == ""
    warmed = report(kernel)
    assert warmed["started"] and warmed["done"] and warmed["failed"] == {}
    # the setup's pandas and the model's scikit-learn module (from the manifest) are imported ...
    assert warmed["modules"]["pandas"] and warmed["modules"]["sklearn.tree._classes"]
    assert "pandas" in warmed["imported"] and "sklearn.tree._classes" in warmed["imported"]
    # ... pyplot is not, not even when a library the setup imports pulls it in: that import
    # is abandoned whole and left to the main thread
    assert warmed["modules"]["matplotlib.pyplot"] is False
    assert warmed["modules"]["contourpy.util.mpl_renderer"] is False
    assert warmed["left"] == {"contourpy.util.mpl_renderer": "matplotlib.pyplot"}

    shown = kernel.text("%nbflow restore")
    assert "restored from fit (run 1): " in shown and "restored from score (run 1): acc" in shown, shown
    assert kernel.value("model.score(frame[['x']], frame['y'])") == nbflow.result(path, "score", "acc") == 1.0
    # what was left to the main thread works there (the abandoned import left nothing half-made)
    assert kernel.value("type(MplRenderer()).__name__") == "MplRenderer"
    assert kernel.value("(plt.figure().number, __import__('matplotlib').get_data_path() != '')") == (1, True)


def test_warm_kernel_false_warms_nothing(tmp_path, session_kernel):
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nwarm_kernel = false\n")
    path = wine_like(tmp_path)
    kernel = session_kernel()
    assert kernel.text("%load_ext nbflow") == ""
    warmed = report(kernel)
    assert warmed["started"] is False
    assert not warmed["modules"]["pandas"] and not warmed["modules"]["sklearn.tree._classes"]
    assert "restored from score (run 1): acc" in kernel.text("%nbflow restore")
    assert kernel.value("acc") == nbflow.result(path, "score", "acc")


def test_a_restore_during_the_warm_up_waits_for_it_and_gives_the_runs_values(tmp_path, session_kernel):
    path = wine_like(tmp_path)
    kernel = session_kernel()
    # one cell: the restore is issued while the warm-up has only just started
    shown = kernel.text(
        "%load_ext nbflow\n"
        "_u = __import__('nbflow.live.warm').live.warm.current()\n"
        "%nbflow restore\n"
        "print('warm-up done when the restore returned:', _u.done.is_set())"
    )
    assert "warm-up done when the restore returned: True" in shown, shown
    assert "restored from fit (run 1): " in shown
    assert kernel.value("model.predict(frame[['x']]).tolist()") == nbflow.result(path, "fit", "frame")["y"].tolist()
    assert kernel.value("acc") == nbflow.result(path, "score", "acc")
    assert report(kernel)["failed"] == {}


def test_a_broken_cache_entry_breaks_neither_the_warm_up_nor_the_kernel(tmp_path, session_kernel):
    path = wine_like(tmp_path)
    cache = load_pipeline(path).config.cache()
    fit = cache.latest("fit")
    # a module that is gone since the entry was written, and a values file damaged on disk
    manifest = json.loads((fit.path / "manifest.json").read_text())
    manifest["modules"] = [*manifest["modules"], "sklearn.no_such_module", 42]
    (fit.path / "manifest.json").write_text(json.dumps(manifest))
    values = fit.path / "values.pkl"
    data = bytearray(values.read_bytes())
    data[len(data) // 2] ^= 0xFF
    values.write_bytes(bytes(data))
    # and an entry of the other step whose manifest is not JSON at all
    score = cache.latest("score")
    (score.path / "manifest.json").write_text("{not json")

    kernel = session_kernel()
    assert kernel.text("%load_ext nbflow") == ""
    warmed = report(kernel)
    assert warmed["done"] and warmed["modules"]["sklearn.tree._classes"]
    assert list(warmed["failed"]) == ["sklearn.no_such_module"]
    assert warmed["failed"]["sklearn.no_such_module"].startswith("ModuleNotFoundError: ")
    shown = kernel.text("%nbflow restore")  # the restore finds and names the damage, the kernel goes on
    assert "not restored: model: " in shown and "corrupt" in shown, shown
    assert kernel.value("1 + 1") == 2


def test_modules_named_by_an_entry_others_can_write_to_are_not_imported(tmp_path, session_kernel):
    path = wine_like(tmp_path)
    fit = load_pipeline(path).config.cache().latest("fit")
    fit.path.chmod(0o770)  # group-writable: its manifest could name any module

    kernel = session_kernel()
    assert kernel.text("%load_ext nbflow") == ""
    warmed = report(kernel)
    assert list(warmed["failed"]) == ["cache of step fit"], warmed["failed"]
    assert "writable by other users" in warmed["failed"]["cache of step fit"]
    assert not warmed["modules"]["sklearn.tree._classes"] and warmed["modules"]["pandas"]
    assert "writable by other users" in kernel.text("%nbflow restore")  # the restore refuses it too


def test_what_the_warm_up_may_import():
    assert warm.main_thread_only("matplotlib.pyplot") and warm.main_thread_only("PyQt5.QtCore")
    assert warm.main_thread_only("matplotlib.backends.backend_qtagg")
    assert not warm.main_thread_only("matplotlib.backends") and not warm.main_thread_only("matplotlib.figure")
    assert warm.installed("pandas") and warm.installed("json") and warm.installed("sys")
    assert not warm.installed("no_such_module_anywhere")
    assert warm.imported_by(
        "%matplotlib inline\nimport a.b, c\nfrom d.e import f\nfrom . import g\ndef h():\n    import i"
    ) == {
        "a.b",
        "c",
        "d.e",
    }


def test_the_modules_wanted_come_from_a_pipelines_setup_only(tmp_path):
    pipeline = write_notebook(tmp_path / "p.ipynb", [code("import csv\nimport mine"), step("a", "import wave")])
    plain = write_notebook(tmp_path / "plain.ipynb", [code("import csv"), code("import wave")])
    (tmp_path / "mine.py").write_text("")
    failed: dict[str, str] = {}
    assert warm.wanted_modules(pipeline, failed) == {"csv"}  # never run: no entry names modules
    assert warm.wanted_modules(plain, failed) == set()  # no steps: nothing to restore
    assert failed == {}


def test_a_module_of_the_notebooks_folder_is_never_warmed(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not warm.installed("mine") and not warm.installed("mine.sub")
    assert "mine" not in sys.modules


ABANDONED = """
import sys, threading
from nbflow.live import warm

warm.MAIN_THREAD_ONLY = (*warm.MAIN_THREAD_ONLY, "matplotlib.backends")  # inside matplotlib's own __init__
warm._install_guard()
w = warm.Warmup(None)

def go():
    warm._GUARD.thread_id = threading.get_ident()
    try:
        w._import(["numpy", "matplotlib.figure"])
    finally:
        warm._GUARD.thread_id = None

t = threading.Thread(target=go)
t.start()
t.join()
assert w.imported == ["numpy"] and w.left == {"matplotlib.figure": "matplotlib.backends"}, (w.imported, w.left)
import matplotlib
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([1, 2])
print(matplotlib.get_data_path() != "", type(fig).__name__)
"""


def test_an_import_abandoned_inside_a_packages_own_init_leaves_nothing_half_made(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", ABANDONED], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True Figure\n"


HANGING = """
import sys, threading
from nbflow.live import warm

warm.WAIT_LIMIT = 2.0
sys.path.insert(0, sys.argv[1])
w = warm.Warmup(None)
threading.Thread(target=w._import, args=(["stalled"],), daemon=True).start()
w.wait()
w.wait()  # once given up, at once
print(w.abandoned, w.importing, w.done.is_set())
"""


def test_a_warm_up_stuck_in_an_import_does_not_hang_the_kernel(tmp_path):
    import os
    import subprocess

    (tmp_path / "stalled.py").write_text("import time\ntime.sleep(600)\n")  # a stalled network folder
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", HANGING, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True stalled False\n"
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("nbflow: the kernel's warm-up has been importing stalled for over 2 s; going on")


YIELDING = """
import sys, threading, time
from nbflow.live import warm

sys.path.insert(0, sys.argv[1])
w = warm.Warmup(None)


def warm_up():  # Warmup.run's loop, on modules of our own
    w._import(["slow_a", "slow_b"])
    w.done.set()


threading.Thread(target=warm_up, daemon=True).start()
while w.importing != "slow_a":
    time.sleep(0.01)
w.pause()  # a cell starts while slow_a is imported: it waits for that import only
print("cell runs:", "slow_a" in sys.modules, "slow_b" in sys.modules, w.importing, w.done.is_set())
time.sleep(1.0)  # the cell runs for a while: the warm-up starts no new import meanwhile
print("cell ends:", "slow_b" in sys.modules, w.importing)
w.resume()
w.pause()  # the next cell; a magic in it waits for the whole warm-up, which goes on
w.wait()
print("magic:", "slow_b" in sys.modules, w.done.is_set(), w.imported, w.abandoned)
w.resume()
"""


def test_the_warm_up_yields_to_the_users_cells_between_imports(tmp_path):
    import os
    import subprocess

    for name in ("slow_a", "slow_b"):
        (tmp_path / f"{name}.py").write_text("import time\ntime.sleep(0.5)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", YIELDING, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "cell runs: True False None False",
        "cell ends: False None",
        "magic: True True ['slow_a', 'slow_b'] False",
    ]
    assert proc.stderr == ""
