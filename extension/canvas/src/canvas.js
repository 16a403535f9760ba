// nbflow's pipeline canvas: the one drawing of a pipeline and its gestures, on cytoscape.js.
// Used by the studio (panel.js, a Panel ESM component) and by the JupyterLab side panel
// (extension/src/graphview.ts): neither draws nor handles a gesture itself.
//
// It only draws and reports gestures; what a gesture means for the notebook (whether an
// edge is allowed, where a position is saved) is decided by whoever created the canvas.
//
//   const canvas = createCanvas(element, {onMove, onConnect, onSelect, onSelectEdge});
//   canvas.setGraph({nodes: [{id, label, state, x, y}], edges: [{id, source, target,
//                    names, explicit}], legend: [{state, colour, shape, label}]});
//   canvas.setStates({step: state});   // live states during a run
//   canvas.setLabels({step: label});   // labels that changed (a check mark, what a step produced)
//
// A pipeline of notebooks adds `groups: [{id, label, current}]` (one per notebook) and `parent`
// on each node: a notebook is drawn as a compound node around its steps (the `current` one,
// the notebook being looked at, with a solid blue border), and edges with `link: true`
// (between notebooks) are drawn thicker. A graph with `readonly: true` cannot be edited:
// nodes do not move and Move/Connect are hidden (a pipeline of notebooks is edited one
// notebook at a time).
//
// Callbacks: onMove({step: {x, y}}) after a node is dropped; onConnect(source, target)
// after an edge is drawn in Connect mode (the drawn edge is removed again: the graph the
// owner sends next says whether it exists); onSelect(step or "") and onSelectEdge(id or "")
// on a tap. For graphs of hundreds of steps: a search box (Enter selects and centres the
// first step whose name contains the text), Fit, and Collapse, which hides the fan-out
// below the selected step (the steps that only it feeds) behind one "+N" on its node.

import cytoscape from "cytoscape";
import edgehandles from "cytoscape-edgehandles";

let registered = false;

const STYLE = [
  {
    // Only the pipeline's nodes: edgehandles adds a ghost node without data while drawing.
    selector: "node[display]",
    style: {
      label: "data(display)",
      "text-wrap": "wrap",
      "text-valign": "center",
      "text-halign": "center",
      "font-family": "DejaVu Sans, Helvetica, Arial, sans-serif",
      "font-size": 13,
      color: "#111",
      width: 150,
      height: 46,
      shape: "data(shape)",
      "background-color": "data(colour)",
      "border-width": 1,
      "border-color": "#555",
    },
  },
  // A step with a check mark's or a summary's second line (view.node_label): room for three lines.
  { selector: "node[?tall]", style: { height: 62, "font-size": 11, "text-max-width": 146 } },
  {
    selector: "node.notebook",
    style: {
      "text-valign": "top",
      "text-halign": "center",
      "font-weight": "bold",
      "font-size": 14,
      "background-opacity": 0.6,
      "border-style": "dashed",
      "border-color": "#8a94a0",
      padding: 14,
    },
  },
  {
    selector: "node.notebook.current",
    style: { "border-style": "solid", "border-width": 3, "border-color": "#3182bd", "background-color": "#e8f1fa" },
  },
  { selector: "edge.link", style: { width: 3, "line-color": "#6a51a3", "target-arrow-color": "#6a51a3" } },
  { selector: "node.collapsed", style: { "border-width": 3, "border-style": "double" } },
  { selector: "node.found", style: { "border-width": 4, "border-color": "#e6550d" } },
  {
    selector: "node:selected",
    style: { "border-width": 4, "border-color": "#111", "overlay-opacity": 0 },
  },
  { selector: ".hidden", style: { display: "none" } },
  {
    selector: "edge",
    style: {
      width: 2,
      "line-color": "#777",
      "target-arrow-color": "#777",
      "target-arrow-shape": "triangle",
      "curve-style": "bezier",
    },
  },
  {
    selector: "edge[label]",
    style: {
      label: "data(label)",
      "font-size": 10,
      color: "#333",
      "text-background-color": "#fff",
      "text-background-opacity": 0.8,
      "text-background-padding": 2,
      "text-rotation": "autorotate",
    },
  },
  { selector: "edge[?explicit]", style: { "line-style": "dashed" } },
  {
    selector: "edge.skip",
    style: { "curve-style": "unbundled-bezier", "control-point-distances": 110, "control-point-weights": 0.5 },
  },
  {
    selector: "edge:selected",
    style: { width: 4, "line-color": "#111", "target-arrow-color": "#111", "overlay-opacity": 0 },
  },
  {
    selector: ".eh-preview, .eh-ghost-edge",
    style: { "line-color": "#3182bd", "target-arrow-color": "#3182bd", "line-style": "solid", label: "" },
  },
  { selector: ".eh-ghost-edge.eh-preview-active", style: { opacity: 0 } },
  { selector: ".eh-hover", style: { "border-width": 4, "border-color": "#3182bd" } },
];

const CSS = `
.nbflow-canvas { position: relative; width: 100%; height: 100%; min-height: 300px;
  border: 1px solid #ddd; border-radius: 4px; background: #fafafa; box-sizing: border-box;
  font-family: DejaVu Sans, Helvetica, Arial, sans-serif; }
.nbflow-canvas .cy { position: absolute; inset: 0; }
.nbflow-canvas .toolbar { position: absolute; top: 6px; left: 6px; right: 6px; z-index: 10; display: flex;
  flex-wrap: wrap; gap: 4px; pointer-events: none; }
.nbflow-canvas .toolbar > * { pointer-events: auto; }
.nbflow-canvas .toolbar button, .nbflow-canvas .toolbar input { font: inherit; font-size: 12px; padding: 3px 9px;
  border: 1px solid #999; border-radius: 3px; background: #fff; color: #111; }
.nbflow-canvas .toolbar button { cursor: pointer; }
.nbflow-canvas .toolbar button:disabled { cursor: default; opacity: .5; }
.nbflow-canvas .toolbar input { width: 9em; }
.nbflow-canvas .toolbar button[aria-pressed="true"] { background: #3182bd; color: #fff; border-color: #3182bd; }
.nbflow-canvas .legend { position: absolute; bottom: 6px; left: 6px; z-index: 10; font-size: 11px;
  display: flex; flex-wrap: wrap; gap: 4px 10px; max-width: 95%; background: rgba(255,255,255,.85);
  padding: 3px 6px; border-radius: 3px; color: #111; }
.nbflow-canvas .legend span.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 3px;
  border: 1px solid #555; vertical-align: middle; }
.nbflow-canvas .hint { position: absolute; top: 36px; left: 8px; z-index: 10; font-size: 11px; color: #555; }
`;

function styleOf(graph) {
  const byState = {};
  for (const item of graph.legend || []) {
    byState[item.state] = item;
  }
  return byState;
}

function nodeData(node, state, byState, hidden, label) {
  const look = byState[state] || { colour: "#ddd", shape: "round-rectangle" };
  const more = hidden ? `  (+${hidden})` : "";
  const text = label || node.label;
  return {
    id: node.id,
    label: text,
    state,
    display: `${text}${more}\n${state}`,
    tall: String(text).includes("\n"),
    colour: look.colour,
    shape: look.shape,
  };
}

function elementsOf(graph, states) {
  const byState = styleOf(graph);
  const where = Object.fromEntries((graph.nodes || []).map((node) => [node.id, node]));
  const layers = [...new Set((graph.nodes || []).map((node) => node.y))].sort((a, b) => a - b);
  const gap = Math.min(...layers.slice(1).map((y, i) => y - layers[i]), Infinity);
  // An edge that jumps over a layer straight down would cross the nodes in between: bend it.
  const skips = (edge) => {
    const a = where[edge.source];
    const b = where[edge.target];
    return a && b && Math.abs(a.x - b.x) < 20 && Math.abs(b.y - a.y) > 1.5 * gap;
  };
  const groups = (graph.groups || []).map((g) => ({
    group: "nodes",
    classes: g.current ? "notebook current" : "notebook",
    selectable: false,
    grabbable: false,
    data: { id: g.id, label: g.label, display: g.label, notebook: true, colour: "#f4f6f8", shape: "round-rectangle" },
  }));
  const nodes = (graph.nodes || []).map((node) => ({
    group: "nodes",
    data: { ...nodeData(node, states[node.id] || node.state, byState, 0), ...(node.parent ? { parent: node.parent } : {}) },
    position: { x: node.x, y: node.y },
  }));
  const edges = (graph.edges || []).map((edge) => ({
    group: "edges",
    classes: [skips(edge) ? "skip" : "", edge.link ? "link" : ""].join(" ").trim(),
    data: {
      id: edge.id,
      source: edge.source,
      target: edge.target,
      label: (edge.names || []).join(", ") || (edge.explicit ? "after" : ""),
      explicit: !!edge.explicit,
    },
  }));
  return [...groups, ...nodes, ...edges];
}

/** The steps only `step` feeds, directly or through each other (what Collapse hides). */
export function fanOut(step, edges) {
  const parents = {};
  const children = {};
  for (const edge of edges) {
    (parents[edge.target] = parents[edge.target] || []).push(edge.source);
    (children[edge.source] = children[edge.source] || []).push(edge.target);
  }
  const hidden = new Set();
  let grew = true;
  while (grew) {
    grew = false;
    for (const node of [step, ...hidden]) {
      for (const child of children[node] || []) {
        if (child !== step && !hidden.has(child) && parents[child].every((p) => p === step || hidden.has(p))) {
          hidden.add(child);
          grew = true;
        }
      }
    }
  }
  return [...hidden];
}

function button(text, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.title = title;
  return b;
}

/** Draw a pipeline in `el` (see the module comment for `options` and what comes back). */
export function createCanvas(el, options = {}) {
  if (!registered) {
    cytoscape.use(edgehandles);
    registered = true;
  }
  const emit = (name, ...args) => options[name] && options[name](...args);
  const style = document.createElement("style");
  style.textContent = CSS;
  const root = document.createElement("div");
  root.className = "nbflow-canvas";
  const container = document.createElement("div");
  container.className = "cy";
  const toolbar = document.createElement("div");
  toolbar.className = "toolbar";
  const moveButton = button("Move", "Drag nodes to arrange them (positions are saved in the notebook)");
  const connectButton = button(
    "Connect",
    "Drag from a step to another to make the second run after the first (an after: tag)"
  );
  const fitButton = button("Fit", "Show the whole graph");
  const collapseButton = button("Collapse", "Hide (or show again) the steps only the selected step feeds");
  collapseButton.className = "collapse";
  const search = document.createElement("input");
  search.type = "search";
  search.placeholder = "Find a step";
  search.title = "Type part of a step's name, Enter to select it";
  search.className = "search";
  toolbar.append(moveButton, connectButton, fitButton, collapseButton, search);
  if (options.toolbar === false) {
    toolbar.hidden = true;
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  const hint = document.createElement("div");
  hint.className = "hint";
  root.append(container, toolbar, legend, hint);
  el.append(style, root);

  const cy = cytoscape({
    container,
    elements: [],
    style: STYLE,
    layout: { name: "preset" },
    minZoom: 0.05,
    maxZoom: 3,
    boxSelectionEnabled: false,
    selectionType: "single",
  });
  const handles = cy.edgehandles({
    canConnect: (source, target) => !source.same(target),
    edgeParams: () => ({ data: { explicit: true } }),
    hoverDelay: 50,
    snap: true,
    snapThreshold: 20,
  });
  let graph = { nodes: [], edges: [], legend: [] };
  let states = {};
  let labels = {};
  let mode = "move";
  let fitted = false;
  let wasReadonly = false;
  const collapsed = new Set();

  function fit() {
    if (container.clientWidth > 0 && container.clientHeight > 0 && cy.nodes(":visible").length) {
      cy.resize();
      cy.fit(cy.nodes(":visible"), 40);
      if (cy.zoom() > 1.2) {
        cy.zoom(1.2);
        cy.center(cy.nodes(":visible"));
      }
      fitted = true;
    }
  }

  function drawLegend() {
    legend.replaceChildren();
    for (const item of graph.legend || []) {
      const entry = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = item.colour;
      entry.append(swatch, document.createTextNode(item.state));
      entry.title = item.label;
      legend.append(entry);
    }
  }

  function applyNodes() {
    const byState = styleOf(graph);
    const hiddenBy = {};
    for (const step of collapsed) {
      hiddenBy[step] = fanOut(step, graph.edges || []);
    }
    const hidden = new Set(Object.values(hiddenBy).flat());
    cy.batch(() => {
      for (const node of graph.nodes || []) {
        const element = cy.getElementById(node.id);
        if (element.nonempty()) {
          const count = (hiddenBy[node.id] || []).length;
          element.data(nodeData(node, states[node.id] || node.state, byState, count, labels[node.id]));
          element.toggleClass("collapsed", collapsed.has(node.id));
          element.toggleClass("hidden", hidden.has(node.id));
        }
      }
      cy.edges().forEach((edge) => {
        edge.toggleClass("hidden", hidden.has(edge.data("source")) || hidden.has(edge.data("target")));
      });
    });
  }

  let pending = null;

  function setGraph(next, nextStates = {}) {
    if (cy.nodes(":grabbed").nonempty()) {
      // Redrawing now would drop the node under the mouse: draw when it is released.
      pending = [next, nextStates];
      return;
    }
    pending = null;
    graph = { nodes: [], edges: [], legend: [], ...(next || {}) };
    states = { ...nextStates };
    const ids = new Set(graph.nodes.map((n) => n.id));
    for (const step of [...collapsed]) {
      if (!ids.has(step)) {
        collapsed.delete(step);
      }
    }
    const selected = cy.$(":selected").map((e) => e.id());
    cy.batch(() => {
      cy.elements().remove();
      cy.add(elementsOf(graph, states));
      for (const id of selected) {
        cy.getElementById(id).select();
      }
    });
    applyNodes();
    drawLegend();
    const readonly = !!graph.readonly;
    if (readonly !== wasReadonly) {
      // Only on a change: edgehandles' Connect mode holds the nodes still the same way.
      wasReadonly = readonly;
      if (readonly) {
        setMode("move");
      }
      cy.autoungrabify(readonly);
      moveButton.hidden = connectButton.hidden = readonly;
    }
    updateButtons();
    if (!fitted) {
      fit();
    }
  }

  function setStates(next) {
    states = { ...next };
    applyNodes();
  }

  function setLabels(next) {
    labels = { ...next };
    applyNodes();
  }

  function select(step) {
    cy.elements().unselect();
    if (step) {
      cy.getElementById(step).select();
    }
    updateButtons();
  }

  function selectEdge(id) {
    cy.elements().unselect();
    if (id) {
      cy.getElementById(id).select();
    }
    updateButtons();
  }

  function selectedStep() {
    const node = cy.nodes(":selected");
    return node.nonempty() ? node.id() : "";
  }

  function updateButtons() {
    const step = selectedStep();
    const has = step && fanOut(step, graph.edges || []).length > 0;
    collapseButton.disabled = !has && !collapsed.has(step);
    collapseButton.textContent = collapsed.has(step) ? "Expand" : "Collapse";
  }

  function toggleCollapse(step) {
    if (!step) {
      return;
    }
    if (collapsed.has(step)) {
      collapsed.delete(step);
    } else if (fanOut(step, graph.edges || []).length) {
      collapsed.add(step);
    }
    applyNodes();
    updateButtons();
  }

  /** Mark the steps whose name contains `text`; centre on and select the first. Returns them. */
  function find(text, choose = true) {
    const wanted = (text || "").trim().toLowerCase();
    cy.nodes().removeClass("found");
    if (!wanted) {
      return [];
    }
    const found = cy.nodes("[display][!notebook]").filter((n) => n.id().toLowerCase().includes(wanted));
    // A step hidden in a collapsed fan-out is shown again when searched for.
    for (const step of [...collapsed]) {
      if (found.some((n) => fanOut(step, graph.edges || []).includes(n.id()))) {
        collapsed.delete(step);
      }
    }
    applyNodes();
    found.addClass("found");
    if (choose && found.nonempty()) {
      const first = found[0];
      cy.animate({ center: { eles: first }, zoom: Math.max(cy.zoom(), 0.8) }, { duration: 150 });
      select(first.id());
      emit("onSelect", first.id());
    }
    return found.map((n) => n.id());
  }

  function setMode(next) {
    mode = next === "connect" ? "connect" : "move";
    const connecting = mode === "connect";
    if (connecting) {
      handles.enableDrawMode();
    } else {
      handles.disableDrawMode();
    }
    moveButton.setAttribute("aria-pressed", String(!connecting));
    connectButton.setAttribute("aria-pressed", String(connecting));
    hint.textContent = connecting ? "drag from a step to the step that must run after it" : "";
  }

  cy.on("dragfree", "node", (event) => {
    const node = event.target;
    const { x, y } = node.position();
    emit("onMove", { [node.id()]: { x, y } });
  });
  cy.on("free", "node", (event) => {
    if (pending) {
      // The graph that arrived meanwhile, with the released node where it was dropped.
      const [next, nextStates] = pending;
      const { x, y } = event.target.position();
      const nodes = (next.nodes || []).map((n) => (n.id === event.target.id() ? { ...n, x, y } : n));
      const waiting = pending;
      setTimeout(() => pending === waiting && setGraph({ ...next, nodes }, nextStates), 0);
    }
  });
  cy.on("tap", "node", (event) => {
    if (!event.target.data("display") || event.target.data("notebook")) {
      return; // edgehandles' ghost node, or a notebook's group
    }
    updateButtons();
    emit("onSelect", event.target.id());
  });
  cy.on("select unselect", () => updateButtons());
  cy.on("tap", "edge", (event) => emit("onSelectEdge", event.target.id()));
  cy.on("tap", (event) => {
    if (event.target === cy) {
      emit("onSelect", "");
      emit("onSelectEdge", "");
    }
  });
  cy.on("ehcomplete", (event, source, target, added) => {
    // The owner decides whether the edge exists: it answers with a new graph.
    added.remove();
    emit("onConnect", source.id(), target.id());
  });
  moveButton.addEventListener("click", () => (options.onMode ? options.onMode("move") : setMode("move")));
  connectButton.addEventListener("click", () => (options.onMode ? options.onMode("connect") : setMode("connect")));
  fitButton.addEventListener("click", fit);
  collapseButton.addEventListener("click", () => toggleCollapse(selectedStep()));
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      find(search.value);
    }
  });
  search.addEventListener("input", () => find(search.value, false));

  // cytoscape caches where its container is on the page; the page layout can move it
  // without resizing it (a message appears above), so refresh before every gesture.
  root.addEventListener("mousedown", () => cy.resize(), { capture: true });
  root.addEventListener("touchstart", () => cy.resize(), { capture: true, passive: true });

  const resize = new ResizeObserver(() => {
    cy.resize();
    if (!fitted) {
      fit();
    }
  });
  resize.observe(container);

  setMode("move");
  updateButtons();

  return {
    cy,
    root,
    setGraph,
    setStates,
    setLabels,
    select,
    selectEdge,
    selectedStep,
    setMode,
    get mode() {
      return mode;
    },
    fit,
    find,
    toggleCollapse,
    collapsed: () => [...collapsed],
    /** Where a step is drawn on the page (tests and the browser console). */
    nodeCenter(id) {
      const box = container.getBoundingClientRect();
      const pos = cy.getElementById(id).renderedPosition();
      return { x: box.left + pos.x, y: box.top + pos.y };
    },
    edgeMiddle(id) {
      const box = container.getBoundingClientRect();
      const pos = cy.getElementById(id).renderedMidpoint();
      return { x: box.left + pos.x, y: box.top + pos.y };
    },
    states() {
      return Object.fromEntries(cy.nodes("[display][!notebook]").map((n) => [n.id(), n.data("state")]));
    },
    destroy() {
      resize.disconnect();
      handles.destroy();
      cy.destroy();
      root.remove();
      style.remove();
    },
  };
}
