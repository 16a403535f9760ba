"""Runs one step of a pipeline exported by ``nbflow export --to cwl`` (standard library only).

``nbflow export`` copies this file next to the workflow; each CWL step runs::

    python3 nbflow_cwl_step.py MODULE.py FUNCTION --returns=a,b [--bools=..] [--lists=..]
        [--dir UPSTREAM_WORK]... [--f:RELPATH FILE]... [--v:NAME VALUE.pkl]...
        [--pi:NAME INT] [--pf:NAME FLOAT] [--ps:NAME TEXT] [--pb:NAME] [--pe:NAME LITERAL]
        [--pli:NAME 1,2] [--plf:NAME 0.1,0.2]

It copies the upstream steps' working folders and the ``in:`` files into ``work/``,
imports the exported script there (its setup code runs, as in every nbflow kernel),
calls the step's function with the values (pickles from upstream steps) and parameters,
and writes each returned value to ``values/NAME.pkl``. Files the step writes stay in
``work/`` and travel to the steps after it.
"""

import ast
import importlib.util
import os
import pickle
import shutil
import stat
import sys


def _writable(folder):
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR | (stat.S_IXUSR if name in dirs else 0))


def _listed(arg, prefix):
    text = arg[len(prefix) :]
    return [n for n in text.split(",") if n]


def main(argv):
    module_path, function = os.path.abspath(argv[0]), argv[1]
    returns, kwargs = [], {}
    out = os.getcwd()
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    i = 2
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--returns="):
            returns = _listed(arg, "--returns=")
        elif arg.startswith("--bools="):
            kwargs.update({name: False for name in _listed(arg, "--bools=")})
        elif arg.startswith("--lists="):
            kwargs.update({name: [] for name in _listed(arg, "--lists=")})
        elif arg.startswith("--pb:"):
            kwargs[arg[5:]] = True
        else:
            kind, _, name = arg[2:].partition(":")
            value = argv[i + 1]
            i += 1
            if kind == "dir":
                shutil.copytree(value, work, dirs_exist_ok=True, copy_function=shutil.copyfile)
            elif kind == "f":
                target = os.path.join(work, name)
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                if os.path.isdir(value):
                    shutil.copytree(value, target, dirs_exist_ok=True, copy_function=shutil.copyfile)
                else:
                    shutil.copyfile(value, target)
            elif kind == "v":
                with open(value, "rb") as f:
                    kwargs[name] = pickle.load(f)
            elif kind == "pi":
                kwargs[name] = int(value)
            elif kind == "pf":
                kwargs[name] = float(value)
            elif kind == "ps":
                kwargs[name] = value
            elif kind == "pe":
                kwargs[name] = ast.literal_eval(value)
            elif kind in ("pli", "plf"):
                kwargs[name] = [(int if kind == "pli" else float)(v) for v in value.split(",") if v]
            else:
                sys.exit(f"nbflow_cwl_step: unknown argument {arg}")
        i += 1
    _writable(work)
    os.chdir(work)
    sys.path.insert(0, os.path.dirname(module_path))
    spec = importlib.util.spec_from_file_location("exported_pipeline", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = getattr(module, function)(**kwargs)
    os.chdir(out)
    values = dict(zip(returns, [result] if len(returns) == 1 else (result or ()), strict=True))
    os.makedirs("values", exist_ok=True)
    for name, value in values.items():
        with open(os.path.join("values", name + ".pkl"), "wb") as f:
            try:
                pickle.dump(value, f)
            except (pickle.PicklingError, AttributeError, TypeError):
                import cloudpickle  # values pickle cannot store (functions, classes made in a step)

                f.seek(0)
                f.truncate()
                cloudpickle.dump(value, f)


if __name__ == "__main__":
    main(sys.argv[1:])
