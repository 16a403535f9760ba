"""nbflow/studio/serve.py and the app's pure helpers: addresses, origins, listing, forms."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nbflow.parameters import Parameter
from nbflow.studio.serve import StudioError, check_address, is_loopback, resolve_target, websocket_origins

from .conftest import code, step, write_notebook


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_login(address):
    assert is_loopback(address)
    check_address(address, None)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_other_addresses_are_refused_without_a_login(address):
    assert not is_loopback(address)
    with pytest.raises(StudioError, match=f"refusing to serve the studio on {address}.*--basic-auth"):
        check_address(address, None)
    check_address(address, "a-long-password")


def test_websocket_origins_are_explicit():
    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert websocket_origins("10.0.0.5", 80, ["studio.lan", "x:8080"]) == [
        "127.0.0.1:80",
        "localhost:80",
        "10.0.0.5:80",
        "studio.lan:80",
        "x:8080",
    ]
    assert "0.0.0.0:5006" not in websocket_origins("0.0.0.0", 5006)


def test_resolve_target(tmp_path):
    nb = write_notebook(tmp_path / "p.ipynb", [step("a", "x = 1")])
    assert resolve_target(tmp_path) == (tmp_path.resolve(), None)
    assert resolve_target(nb) == (tmp_path.resolve(), "p.ipynb")
    with pytest.raises(StudioError, match="no such folder"):
        resolve_target(tmp_path / "missing")


def test_the_cli_refuses_a_public_address_without_a_login(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nbflow", "studio", str(tmp_path), "--address", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to serve the studio on 0.0.0.0" in proc.stderr


def test_find_notebooks_lists_pipelines_first_and_skips_hidden_and_escaping(tmp_path):
    from nbflow.studio.app import find_notebooks, notebook_label

    write_notebook(tmp_path / "b_pipeline.ipynb", [step("a", "x = 1"), step("b", "y = x")])
    write_notebook(tmp_path / "a_scratch.ipynb", [code("1 + 1")])
    (tmp_path / "sub").mkdir()
    write_notebook(tmp_path / "sub" / "c.ipynb", [step("a", "x = 1")])
    (tmp_path / ".nbflow" / "runs" / "1").mkdir(parents=True)
    write_notebook(tmp_path / ".nbflow" / "runs" / "1" / "output.ipynb", [step("a", "x = 1")])
    (tmp_path / "broken.ipynb").write_text("{ nope")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.ipynb"
    write_notebook(outside, [step("a", "x = 1")])
    (tmp_path / "link.ipynb").symlink_to(outside)

    found = find_notebooks(tmp_path)
    assert found == [("b_pipeline.ipynb", 2), ("sub/c.ipynb", 1), ("a_scratch.ipynb", 0), ("broken.ipynb", None)]
    assert [notebook_label(*f) for f in found] == [
        "b_pipeline.ipynb (2 steps)",
        "sub/c.ipynb (1 step)",
        "a_scratch.ipynb (no steps yet)",
        "broken.ipynb (unreadable)",
    ]


@pytest.mark.parametrize(
    ("default", "typed", "expected"),
    [(0.1, 0.5, 0.5), (10, 3, 3), (True, False, False), ("adam", "sgd", "sgd"), ([1, 2], "[3, 4]", [3, 4])],
)
def test_parameter_form_fields_keep_the_type_of_the_default(default, typed, expected):
    from nbflow.studio.app import parameter_value, parameter_widget

    param = Parameter("p", default)
    widget = parameter_widget(param, default)
    widget.value = typed
    assert parameter_value(param, widget) == expected
    assert type(parameter_value(param, widget)) is type(expected)


def test_a_parameter_that_is_not_a_literal_is_reported():
    from nbflow.errors import PipelineError
    from nbflow.studio.app import parameter_value, parameter_widget

    param = Parameter("layers", [1, 2])
    widget = parameter_widget(param, [1, 2])
    widget.value = "[1, 2"
    with pytest.raises(PipelineError, match="parameter layers: '\\[1, 2' is not a Python literal"):
        parameter_value(param, widget)


def test_the_cli_says_when_the_port_is_taken(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "nbflow", "studio", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_confine_notebook_keeps_reports_inside_the_folder(tmp_path):
    from nbflow.studio.serve import confine_notebook, report_url

    folder = tmp_path / "studio"
    (folder / "sub").mkdir(parents=True)
    inside = write_notebook(folder / "sub" / "p.ipynb", [step("a", "x = 1")])
    secret = write_notebook(tmp_path / "secret.ipynb", [step("a", "x = 1")])
    (tmp_path / "studio-other").mkdir()
    write_notebook(tmp_path / "studio-other" / "s.ipynb", [step("a", "x = 1")])
    (folder / "link.ipynb").symlink_to(secret)
    (folder / "inner.ipynb").symlink_to(inside)
    (folder / "notes.txt").write_text("not a notebook")
    assert confine_notebook(folder, "sub/p.ipynb") == inside.resolve()
    assert confine_notebook(folder, "inner.ipynb") == inside.resolve()  # a symlink that stays inside
    for raw in (
        "../secret.ipynb",
        "sub/../../secret.ipynb",
        str(secret),
        str(inside),  # absolute, even inside
        "link.ipynb",
        "../studio-other/s.ipynb",
        "notes.txt",
        "missing.ipynb",
        ".",
        "",
        None,
        "p\x00.ipynb",
    ):
        assert confine_notebook(folder, raw) is None, raw
    assert report_url(3, "sub/p.ipynb", 17) == "report/3?notebook=sub%2Fp.ipynb&v=17"


def _imports(module_file, package: str) -> set[str]:
    """Modules of ``package`` that ``module_file`` imports, imports inside functions included."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(module_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


@pytest.mark.parametrize("package", ["nbflow.studio", "nbflow.report"])
def test_the_views_modules_import_each_other_without_a_cycle(package):
    """studio/app.py and studio/serve.py imported each other; the split report must not either (#16)."""
    import importlib

    folder = importlib.import_module(package).__path__[0]
    from pathlib import Path

    modules = {f"{package}.{p.stem}": p for p in Path(folder).glob("*.py") if p.stem != "__init__"}
    graph = {name: {m for m in _imports(path, package) if m in modules and m != name} for name, path in modules.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    assert len(modules) >= 4
    assert [m for m in modules if m in reach(m)] == []
    # and each module stays within the size the style guide allows
    assert {m: n for m, p in modules.items() if (n := len(p.read_text().splitlines())) > 700} == {}
