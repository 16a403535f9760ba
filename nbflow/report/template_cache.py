"""Compiled page templates kept from one process to the next, as text (the Python source Jinja generates).

Every new process that renders a page compiles its Jinja templates again: parsing them
and generating Python source from them is most of the cost (~0.1 s of CPU for nbflow's
pages, ~0.25 s for nbconvert's JupyterLab templates), and a re-publish, ``nbflow report``
or ``nbflow run --report`` is a new process. ``SourceCache`` is a ``jinja2.BytecodeCache``
that keeps, per template, the Python source Jinja generates (``Environment.compile(...,
raw=True)``, its public API) in a small JSON file and compiles that with Python's own
``compile`` -- what Jinja does after generating it. Jinja's ``FileSystemBytecodeCache``
is not used: its files are pickles and marshal data, and nbflow loads no pickle.

A file is used only when it was made for the same template and the same way of compiling
it. Its key digests: Jinja's and Python's versions, the template's name, file and source
(SHA-256), and everything of the environment the generated code depends on (delimiters,
whitespace options, autoescape, extensions, the filters' and tests' names and how each
takes its context). Anything else -- another key, a file that is not that JSON -- is a
miss: the template is compiled as without a cache and the file written again
(atomically). Files live in ``templates/`` of the ``.nbflow`` folder of the run store
being reported (``templating.use_template_cache``), never elsewhere.

A kept file is code that runs when a page is rendered, so it is trusted as the cache's
pickles are (``fsutil.check_private``): the folder and the file must belong to this user
and be writable by no one else. A ``templates/`` folder that fails the check (a copied or
shared ``.nbflow``) is neither read nor written: the templates are compiled as without a cache.

It compiles templates; it renders nothing and reads no store.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import jinja2

from ..errors import CacheRefused
from ..fsutil import atomic_write_text, check_private

#: The format of a cache file (bump when what it holds changes).
FORMAT = 1


def _pass_arg(func: Any) -> str:
    # How Jinja calls a filter or test (context, eval context, environment or none) changes the code it generates.
    return str(getattr(func, "jinja_pass_arg", None))


def environment_key(env: jinja2.Environment) -> list[Any]:
    """What of ``env`` the code Jinja generates for a template depends on."""
    autoescape = env.autoescape
    return [
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.optimized,
        env.is_async,
        autoescape if isinstance(autoescape, bool) else f"{autoescape.__module__}.{autoescape.__qualname__}",
        None if env.finalize is None else _pass_arg(env.finalize),
        sorted(env.extensions),
        sorted((name, _pass_arg(f)) for name, f in env.filters.items()),
        sorted((name, _pass_arg(f)) for name, f in env.tests.items()),
    ]


class SourceCache(jinja2.BytecodeCache):
    """Jinja's generated Python source per template, in JSON files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def key(self, env: jinja2.Environment, name: str, filename: str | None, source: str) -> str:
        parts = [
            FORMAT,
            jinja2.__version__,
            list(sys.version_info[:2]),
            environment_key(env),
            name,
            filename,
            hashlib.sha256(source.encode("utf-8")).hexdigest(),
        ]
        return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()

    def get_bucket(
        self, environment: jinja2.Environment, name: str, filename: str | None, source: str
    ) -> jinja2.bccache.Bucket:
        key = self.key(environment, name, filename, source)
        bucket = jinja2.bccache.Bucket(environment, key, key)
        path = self.directory / f"{key[:40]}.json"
        trusted = self._trusted()
        python = self._read(path, key) if trusted else None
        if python is None:
            python = environment.compile(source, name, filename, raw=True)
            if trusted:
                self._write(path, key, python)
        bucket.code = compile(python, filename or "<template>", "exec")
        return bucket

    def set_bucket(self, bucket: jinja2.bccache.Bucket) -> None:
        """Nothing: ``get_bucket`` has written the file."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:  # pragma: no cover - get_bucket does it
        """Unused (``get_bucket`` reads the file)."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:  # pragma: no cover - get_bucket does it
        """Unused (``get_bucket`` writes the file)."""

    def _trusted(self) -> bool:
        """Whether the folder may be used: missing (it is made private) or this user's alone."""
        try:
            check_private(self.directory)
        except FileNotFoundError:
            return True
        except (CacheRefused, OSError):
            return False
        return True

    @staticmethod
    def _read(path: Path, key: str) -> str | None:
        try:
            check_private(path)
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, CacheRefused):
            return None
        if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("python"), str):
            return None
        return data["python"]

    def _write(self, path: Path, key: str, python: str) -> None:
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)  # in a .nbflow folder that exists: never made here
            atomic_write_text(path, json.dumps({"key": key, "python": python}), perms=0o600)
        except OSError:
            pass  # a cache that cannot be written is only slower
