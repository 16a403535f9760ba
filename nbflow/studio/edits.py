"""Editing the pipeline from the studio: steps, edges, layout, undo and save.

``StepEdits`` (a base of ``app.Studio``) turns what the user does on the canvas and in
the step editor into ``editing.NotebookEditor`` changes; every change is checked by
rebuilding the pipeline and undone when the result is not a valid pipeline. It must
not edit notebook JSON itself (``editing.py``) nor draw the graph (``canvas.py``).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import panel as pn

from ..errors import PipelineError


class StepEdits:
    """Edits of the notebook and the step/edge editor of one session."""

    # ----------------------------------------------------------------- edits
    def _edit(self, done: str, change: Callable[[], Any]) -> bool:
        """Apply ``change`` to the notebook; undo it when the pipeline it makes is invalid."""
        if self.editor is None:
            return False
        self.editor.checkpoint()
        try:
            changed = change()
            if changed is False:
                self.editor.undo()
                return False
            self._rebuild()
        except PipelineError as e:
            self.editor.undo()
            self._rebuild()
            self._say(f"not changed: {e}", "danger")
            return False
        self._force_save = False
        self._say(f"{done} (not saved yet)", "success")
        return True

    def _moved(self, positions: dict[str, dict[str, float]]) -> None:
        if self.editor is None or self.pipeline is None:
            return
        positions = {k: v for k, v in positions.items() if k in self.pipeline.steps}
        if not positions:
            return
        self.editor.checkpoint()
        self.editor.set_layout(positions)
        # The browser already shows the node where it was dropped: rebuild, do not redraw.
        self._rebuild(render=False)
        self._say(f"moved {', '.join(positions)} (not saved yet)", "success")

    def _connected(self, source: str, target: str) -> None:
        if self.pipeline is None or source not in self.pipeline.steps or target not in self.pipeline.steps:
            return
        if source in self.pipeline.deps[target]:
            names = self.pipeline.edge_names.get((source, target), ())
            why = f"it reads {', '.join(names)} from it" if names else "it is already tagged after:" + source
            self._say(f"{target} already depends on {source}: {why}", "info")
            return
        if self._edit(
            f"{target} now runs after {source} (tag after:{source})", lambda: self.editor.add_after(target, source)
        ):
            self.canvas.selected_edge = f"{source}->{target}"

    def _remove_edge(self) -> None:
        edge = self.canvas.selected_edge
        if self.pipeline is None or "->" not in edge:
            return
        source, target = edge.split("->", 1)
        if self._edit(f"removed after:{source} from {target}", lambda: self.editor.remove_after(target, source)):
            self.canvas.selected_edge = ""

    def _add_step(self) -> None:
        name = self.new_name.value_input.strip() if self.new_name.value_input else self.new_name.value.strip()
        code, docs = self.new_code.value, self.new_docs.value_input or self.new_docs.value
        if not name:
            self._say("give the new step a name", "warning")
            return
        if self._edit(f"added step {name}", lambda: self.editor.add_step(name, code, docs=docs)):
            self.new_name.value = self.new_name.value_input = ""
            self.new_docs.value = self.new_docs.value_input = ""
            self.new_code.value = ""
            self.canvas.selected = name

    def _delete_step(self) -> None:
        name = self._editing
        if name is None:
            return
        if self._edit(f"deleted step {name} (Undo brings it back)", lambda: self.editor.delete_step(name)):
            self.canvas.selected = ""

    def _rename(self) -> None:
        old, new = self._editing, (self.rename_input.value_input or self.rename_input.value).strip()
        if old is None or not new or new == old:
            return
        self._apply_step_edits(quiet=True)
        if self._edit(f"renamed {old} to {new}", lambda: self.editor.rename_step(old, new)):
            self.canvas.selected = new  # opens the renamed step in the editor

    def _pending_step_edits(self) -> dict[str, Any] | None:
        name = self._editing
        if self.editor is None or name is None or self.pipeline is None or name not in self.pipeline.steps:
            return None
        return {
            "codes": [editor.value for editor in self.code_box.objects],
            "docs": self.docs_input.value_input if self.docs_input.value_input is not None else self.docs_input.value,
            "tags": [t for t in (self.tags_input.value_input or self.tags_input.value or "").split(",") if t.strip()],
        }

    def _apply_step_edits(self, quiet: bool = False) -> bool:
        """Write the step editor's code, docs and tags into the notebook (not to disk)."""
        edits = self._pending_step_edits()
        if edits is None:
            return False
        name = self._editing
        editor = self.editor
        assert name is not None and editor is not None

        def change() -> bool:
            changed = False
            for i, code in enumerate(edits["codes"]):
                changed = editor.set_code(name, code, i) or changed
            changed = editor.set_docs(name, edits["docs"]) or changed
            changed = editor.set_tags(name, edits["tags"]) or changed
            return changed

        changed = self._edit(f"updated step {name}", change)
        if not changed and not quiet:
            self._say(f"step {name}: nothing changed", "info")
        return changed

    def _undo(self) -> None:
        if self.editor is not None and self.editor.undo():
            try:
                self._rebuild()
                self._say("undone", "info")
            except PipelineError as e:
                self._say(str(e), "danger")
        self._update_toolbar()

    def _save(self) -> bool:
        if self.editor is None:
            return False
        self._apply_step_edits(quiet=True)
        try:
            saved = self.editor.save(force=self._force_save)
        except PipelineError as e:
            if "changed on disk" in str(e):
                self._force_save = True
            self._say(str(e), "danger")
            return False
        self._force_save = False
        self._refresh_notebook_list()
        self._update_toolbar()
        self._say(f"saved {self.editor.path.name}" if saved else "nothing to save", "success")
        return True

    # ---------------------------------------------------------- step editor
    def _select(self, name: str) -> None:
        if name == self._editing:
            return
        if self._editing is not None:
            self._apply_step_edits(quiet=True)  # leaving a step keeps what was typed
        self._show_step(name or None)

    def _show_step(self, name: str | None) -> None:
        self._editing = name if self.pipeline is not None and name in self.pipeline.steps else None
        if self._editing is None:
            self.step_form.visible = False
            if not self.canvas.selected_edge:
                self.step_title.object = "Select a step or an edge on the canvas."
                self.step_info.object = ""
            return
        assert self.pipeline is not None and self.editor is not None and self.model is not None
        name = self._editing
        step = self.pipeline.steps[name]
        node = next(n for n in self.model["nodes"] if n["id"] == name)
        state = self.canvas.states.get(name, node["state"])
        deps = ", ".join(
            f"{d} ({', '.join(self.pipeline.edge_names.get((d, name), ())) or 'after'})"
            for d in self.pipeline.deps[name]
        )
        reasons = html.escape("; ".join(node["reasons"]))
        if reasons and state == "stale":
            state_line = f"**state:** stale: {reasons}"
        elif reasons and state != "fresh":
            state_line = f"**state:** {state} (it ran because: {reasons})"
        else:
            state_line = f"**state:** {state}"
        lines = [
            state_line,
            f"**cell:** {step.cell.number} &nbsp; **after:** {html.escape(deps) or '(nothing)'}",
            f"**reads:** {html.escape(', '.join(sorted(step.reads))) or '-'} &nbsp; "
            f"**writes:** {html.escape(', '.join(sorted(step.writes))) or '-'}",
        ]
        if step.params:
            lines.append(f"**parameters:** {', '.join(step.params)}")
        details = self._graph_state.details.get(name) if self._graph_state is not None else None
        if details and details.get("error"):
            lines.append(f"**error:** {html.escape(details['error'])}")
        self.step_title.object = f"### {html.escape(name)}"
        self.step_info.object = "\n\n".join(lines)
        self.rename_input.param.update(value=name, value_input=name)
        docs = self.editor.step_docs(name)
        self.docs_input.param.update(value=docs, value_input=docs)
        tags = ", ".join(self.editor.step_tags(name))
        self.tags_input.param.update(value=tags, value_input=tags)
        codes = self.editor.step_code(name)
        editors = list(self.code_box.objects)
        if len(editors) != len(codes):
            editors = [
                pn.widgets.CodeEditor(
                    language="python",
                    soft_tabs=True,
                    height=220 if len(codes) == 1 else 140,
                    sizing_mode="stretch_width",
                )
                for _ in codes
            ]
        for editor, code in zip(editors, codes, strict=True):
            editor.value = code
        self.code_box.objects = editors
        self.step_form.visible = True
        self.remove_edge_button.visible = False

    def _select_edge(self, edge: str) -> None:
        if not edge or self.pipeline is None or "->" not in edge:
            self.remove_edge_button.visible = False
            if not edge and not self.canvas.selected:
                self._show_step(None)
            return
        self._apply_step_edits(quiet=True)
        source, target = edge.split("->", 1)
        if target not in self.pipeline.steps:
            return
        self._editing = None
        self.step_form.visible = False
        names = self.pipeline.edge_names.get((source, target), ())
        explicit = source in self.pipeline.steps[target].after
        self.step_title.object = f"### {html.escape(source)} → {html.escape(target)}"
        why = []
        if names:
            why.append(
                f"inferred: {html.escape(target)} reads {html.escape(', '.join(names))}, written by {html.escape(source)}"
            )
        if explicit:
            why.append(f"explicit: {html.escape(target)} is tagged `after:{html.escape(source)}`")
        if names and not explicit:
            why.append("An inferred edge goes away only when the code stops reading those names.")
        self.step_info.object = "\n\n".join(why)
        self.remove_edge_button.visible = explicit
