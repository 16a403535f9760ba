"""Analysis rules for hidden kernel state: which calls and assignments read and write
which kind (``hidden_state``'s pseudo-names).

``RULES`` maps dotted patterns (``numpy.random.seed``, or a prefix ``numpy.random.*``)
to the kinds a call of them, or an assignment to them, reads and writes; the most
specific pattern wins::

    np.random.seed(0)      numpy.random.seed  writes <numpy.random>
    np.random.rand()       numpy.random.*     reads and writes <numpy.random>
    pd.options.x = 1       pandas.options.*   writes <pandas.options>

Names are resolved through the module aliases the code binds (``import numpy as np``),
those passed in (the setup's) and conventional ones (``np``, ``pd``, ``plt``...). A call
into a module nbflow has no rule for reads ``<module:NAME>``, and writes it when its name
says it configures something (``set_*``, ``enable*``, ``use``...) or when the code assigns
to one of its attributes. ``register_rule`` extends the table.

Pure: takes syntax trees, returns pseudo-names. Standard library only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .hidden_state import module_kind


@dataclass(frozen=True)
class Rule:
    """A dotted pattern (``numpy.random.seed``, or a prefix ``numpy.random.*``) and the
    kinds a call of it, or an assignment to it, reads and writes."""

    pattern: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


RULES: dict[str, Rule] = {}


def register_rule(pattern: str, reads: Iterable[str] = (), writes: Iterable[str] = ()) -> None:
    """Add (or replace) an analysis rule (see ``Rule``)."""
    RULES[pattern] = Rule(pattern, tuple(reads), tuple(writes))


for _pattern, _reads, _writes in (
    # Python's random module: every function draws from the global generator.
    ("random.*", ["<random>"], ["<random>"]),
    ("random.seed", [], ["<random>"]),
    ("random.setstate", [], ["<random>"]),
    ("random.getstate", ["<random>"], []),
    ("random.Random", [], []),
    ("random.SystemRandom", [], []),
    # NumPy's global generator (explicit generators are values, not hidden state).
    ("numpy.random.*", ["<numpy.random>"], ["<numpy.random>"]),
    ("numpy.random.seed", [], ["<numpy.random>"]),
    ("numpy.random.set_state", [], ["<numpy.random>"]),
    ("numpy.random.get_state", ["<numpy.random>"], []),
    *[
        (f"numpy.random.{n}", [], [])
        for n in ("default_rng", "Generator", "RandomState", "SeedSequence", "PCG64", "PCG64DXSM", "MT19937", "Philox")
        + ("SFC64", "BitGenerator")
    ],
    ("torch.manual_seed", [], ["<torch.random>"]),
    ("torch.seed", [], ["<torch.random>"]),
    ("torch.random.*", ["<torch.random>"], ["<torch.random>"]),
    *[(f"torch.{n}", ["<torch.random>"], ["<torch.random>"]) for n in ("rand", "randn", "randint", "randperm")],
    ("tensorflow.random.set_seed", [], ["<tensorflow.random>"]),
    ("tensorflow.random.*", ["<tensorflow.random>"], ["<tensorflow.random>"]),
    # the working folder
    ("os.chdir", [], ["<cwd>"]),
    ("os.fchdir", [], ["<cwd>"]),
    ("os.getcwd", ["<cwd>"], []),
    ("pathlib.Path.cwd", ["<cwd>"], []),
    ("contextlib.chdir", [], []),
    # sys.path (assigning it, or calling its methods)
    ("sys.path", ["<sys.path>"], ["<sys.path>"]),
    ("sys.path.*", ["<sys.path>"], ["<sys.path>"]),
    ("site.addsitedir", [], ["<sys.path>"]),
    ("importlib.import_module", ["<sys.path>"], []),
    # environment variables
    ("os.environ", ["<environ>"], ["<environ>"]),
    ("os.environ.*", ["<environ>"], ["<environ>"]),
    *[(f"os.environ.{n}", ["<environ>"], []) for n in ("get", "copy", "items", "keys", "values")],
    ("os.putenv", [], ["<environ>"]),
    ("os.unsetenv", [], ["<environ>"]),
    ("os.getenv", ["<environ>"], []),
    # pandas options (pd.option_context is temporary: it changes nothing after the block)
    ("pandas.set_option", [], ["<pandas.options>"]),
    ("pandas.reset_option", [], ["<pandas.options>"]),
    ("pandas.set_eng_float_format", [], ["<pandas.options>"]),
    ("pandas.options.*", [], ["<pandas.options>"]),
    ("pandas.get_option", ["<pandas.options>"], []),
    ("pandas.option_context", ["<pandas.options>"], []),
    # matplotlib style
    ("matplotlib.rcParams", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.rcParams.*", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.rc", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.rcdefaults", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.style.use", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.use", [], ["<pyplot>"]),
    ("matplotlib.rc_context", ["<matplotlib.rcParams>"], []),
    ("matplotlib.pyplot.rcParams", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.pyplot.rcParams.*", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.pyplot.rc", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.pyplot.rcdefaults", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.pyplot.style.use", [], ["<matplotlib.rcParams>"]),
    ("matplotlib.pyplot.style.context", ["<matplotlib.rcParams>"], []),
    ("matplotlib.pyplot.rc_context", ["<matplotlib.rcParams>"], []),
    ("seaborn.set", [], ["<matplotlib.rcParams>"]),
    *[
        (f"seaborn.{n}", [], ["<matplotlib.rcParams>"])
        for n in ("set_theme", "set_style", "set_context", "set_palette", "reset_defaults", "reset_orig")
    ],
    # pyplot's figure manager: every other pyplot call reads and changes it, except
    # those that start a new current figure (a step beginning with plt.subplots()
    # does not depend on the figures of the steps before it)
    ("matplotlib.pyplot.*", ["<pyplot>"], ["<pyplot>"]),
    *[(f"matplotlib.pyplot.{n}", [], ["<pyplot>"]) for n in ("figure", "subplots", "subplot_mosaic", "close")],
    # warnings and logging
    ("warnings.filterwarnings", [], ["<warnings>"]),
    ("warnings.simplefilter", [], ["<warnings>"]),
    ("warnings.resetwarnings", [], ["<warnings>"]),
    ("warnings.filters", [], ["<warnings>"]),
    ("warnings.filters.*", [], ["<warnings>"]),
    ("warnings.catch_warnings", [], []),
    ("warnings.warn", ["<warnings>"], []),
    ("logging.basicConfig", [], ["<logging>"]),
    ("logging.disable", [], ["<logging>"]),
    ("logging.config.*", [], ["<logging>"]),
    ("logging.getLogger", ["<logging>"], []),
    ("logging.*", ["<logging>"], []),
):
    register_rule(_pattern, _reads, _writes)

#: Conventional aliases, used when the analysed code does not import the name itself
#: (the setup usually does).
DEFAULT_ALIASES: dict[str, str] = {
    "np": "numpy",
    "numpy": "numpy",
    "pd": "pandas",
    "pandas": "pandas",
    "plt": "matplotlib.pyplot",
    "mpl": "matplotlib",
    "matplotlib": "matplotlib",
    "sns": "seaborn",
    "tf": "tensorflow",
    "torch": "torch",
    "os": "os",
    "sys": "sys",
    "random": "random",
    "warnings": "warnings",
    "logging": "logging",
}
#: Call names on a module nbflow has no rule for that change the module's state.
_STATE_CHANGING = re.compile(r"^(set|enable|disable|reset|register|configure|use|seed|manual_seed|install|init)(_|$)")


def qualified(node: ast.AST, aliases: Mapping[str, str]) -> str | None:
    """``numpy.random.seed`` for ``np.random.seed`` when ``np`` is an alias of numpy."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _match(dotted: str) -> Rule | None:
    rule = RULES.get(dotted)
    if rule is not None:
        return rule
    parts = dotted.split(".")
    for end in range(len(parts) - 1, 0, -1):
        rule = RULES.get(".".join(parts[:end]) + ".*")
        if rule is not None:
            return rule
    return None


@dataclass
class Effects:
    """Kinds a piece of code reads and writes."""

    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)

    def add(self, other: Effects) -> None:
        self.reads |= other.reads
        self.writes |= other.writes


def call_effects(node: ast.Call, aliases: Mapping[str, str]) -> Effects:
    """What a call reads and writes of hidden state (see ``RULES``)."""
    effects = Effects()
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    dotted = qualified(func, aliases)
    if dotted is None:
        return effects
    rule = _match(dotted)
    if rule is not None:
        effects.reads.update(rule.reads)
        effects.writes.update(rule.writes)
        return effects
    module = dotted.split(".")[0]
    if module in _RULED_MODULES:
        return effects
    effects.reads.add(module_kind(module))
    if _STATE_CHANGING.match(name) or name in _MUTATING_ON_MODULE:
        effects.writes.add(module_kind(module))
    return effects


def target_effects(node: ast.AST, aliases: Mapping[str, str]) -> Effects:
    """What assigning to (or deleting) ``node`` writes: ``pd.options.x = 1``,
    ``os.environ["A"] = "1"``, ``mymodule.flag = True``."""
    effects = Effects()
    inner = node
    while isinstance(inner, ast.Subscript):
        inner = inner.value
    dotted = qualified(inner, aliases)
    if dotted is None or "." not in dotted and isinstance(node, ast.Name):
        return effects
    rule = _match(dotted)
    if rule is not None and rule.writes:
        effects.writes.update(rule.writes)
    elif dotted.split(".")[0] not in _RULED_MODULES or rule is None:
        effects.writes.add(module_kind(dotted))
    return effects


def effects_in(node: ast.AST, aliases: Mapping[str, str]) -> Effects:
    """Hidden state a function, class or lambda body touches when it runs."""
    effects = Effects()
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            effects.add(call_effects(child, aliases))
        elif isinstance(child, ast.Assign | ast.AugAssign | ast.Delete):
            for target in getattr(child, "targets", None) or [getattr(child, "target", None)]:
                if isinstance(target, ast.Attribute | ast.Subscript):
                    effects.add(target_effects(target, aliases))
    return effects


def magic_effects(name: str, line: str) -> Effects:
    """``%cd`` writes the working folder, ``%env``/``%set_env`` the environment,
    ``%matplotlib`` pyplot (shell commands read the folder and the environment, which
    every step reads anyway: they are ambient)."""
    effects = Effects()
    if name in ("cd", "pushd", "popd"):
        effects.writes.add("<cwd>")
    elif name in ("env", "set_env") and ("=" in line or " " in line.strip()):
        effects.writes.add("<environ>")
    elif name == "matplotlib":
        effects.writes.add("<pyplot>")
    return effects


#: Modules whose state the rules describe: a call into them without a rule is stateless.
_RULED_MODULES = frozenset(
    {"random", "numpy", "os", "sys", "pandas", "matplotlib", "seaborn", "warnings", "logging", "torch"}
    | {"tensorflow", "pathlib", "contextlib", "site", "importlib"}
)
_MUTATING_ON_MODULE = frozenset({"update", "append", "extend", "insert", "clear", "pop", "setdefault", "add"})
