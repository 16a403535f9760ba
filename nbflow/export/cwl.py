"""``nbflow export NB --to cwl``: the pipeline as a CWL v1.2 workflow.

The folder it writes holds:

==========================  ===============================================================
``<notebook>.cwl``          the Workflow: one step per pipeline step (each an inline
                            ``CommandLineTool``), the parameters as workflow inputs, the
                            external ``in:`` files as ``File`` inputs, every value a step
                            passes on and every ``out:`` file as workflow outputs
``<notebook>.py``           the exported script (``export/script.py``): the steps' code
``nbflow_cwl_step.py``      the standard-library runner each step calls (``cwl_runner.py``)
``<notebook>-job.yml``      the parameters cell's values and the ``in:`` files, to edit
==========================  ===============================================================

Data passes between steps as files: each value a later step reads is a pickle
(``values/<name>.pkl``, a ``File`` output wired to the reader's input), and the files a
step writes in its working folder (``work``, a ``Directory`` output) are copied into the
working folder of the steps after it, so a step that reads what another wrote (``out:``
files, ``after:`` edges) finds it where it would under nbflow. Run it with
``cwltool --no-container <notebook>.cwl <notebook>-job.yml`` (the local ``python3`` with
the notebook's libraries) or in a container that has them.

Parameter types: ``bool``/``int``/``float``/``str`` become ``boolean``/``long``/
``double``/``string``; a list of ints or floats an array; anything else a ``string``
holding a Python literal. This module writes files; it never runs the workflow.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..graph import Pipeline
from ..outfiles import kind as out_kind
from ..outfiles import same_path
from ..parameters import Parameter
from .script import export_script, step_functions

RUNNER = "nbflow_cwl_step.py"


def _ident(text: str) -> str:
    return re.sub(r"\W", "_", text)


def _param_input(p: Parameter) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(workflow input, tool input, the name when it is a bool or list flag) for a parameter."""
    value = p.default
    kind = type(value)
    if kind is bool:
        return (
            {"type": "boolean", "default": value},
            {"type": "boolean", "inputBinding": {"prefix": f"--pb:{p.name}"}},
            "bool",
        )
    if kind in (int, float, str):
        cwl, flag = {int: ("long", "pi"), float: ("double", "pf"), str: ("string", "ps")}[kind]
        return {"type": cwl, "default": value}, {"type": cwl, "inputBinding": {"prefix": f"--{flag}:{p.name}"}}, None
    if kind is list and value and len({type(v) for v in value}) == 1 and type(value[0]) in (int, float):
        cwl, flag = ("long", "pli") if type(value[0]) is int else ("double", "plf")
        array = {"type": "array", "items": cwl}
        binding = {"prefix": f"--{flag}:{p.name}", "itemSeparator": ","}
        return {"type": array, "default": value}, {"type": array, "inputBinding": binding}, "list"
    return (
        {"type": "string", "default": repr(value), "doc": "a Python literal"},
        {"type": "string", "inputBinding": {"prefix": f"--pe:{p.name}"}},
        None,
    )


def workflow(pipeline: Pipeline, script_name: str, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The CWL workflow document and its job (parameters and ``in:`` files) for ``pipeline``."""
    functions = step_functions(pipeline)
    notebook_dir = pipeline.path.resolve().parent
    files = sorted({f for s in pipeline.steps.values() for f in s.in_files if f not in s.file_inputs})
    file_ids = {f: "in_" + _ident(f) for f in files}
    inputs: dict[str, Any] = {
        "nbflow_runner": {"type": "File", "default": {"class": "File", "location": RUNNER}},
        "nbflow_module": {"type": "File", "default": {"class": "File", "location": script_name}},
    }
    job: dict[str, Any] = {}
    tool_params = {}
    for name, p in pipeline.parameters.items():
        inputs[name], tool_params[name], _flag = _param_input(p)
        job[name] = (
            p.default
            if type(p.default) in (bool, int, float, str) or inputs[name]["type"] != "string"
            else repr(p.default)
        )
    for f, ident in file_ids.items():
        source = notebook_dir / f
        kind = "Directory" if source.is_dir() else "File"
        location = os.path.relpath(source, folder)
        inputs[ident] = {"type": kind, "doc": f"in: {f}", "default": {"class": kind, "location": location}}
        job[ident] = {"class": kind, "path": location}
    outputs: dict[str, Any] = {}
    steps: dict[str, Any] = {}
    for name in pipeline.order:
        step, fn = pipeline.steps[name], functions[name]
        tool_inputs: dict[str, Any] = {
            "nbflow_runner": {"type": "File", "inputBinding": {"position": 0}},
            "nbflow_module": {"type": "File", "inputBinding": {"position": 1}},
        }
        wiring: dict[str, Any] = {"nbflow_runner": "nbflow_runner", "nbflow_module": "nbflow_module"}
        flags: dict[str, list[str]] = {"bool": [], "list": []}
        for arg in fn.arguments:
            if arg in step.inputs:
                tool_inputs[arg] = {"type": "File", "inputBinding": {"prefix": f"--v:{arg}", "position": 4}}
                wiring[arg] = f"{step.inputs[arg]}/{arg}"
            elif arg in pipeline.parameters:
                tool_inputs[arg] = {
                    **tool_params[arg],
                    "inputBinding": {**tool_params[arg]["inputBinding"], "position": 4},
                }
                wiring[arg] = arg
                flag = _param_input(pipeline.parameters[arg])[2]
                if flag:
                    flags[flag].append(arg)
        upstream = [d for d in pipeline.deps[name]]
        if upstream:
            tool_inputs["nbflow_dirs"] = {
                "type": {"type": "array", "items": "Directory", "inputBinding": {"prefix": "--dir"}},
                "inputBinding": {"position": 3},
            }
            wiring["nbflow_dirs"] = {"source": [f"{d}/nbflow_work" for d in upstream], "linkMerge": "merge_flattened"}
        for f in step.in_files:
            if f in file_ids:
                tool_inputs[file_ids[f]] = {
                    "type": inputs[file_ids[f]]["type"],
                    "inputBinding": {"prefix": f"--f:{f}", "position": 3},
                }
                wiring[file_ids[f]] = file_ids[f]
        tool_outputs: dict[str, Any] = {"nbflow_work": {"type": "Directory", "outputBinding": {"glob": "work"}}}
        for value in fn.returns:
            tool_outputs[value] = {"type": "File", "outputBinding": {"glob": f"values/{value}.pkl"}}
            outputs[f"{_ident(name)}_{value}"] = {"type": "File", "outputSource": f"{name}/{value}"}
        for f in step.out_files:
            ident = "out_" + _ident(f)
            kind_of = out_kind(f)
            cwl_type: Any = {"file": "File", "folder": "Directory"}.get(kind_of, {"type": "array", "items": "File"})
            if f in step.optional_outs and kind_of != "glob":
                cwl_type += "?"  # a glob's array may be empty already
            tool_outputs[ident] = {"type": cwl_type, "outputBinding": {"glob": f"work/{same_path(f)}"}}
            outputs[f"{_ident(name)}_{ident}"] = {
                "type": cwl_type,
                "outputSource": f"{name}/{ident}",
                "doc": f"out: {f}",
            }
        arguments: list[Any] = [
            {"position": 2, "valueFrom": fn.function},
            {"position": 2, "valueFrom": f"--returns={','.join(fn.returns)}"},
        ]
        for flag, names in flags.items():
            if names:
                arguments.append({"position": 2, "valueFrom": f"--{flag}s={','.join(names)}"})
        tool: dict[str, Any] = {
            "class": "CommandLineTool",
            "baseCommand": ["python3"],
            "arguments": arguments,
            "inputs": tool_inputs,
            "outputs": tool_outputs,
        }
        if step.docs:
            tool["doc"] = step.docs
        steps[name] = {"run": tool, "in": wiring, "out": sorted(tool_outputs)}
    doc: dict[str, Any] = {
        "cwlVersion": "v1.2",
        "class": "Workflow",
        "label": pipeline.source.title or pipeline.path.stem,
        "doc": f"Exported from {pipeline.path.name} by `nbflow export --to cwl`.",
        "requirements": {"MultipleInputFeatureRequirement": {}},
        "inputs": inputs,
        "outputs": outputs,
        "steps": steps,
    }
    return doc, job


def write_cwl(pipeline: Pipeline, output: str | Path | None = None) -> list[Path]:
    """Write the workflow folder (default ``<notebook>-cwl/`` next to it); return the files, workflow first, job last."""
    import yaml

    from ..fsutil import atomic_write_bytes

    folder = Path(output) if output is not None else pipeline.path.with_name(pipeline.path.stem + "-cwl")
    stem = _ident(pipeline.path.stem)
    script = export_script(pipeline)  # refuses before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    doc, job = workflow(pipeline, f"{stem}.py", folder.resolve())
    paths = [folder / f"{stem}.cwl", folder / f"{stem}.py", folder / RUNNER, folder / f"{stem}-job.yml"]
    atomic_write_bytes(paths[0], ("#!/usr/bin/env cwl-runner\n" + yaml.safe_dump(doc, sort_keys=False)).encode(), 0o644)
    atomic_write_bytes(paths[1], script.encode(), 0o644)
    shutil.copyfile(Path(__file__).with_name("cwl_runner.py"), paths[2])
    atomic_write_bytes(paths[3], yaml.safe_dump(job, sort_keys=False).encode(), 0o644)
    return paths
