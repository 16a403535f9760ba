"""IPython syntax for the static analysis: turning it into Python and finding the code in magics.

Owns ``python_source`` (IPython's own ``TransformerManager`` turns ``%magic``, ``%%cell``,
``!cmd`` into ``get_ipython()`` calls; valid Python is returned unchanged without importing
IPython, which costs 0.1 s), ``magic_call`` (recognises those calls in the AST), which magics
run Python code (``CODE_MAGICS``) and which in a namespace of their own (``SCOPED_MAGICS``),
their getopt option specs (``MAGIC_OPTIONS``), ``magic_code`` (the code of a magic's line,
its options left out as the magic's ``parse_options`` reads them) and ``expansion_names``
(what ``$name``/``{expr}`` expansions read).

Pure: takes source text or AST nodes, returns values. It must not decide what code reads
or writes (that is ``analysis.py``) nor the hidden state a magic touches (``hidden_rules.py``).
"""

from __future__ import annotations

import ast
import re

#: Magics whose argument (line or cell body) is Python code run in the user namespace.
CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug", "memit", "mprun", "lprun"})
#: Magics whose code runs in a namespace of its own: it reads the step's names but its
#: assignments stay there (``%timeit x = f()`` does not define ``x``).
SCOPED_MAGICS = frozenset({"timeit"})
#: Options of code magics, as their ``parse_options`` spec (getopt: ``n:`` takes a value).
MAGIC_OPTIONS = {
    "time": "",
    "timeit": "n:r:tcp:qo",
    "prun": "D:l:rs:T:q",
    "lprun": "rsf:m:D:T:u:z",
    "mprun": "rf:T:c",
    "memit": "r:t:i:co",
}

_DOLLAR = re.compile(r"(?<!\$)\$(\w+)")
_BRACES = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")


def python_source(source: str) -> str:
    """``source`` as plain Python: IPython syntax turned into calls by IPython itself."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def magic_call(node: ast.Call) -> tuple[str, list[ast.AST]] | None:
    """``('run_cell_magic', args)`` for ``get_ipython().run_cell_magic(...)`` and friends."""
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr in ("run_line_magic", "run_cell_magic", "system", "getoutput")
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
    ):
        return func.attr, list(node.args)
    return None


def expansion_names(text: str) -> set[str]:
    """Names that IPython's ``$name`` and ``{expr}`` expansion would read from ``text``."""
    names = set(_DOLLAR.findall(text))
    for expr in _BRACES.findall(text):
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names


def magic_code(magic: str, line: str) -> str:
    """The code in a code magic's ``line``, its options left out as IPython reads them.

    ``%timeit -n1 -r1 (expr)`` -> ``(expr)``: options are getopt-style (``-n1``, ``-n 1``,
    ``-qo``) per the magic's spec in ``MAGIC_OPTIONS``; the code starts at the first word
    that is not an option. Magics without a known spec drop the longest prefix of words
    that keeps the rest valid Python.
    """
    spec = MAGIC_OPTIONS.get(magic)
    if spec is None:
        return _strip_magic_options(line)
    pos = 0
    while True:
        pos = len(line) - len(line[pos:].lstrip()) if line[pos:].strip() else len(line)
        if pos >= len(line) or line[pos] != "-":
            return line[pos:]
        end = pos + len(line[pos:].split()[0])
        token = line[pos:end]
        if token == "--":
            return line[end:].lstrip()
        i = 1
        while i < len(token):
            letter = token[i]
            if not letter.isalpha() or letter not in spec.replace(":", ""):
                return line[pos:]  # not an option: code that starts with a minus
            if spec[spec.index(letter) + 1 : spec.index(letter) + 2] == ":":
                if i + 1 == len(token):  # the value is the next word
                    rest = line[end:].lstrip()
                    end = len(line) - len(rest) + (len(rest.split()[0]) if rest.split() else 0)
                break
            i += 1
        pos = end


def _strip_magic_options(line: str) -> str:
    """``-n 10 -r 3 f(x)`` -> the longest suffix of ``line`` that parses as Python."""
    words = line.split()
    for start in range(len(words) + 1):
        candidate = " ".join(words[start:])
        try:
            ast.parse(candidate)
            return candidate
        except SyntaxError:
            continue
    return ""
