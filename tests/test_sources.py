"""Notebooks kept as text (``nbflow/sources.py``): percent ``.py``, MyST and Markdown
notebooks read through Jupytext give the ``.ipynb``'s graph and keys; errors name lines."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from nbflow.cli import main
from nbflow.errors import PipelineError
from nbflow.graph import load_pipeline
from nbflow.project import find_notebooks
from nbflow.run import plan_pipeline

from .conftest import code, md, step, write_notebook

CELLS = [
    md("# Squares\n\nA tiny pipeline."),
    code("n = 3", "parameters"),
    code("import math"),
    step("load", "data = list(range(n))"),
    md("Square every value."),
    step("square", "sq = [x * x for x in data]"),
    step("report", "total = math.fsum(sq)", "after:load"),
]

PERCENT = """\
# %% [markdown]
# # Squares
#
# A tiny pipeline.

# %% tags=["parameters"]
n = 3

# %%
import math

# %% tags=["step:load"]
data = list(range(n))

# %% [markdown]
# Square every value.

# %% tags=["step:square"]
sq = [x * x for x in data]

# %% tags=["step:report", "after:load"]
total = math.fsum(sq)
"""

MYST = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Squares

A tiny pipeline.

```{code-cell} ipython3
:tags: [parameters]

n = 3
```

```{code-cell} ipython3
import math
```

```{code-cell} ipython3
:tags: [step:load]

data = list(range(n))
```

Square every value.

```{code-cell} ipython3
:tags: [step:square]

sq = [x * x for x in data]
```

```{code-cell} ipython3
:tags: [step:report, after:load]

total = math.fsum(sq)
```
"""

MARKDOWN = """\
# Squares

A tiny pipeline.

```python tags=["parameters"]
n = 3
```

```python
import math
```

```python tags=["step:load"]
data = list(range(n))
```

Square every value.

```python tags=["step:square"]
sq = [x * x for x in data]
```

```python tags=["step:report", "after:load"]
total = math.fsum(sq)
```
"""


def _graph(pipeline):
    data = pipeline.to_dict()
    for s in data["steps"]:
        s.pop("cell_id")
    data.pop("notebook")
    return data


@pytest.mark.parametrize(("name", "text"), [("steps.py", PERCENT), ("steps.md", MYST), ("plain.md", MARKDOWN)])
def test_text_notebooks_give_the_graph_and_keys_of_the_ipynb(tmp_path, name, text):
    reference = load_pipeline(write_notebook(tmp_path / "ref.ipynb", CELLS))
    path = tmp_path / name
    path.write_text(text)
    pipeline = load_pipeline(path)
    assert _graph(pipeline) == _graph(reference)
    assert pipeline.source.title == "Squares"
    assert pipeline.source.steps[1].docs == "Square every value."
    assert pipeline.deps == {"load": (), "square": ("load",), "report": ("square", "load")}
    keys = {e.step: e.key for e in plan_pipeline(pipeline, {"n": 5})}
    assert keys == {e.step: e.key for e in plan_pipeline(reference, {"n": 5})}


def test_a_bad_cell_marker_is_reported_with_its_line(tmp_path):
    path = tmp_path / "steps.py"
    path.write_text('# %% tags=["parameters"]\nn = 3\n\n# %% tags=["step:load"\ndata = list(range(n))\n')
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    assert str(caught.value) == (
        "steps.py, line 4: cell marker '# %% tags=[\"step:load\"' has metadata Jupytext cannot read "
        '(\'tags=["step:load"\'); write the tags as a JSON list: # %% tags=["step:load"]'
    )
    assert caught.value.line == 4


def test_errors_in_a_text_notebook_name_the_line_of_the_cell(tmp_path):
    path = tmp_path / "steps.py"
    path.write_text(PERCENT.replace('"after:load"', '"after:lod"'))
    with pytest.raises(PipelineError, match=r'^steps\.py, line 21 \(step "report"\): after:lod names no step; '):
        load_pipeline(path)
    path.write_text(PERCENT.replace('tags=["step:square"]', 'tags=["step:load"]'))
    with pytest.raises(PipelineError, match=r'^steps\.py, line 18 \(step "load"\): duplicate step name "load"'):
        load_pipeline(path)


def test_a_script_without_cell_markers_is_refused_in_one_line(tmp_path):
    path = tmp_path / "script.py"
    path.write_text("print('hello')\n")
    assert main(["graph", str(path)]) == 2
    with pytest.raises(PipelineError, match=r"^script\.py: not a percent-format notebook \(no '# %%' cell markers\)"):
        load_pipeline(path)


def test_graph_and_plan_commands_read_a_percent_file(tmp_path, capsys):
    path = tmp_path / "steps.py"
    path.write_text(PERCENT)
    assert main(["graph", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "steps.py: 3 steps; parameters: n=3"
    assert main(["plan", str(path), "-p", "n", "4"]) == 0
    assert "3 of 3 steps would run" in capsys.readouterr().out


def test_a_read_text_notebook_is_remembered_so_the_next_read_needs_no_jupytext(tmp_path):
    path = tmp_path / "steps.py"
    path.write_text(PERCENT)
    probe = textwrap.dedent(
        f"""
        import sys
        from nbflow.graph import load_pipeline
        pipeline = load_pipeline({str(path)!r})
        print(list(pipeline.order), "jupytext" in sys.modules)
        """
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    second = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert first.split() == ["['load',", "'square',", "'report']", "True"]
    assert second.split() == ["['load',", "'square',", "'report']", "False"]
    path.write_text(PERCENT.replace("n = 3", "n = 4"))  # a changed text is converted again
    third = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert third.split()[-1] == "True"


def test_a_paired_ipynb_and_py_are_one_notebook_of_a_folder(tmp_path):
    write_notebook(tmp_path / "steps.ipynb", CELLS, jupytext={"formats": "ipynb,py:percent"})
    (tmp_path / "steps.py").write_text(
        "# ---\n# jupyter:\n#   jupytext:\n#     formats: ipynb,py:percent\n# ---\n\n" + PERCENT
    )
    (tmp_path / "other.py").write_text(PERCENT)  # not paired: a notebook of its own
    (tmp_path / "helper.py").write_text("def f():\n    return 'step:x'\n")  # a plain module, not a notebook
    assert [p.name for p in find_notebooks(tmp_path)] == ["other.py", "steps.ipynb"]
    paired = load_pipeline(tmp_path / "steps.py")
    assert paired.order == load_pipeline(tmp_path / "steps.ipynb").order
    assert json.loads(json.dumps(paired.source.data["metadata"]["jupytext"]))["formats"] == "ipynb,py:percent"
