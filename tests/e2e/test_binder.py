"""The Binder environment (binder/) builds, and gives JupyterLab with nbflow's extension and
the examples.

mybinder.org builds images with repo2docker, which needs Docker; CI has no Docker, so this
test repeats, in a fresh virtual environment, the steps repo2docker takes for the files in
binder/ (Python build pack, repo2docker 2024-2026):

1. the repository's tracked files are copied to a temporary folder (repo2docker builds
   from a clone, so nothing built locally, such as nbflow/labextension, comes along);
2. a fresh environment with the Python named in binder/runtime.txt (if this machine has
   it; otherwise this interpreter, and the test says so), on PATH first as on Binder;
3. ``pip install -r binder/requirements.txt`` from the copy's root, as repo2docker does
   after copying the repository in when the file has a local reference (``.``);
4. ``binder/postBuild`` from the copy's root.

What differs from Binder: repo2docker's environment is a conda environment that already
holds JupyterLab, ipywidgets and conda-forge's node/npm; here the environment is a venv,
pip installs JupyterLab, and node/npm come from the machine (.ci/install-system-packages).
repo2docker passes ``--no-cache-dir``; this test uses pip's cache to stay fast. Then, in
that environment: nbflow imports from the environment (not the copy), ``jupyter
labextension list`` shows ``nbflow-jupyterlab`` enabled and OK from the environment's own
share/jupyter, the server extension is enabled, every example pipeline that postBuild
ran is fully cached when a user runs it again with ``nbflow run``, and the studio answers
at ``/nbflow/studio/`` through that environment's Jupyter server with the token, and sends
to the login page without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
# Built during an install and git-ignored; never copied when the checkout is not a git one.
GENERATED = (
    ".git",
    ".venv",
    "node_modules",
    ".nbflow",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".ipynb_checkpoints",
    "test-artifacts",
    "build",
    "dist",
    "*.egg-info",
    "labextension",
    "lib",
    "tsconfig.tsbuildinfo",
    "canvas.bundle.js*",
)


def copy_repository(dest: Path) -> None:
    """Copy what a clone would hold: tracked files plus new, not ignored ones."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
    )
    if shutil.which("git") is None or listed.returncode != 0:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*GENERATED))
        return
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # skips files deleted in the working tree
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def binder_python() -> tuple[str, str]:
    """The interpreter for binder/runtime.txt's version, and a note when it is not that one."""
    wanted = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == wanted:
        return sys.executable, ""
    found = shutil.which(f"python{wanted}")
    if found:
        return found, ""
    return sys.executable, f"binder/runtime.txt asks for Python {wanted}; this machine has none, using {sys.version}"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def test_binder_environment_installs_nbflow_the_extension_and_runs_the_examples(tmp_path):
    repo = tmp_path / "repo"
    copy_repository(repo)
    assert not (repo / "nbflow" / "labextension").exists()  # built by the install, not copied

    python, note = binder_python()
    if note:
        print(note)
    venv = tmp_path / "env"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NBFLOW_HOME", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        # The user's own Jupyter folders could hold another nbflow-jupyterlab.
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
    )

    started = time.monotonic()
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], repo, env)
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"], repo, env)
    installed = time.monotonic() - started
    run(["bash", "binder/postBuild"], repo, env)
    post_build = time.monotonic() - started - installed
    print(f"binder: pip install -r binder/requirements.txt {installed:.0f} s, binder/postBuild {post_build:.0f} s")

    # From outside the copy, so the import cannot come from the copy's source tree.
    where = run([str(bin_dir / "python"), "-c", "import nbflow; print(nbflow.__file__)"], tmp_path, env)
    module = Path(where.stdout.strip())
    assert module.is_relative_to(venv), module
    assert (module.parent / "studio" / "static" / "canvas.bundle.js").is_file()  # the studio's canvas was built

    listing = run([str(bin_dir / "jupyter"), "labextension", "list"], tmp_path, env)
    text = listing.stdout + listing.stderr
    folder, line = None, ""
    for row in text.splitlines():
        if row.strip().startswith("/"):  # a section header: the folder the next rows live in
            folder = row.split(":")[0].strip()
        elif "nbflow-jupyterlab" in row:
            line = row
            break
    assert "enabled" in line and "OK" in line, text
    assert folder is not None and Path(folder).is_relative_to(venv), text
    server = run([str(bin_dir / "jupyter"), "server", "extension", "list"], tmp_path, env)
    assert any("nbflow.server" in r and "enabled" in r for r in (server.stdout + server.stderr).splitlines())

    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    assert {p.name for p in notebooks} >= {"wine_classifier.ipynb", "sensor_files.ipynb", "diabetes_report.ipynb"}
    for notebook in notebooks:
        again = run([str(bin_dir / "nbflow"), "run", notebook.name], notebook.parent, env)
        plan = json.loads(run([str(bin_dir / "nbflow"), "plan", "--json", notebook.name], notebook.parent, env).stdout)
        assert plan["steps"] and {s["action"] for s in plan["steps"]} == {"cached"}, (notebook.name, plan)
        assert "cached" in again.stderr + again.stdout, again
    table = run([str(bin_dir / "nbflow"), "runs", "notebooks"], repo, env).stdout.splitlines()
    for notebook in notebooks:  # newest first: the user's run (all cached), then postBuild's
        rows = [line.split() for line in table if f" {notebook.name} " in line]
        assert [r[2] for r in rows] == ["done", "done"], table
        assert "cached" in rows[0] and "cached" not in rows[1], table

    # The studio answers through the Jupyter server, as on Binder (which exposes only it):
    # with the token, and not without (JupyterLab's login instead).
    studio_through_jupyter(bin_dir, repo, env)


def studio_through_jupyter(bin_dir: Path, repo: Path, env: dict[str, str]) -> None:
    import urllib.error
    import urllib.request

    from .conftest import free_port, wait_for_http

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def fetch(url: str) -> tuple[int, str, str]:
        try:
            with urllib.request.build_opener(NoRedirect).open(url, timeout=300) as response:
                return response.status, response.headers.get("Location", ""), response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Location", ""), ""

    port, token = free_port(), "binder-test-token"
    args = [str(bin_dir / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1"]
    args += [f"--IdentityProvider.token={token}", "--ServerApp.allow_unauthenticated_access=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    proc = subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(f"{url}api/status?token={token}", proc, timeout=120)
        code, location, _ = fetch(f"{url}nbflow/studio/")
        assert code == 302 and "/login" in location, (code, location)
        code, _, page = fetch(f"{url}nbflow/studio/?notebook=notebooks/wine_classifier.ipynb&token={token}")
        assert code == 200 and "<title>nbflow studio</title>" in page, (code, page[:500])
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
