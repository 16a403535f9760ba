"""nbflow/hidden_state.py: the analysis rules (pure), and capture/restore of every kind in
real Jupyter kernels (one kernel captures, a fresh one restores)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nbflow import hidden_state as hs
from nbflow import load_pipeline
from nbflow.analysis import analyse_cells
from nbflow.graph import edge_text
from nbflow.plan import compute_plan, explain, step_keys

from .conftest import code, step, write_notebook


def names(source: str) -> tuple[set[str], set[str]]:
    found = analyse_cells([source])
    pseudo = {n for n in found.reads if hs.is_pseudo(n)}, {n for n in found.writes if hs.is_pseudo(n)}
    return pseudo


@pytest.mark.parametrize(
    ("source", "reads", "writes"),
    [
        ("np.random.seed(0)", set(), {"<numpy.random>"}),
        ("x = np.random.rand()", {"<numpy.random>"}, {"<numpy.random>"}),
        ("np.random.seed(0)\nx = np.random.rand()", set(), {"<numpy.random>"}),
        ("rng = np.random.default_rng(0)\nx = rng.normal()", set(), set()),
        ("import random as r\nr.seed(3)", set(), {"<random>"}),
        ("y = random.random()", {"<random>"}, {"<random>"}),
        ("from numpy.random import rand\nz = rand()", {"<numpy.random>"}, {"<numpy.random>"}),
        ("os.chdir('sub')", set(), {"<cwd>"}),
        ("from os import chdir\nchdir('sub')", set(), {"<cwd>"}),
        ("%cd sub", set(), {"<cwd>"}),
        ("sys.path.insert(0, 'lib')", {"<sys.path>"}, {"<sys.path>"}),
        ("os.environ['A'] = '1'", set(), {"<environ>"}),
        ("del os.environ['A']", set(), {"<environ>"}),
        ("%env A=1", set(), {"<environ>"}),
        ("v = os.environ.get('A')", {"<environ>"}, set()),
        ("pd.set_option('display.precision', 2)", set(), {"<pandas.options>"}),
        ("pd.options.display.precision = 2", set(), {"<pandas.options>"}),
        ("with pd.option_context('display.precision', 2):\n    t = str(df)", {"<pandas.options>"}, set()),
        ("plt.style.use('ggplot')", set(), {"<matplotlib.rcParams>"}),
        ("mpl.rcParams['lines.linewidth'] = 3", set(), {"<matplotlib.rcParams>"}),
        ("sns.set_theme()", set(), {"<matplotlib.rcParams>"}),
        ("warnings.filterwarnings('ignore')", set(), {"<warnings>"}),
        ("logging.basicConfig(level=10)", set(), {"<logging>"}),
        ("plt.plot([1, 2])", {"<pyplot>"}, {"<pyplot>"}),
        ("fig, ax = plt.subplots()\nplt.title('t')", set(), {"<pyplot>"}),
        ("fig, ax = plt.subplots()\nax.plot([1])", set(), {"<pyplot>"}),
        ("import mymod\nmymod.flag = True", set(), {"<module:mymod>"}),
        ("import sklearn\nsklearn.set_config(display='text')", {"<module:sklearn>"}, {"<module:sklearn>"}),
        ("import mymod\nv = mymod.compute(1)", {"<module:mymod>"}, set()),
        ("x = np.zeros(3)\ny = pd.Series(x)", set(), set()),
        ("torch.manual_seed(0)", set(), {"<torch.random>"}),
        ("tf.random.set_seed(0)", set(), {"<tensorflow.random>"}),
    ],
)
def test_analysis_reads_and_writes_hidden_state(source, reads, writes):
    assert names(source) == (reads, writes)


def test_a_function_that_draws_makes_its_callers_draw():
    found = analyse_cells(["def draw():\n    return np.random.rand()"])
    assert "<numpy.random>" in found.functions["draw"].reads
    assert "<numpy.random>" in found.functions["draw"].writes


def test_aliases_come_from_the_setup_imports():
    assert names("nmp.random.seed(1)") == (set(), set())
    found = analyse_cells(["nmp.random.seed(1)"], {"nmp": "numpy"})
    assert "<numpy.random>" in found.writes


def test_pseudo_names_are_never_identifiers():
    for kind in hs.KINDS:
        assert hs.is_pseudo(kind) and not kind.isidentifier()
    assert not hs.is_pseudo("x") and hs.is_pseudo(hs.module_kind("a.b"))
    assert hs.module_kind("a.b") == "<module:a>"
    assert not hs.capturable("<pyplot>") and not hs.capturable("<module:a>") and hs.capturable("<cwd>")


RANDOM_NB = [
    code("import numpy as np"),
    step("seed", "np.random.seed(0)"),
    step("a", "x = np.random.rand()"),
    step("b", "y = np.random.rand()"),
    step("other", "z = 1"),
]


def test_graph_edges_follow_hidden_state(tmp_path):
    pipeline = load_pipeline(write_notebook(tmp_path / "nb.ipynb", RANDOM_NB))
    assert pipeline.deps == {"seed": (), "a": ("seed",), "b": ("a",), "other": ()}
    assert pipeline.edge_names[("a", "b")] == ("<numpy.random>",)
    assert edge_text(pipeline.edge_names[("a", "b")]) == "numpy random state"
    edge = next(e for e in pipeline.to_dict()["edges"] if e["target"] == "b")
    assert edge["hidden"] is True and edge["state"] == "numpy random state"
    assert '"a" -> "b" [label="numpy random state", style=dotted];' in pipeline.to_dot()
    assert not pipeline.warnings


def test_ambient_state_reaches_every_later_step(tmp_path):
    cells = [
        code("import os\nimport pandas as pd"),
        step("cd", "os.makedirs('sub', exist_ok=True)\nos.chdir('sub')"),
        step("opt", "pd.set_option('display.precision', 2)"),
        step("w", "df = pd.DataFrame({'v': [1.23456]})\ntext = str(df)"),
    ]
    pipeline = load_pipeline(write_notebook(tmp_path / "nb.ipynb", cells))
    assert set(pipeline.deps["w"]) == {"cd", "opt"}
    assert pipeline.edge_names[("cd", "w")] == ("<cwd>",)
    assert pipeline.edge_names[("opt", "w")] == ("<pandas.options>",)
    assert pipeline.deps["opt"] == ("cd",)  # set_option runs in the folder cd left


def test_reason_names_the_state_and_the_step(tmp_path):
    pipeline = load_pipeline(write_notebook(tmp_path / "nb.ipynb", RANDOM_NB))
    parts = step_keys(pipeline, {})
    previous = dict(parts["b"].to_dict(), upstream={"a": "0" * 64})
    passed = {"a": pipeline.edge_names[("a", "b")]}
    (reason,) = explain(parts["b"], previous, passed)
    assert reason == "random state changed (numpy) after step a"
    assert (reason.kind, reason.subject, reason.state) == ("hidden state changed", "a", "<numpy.random>")
    assert json.dumps([reason]) == '["random state changed (numpy) after step a"]'


class _Entry:
    def __init__(self, names):
        self.names = {n: {} for n in names}
        self.missing = {}
        self.manifest = {}


def test_pyplot_state_is_re_executed_not_restored(tmp_path):
    cells = [
        code("import matplotlib.pyplot as plt"),
        step("p1", "plt.figure()\nplt.plot([1, 2])"),
        step("p2", "plt.title('t')"),
        step("p3", "plt.xlabel('x')"),
        step("p4", "plt.savefig('f.png')"),
        step("tagged", "v = 1", "always"),
        step("user", "w = v + 1"),
    ]
    pipeline = load_pipeline(write_notebook(tmp_path / "nb.ipynb", cells))
    parts = step_keys(pipeline, {})
    cached = {s for s in pipeline.order if s not in ("p4", "user")}
    plan = compute_plan(
        pipeline,
        {},
        parts,
        lookup=lambda s, k: _Entry(pipeline.steps[s].writes) if s in cached else None,
        latest=lambda s: None,
    )
    assert plan.to_run == ["p1", "p2", "p3", "p4", "tagged", "user"]
    assert plan["p3"].why == "re-executed: pyplot state"
    assert plan["p1"].why == "re-executed: pyplot state"
    assert plan["tagged"].why == "re-executed: tagged always"


KERNEL_CAPTURE = """
import os, sys, random, warnings, pickle
import numpy as np, pandas as pd, matplotlib as mpl
from nbflow import hidden_state as hs
baseline = hs.Baseline.capture()
np.random.seed(0); random.seed(1)
os.makedirs('sub', exist_ok=True); os.chdir('sub')
sys.path.insert(0, '/nbflow-test/lib')
os.environ['NBFLOW_HIDDEN_TEST'] = 'yes'
pd.set_option('display.precision', 2)
mpl.rcParams['lines.linewidth'] = 5.0
warnings.filterwarnings('ignore', message='nbflow-test')
snapshots = hs.capture(list(hs.KINDS), baseline)
with open({path!r}, 'wb') as f:
    pickle.dump(snapshots, f)
"""
OBSERVE = """
import json as _json
print('RESULT' + _json.dumps([
    np.random.rand(), random.random(), os.path.relpath(os.getcwd(), baseline.cwd), sys.path[0],
    os.environ.get('NBFLOW_HIDDEN_TEST'), pd.get_option('display.precision'), mpl.rcParams['lines.linewidth'],
    any(f[1] is not None and f[1].pattern == 'nbflow-test' for f in warnings.filters),
    {{k: hs.digest(v) for k, v in hs.capture({kinds!r}, baseline).items()}},
]))
"""
RESTORE = """
import os, sys, random, warnings, pickle
import numpy as np, pandas as pd, matplotlib as mpl
from nbflow import hidden_state as hs
baseline = hs.Baseline.capture()
with open({path!r}, 'rb') as f:
    hs.restore(pickle.load(f), baseline)
"""


def run_in_kernel(folder: Path, *codes: str) -> str:
    """Run ``codes`` in a fresh python3 kernel started in ``folder``; return its stdout."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(folder))
    try:
        out = []
        for source in codes:
            reply = kc.execute_interactive(
                source, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", ""))
            )
            assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def result(text: str) -> list:
    return json.loads(text.split("RESULT", 1)[1])


@pytest.mark.slow
def test_every_kind_captured_in_one_kernel_is_restored_in_another(tmp_path):
    snap = tmp_path / "snap.pkl"
    kinds = sorted(k for k, kind in hs.KINDS.items() if kind.capturable and kind.module != "torch")
    observe = OBSERVE.format(kinds=kinds)
    captured = result(run_in_kernel(tmp_path, KERNEL_CAPTURE.format(path=str(snap)), observe))
    restored = result(run_in_kernel(tmp_path, RESTORE.format(path=str(snap)), observe))
    assert captured[:8] == [
        pytest.approx(0.5488135039273248),
        captured[1],
        "sub",
        "/nbflow-test/lib",
        "yes",
        2,
        5.0,
        True,
    ]
    assert restored == captured  # the same draws, folder, path, variables, options, filters, digests


@pytest.mark.slow
def test_reset_puts_options_and_environment_back(tmp_path):
    text = run_in_kernel(
        tmp_path,
        KERNEL_CAPTURE.format(path=str(tmp_path / "s.pkl")),
        textwrap.dedent(
            """
            import matplotlib.pyplot as plt
            plt.figure()
            hs.reset(baseline)
            print('RESULT' + _json.dumps([pd.get_option('display.precision'), mpl.rcParams['lines.linewidth'],
                  'NBFLOW_HIDDEN_TEST' in os.environ, plt.get_fignums(),
                  any(f[1] is not None and f[1].pattern == 'nbflow-test' for f in warnings.filters)]))
            """
        ).replace("_json", "__import__('json')"),
    )
    assert result(text) == [6, 1.5, False, [], False]


def test_own_random_generator_keeps_other_threads_out_of_the_step():
    import random
    import threading

    random.seed(5)
    expected = random.Random(5)
    stop = threading.Event()

    def noise() -> None:  # what a Dask worker's own threads do meanwhile
        while not stop.is_set():
            random.random()

    thread = threading.Thread(target=noise)
    with hs.own_random_generator():
        thread.start()
        try:
            drawn = [random.random() for _ in range(2000)]
        finally:
            stop.set()
            thread.join()
        state = random.getstate()
    assert drawn == [expected.random() for _ in range(2000)]
    assert state == expected.getstate() == random.getstate()  # the step's state is the global one after
