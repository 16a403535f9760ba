"""Hatch build hook: bundle the studio's canvas (extension/canvas) with esbuild.

extension/canvas is nbflow's one pipeline canvas (an npm package, ``@nbflow/canvas``):
the JupyterLab extension imports it too (``"@nbflow/canvas": "file:canvas"``, bundled by
JupyterLab's builder), so the studio and the side panel draw and edit with the same code.

cytoscape.js and cytoscape-edgehandles come from the npm registry at build time and
are bundled into ``nbflow/studio/static/canvas.bundle.js``, which the studio's Panel
server serves itself (no CDN at run time). The bundle is git-ignored: it is built here,
for wheels and for editable installs (``pip install -e .``), whenever it is missing or
older than its sources.

Without node and npm the build goes on without the bundle (nbflow works; ``nbflow
studio`` then says how to build it). ``NBFLOW_SKIP_CANVAS_BUILD=1`` skips it on purpose.
This hook bundles only the studio's copy; the JupyterLab extension's build
(hatch-jupyter-builder, ``extension/``) bundles the same sources for JupyterLab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path("extension") / "canvas"
BUNDLE = Path("nbflow") / "studio" / "static" / "canvas.bundle.js"
LICENSES = BUNDLE.with_name(BUNDLE.name + ".LEGAL.txt")


def _newest_source(package: Path) -> float:
    sources = [package / "package.json", package / "package-lock.json", *(package / "src").rglob("*.js")]
    return max(p.stat().st_mtime for p in sources if p.exists())


class StudioCanvasBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # the sdist ships the npm package's sources, not the bundle
        root = Path(self.root)
        package, bundle = root / PACKAGE, root / BUNDLE
        if package.is_dir() and os.environ.get("NBFLOW_SKIP_CANVAS_BUILD") != "1":
            if not bundle.is_file() or bundle.stat().st_mtime < _newest_source(package):
                self._build(package)
        if bundle.is_file():
            build_data["artifacts"] += [BUNDLE.as_posix(), LICENSES.as_posix()]

    def _build(self, package: Path) -> None:
        npm = shutil.which("npm")
        if npm is None:
            print(
                "nbflow: npm not found; the studio's canvas is not built (install node and npm, then reinstall)",
                file=sys.stderr,
            )
            return
        install = "ci" if (package / "package-lock.json").is_file() else "install"
        for command in ([npm, install, "--no-audit", "--no-fund"], [npm, "run", "build"]):
            result = subprocess.run(command, cwd=package, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(
                    f"building the studio's canvas failed: {' '.join(command[1:])} in {package}:\n"
                    f"{result.stdout}\n{result.stderr}"
                )
