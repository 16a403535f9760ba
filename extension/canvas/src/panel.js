// The studio's pipeline canvas: a Panel ESM component (nbflow/studio/canvas.py) drawing the
// graph with cytoscape.js. It only draws and reports gestures; every decision (what an
// edge means, whether a drawn edge is allowed, where a node is saved) is taken in Python.
//
// Model properties (synced with the Python PipelineCanvas):
//   graph          {nodes, edges, legend} from nbflow.view.graph_model
//   states         {step: state} live states during a run (win over graph.nodes[].state)
//   selected       the selected step ("" for none)        written here on tap
//   selected_edge  the selected edge id "a->b" ("" for none) written here on tap
//   mode           "move" (drag nodes) or "connect" (drag from a node to another draws an edge)
// Messages to Python (model.send_msg):
//   {type: "moved", positions: {step: {x, y}}}   after a node is dropped
//   {type: "connect", source, target}            after an edge is drawn

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
  {
    selector: "node:selected",
    style: { "border-width": 4, "border-color": "#111", "overlay-opacity": 0 },
  },
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
.nbflow-canvas .toolbar { position: absolute; top: 6px; left: 6px; z-index: 10; display: flex; gap: 4px; }
.nbflow-canvas .toolbar button { font: inherit; font-size: 12px; padding: 3px 9px; border: 1px solid #999;
  border-radius: 3px; background: #fff; cursor: pointer; }
.nbflow-canvas .toolbar button[aria-pressed="true"] { background: #3182bd; color: #fff; border-color: #3182bd; }
.nbflow-canvas .legend { position: absolute; bottom: 6px; left: 6px; z-index: 10; font-size: 11px;
  display: flex; flex-wrap: wrap; gap: 4px 10px; max-width: 95%; background: rgba(255,255,255,.85);
  padding: 3px 6px; border-radius: 3px; }
.nbflow-canvas .legend span.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 3px;
  border: 1px solid #555; vertical-align: middle; }
.nbflow-canvas .hint { position: absolute; top: 8px; right: 8px; z-index: 10; font-size: 11px; color: #555; }
`;

function styleOf(graph) {
  const byState = {};
  for (const item of graph.legend || []) {
    byState[item.state] = item;
  }
  return byState;
}

function nodeData(node, state, byState) {
  const look = byState[state] || { colour: "#ddd", shape: "round-rectangle" };
  return {
    id: node.id,
    label: node.label,
    state,
    display: `${node.label}\n${state}`,
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
  const nodes = (graph.nodes || []).map((node) => ({
    group: "nodes",
    data: nodeData(node, states[node.id] || node.state, byState),
    position: { x: node.x, y: node.y },
  }));
  const edges = (graph.edges || []).map((edge) => ({
    group: "edges",
    classes: skips(edge) ? "skip" : "",
    data: {
      id: edge.id,
      source: edge.source,
      target: edge.target,
      label: (edge.names || []).join(", ") || (edge.explicit ? "after" : ""),
      explicit: !!edge.explicit,
    },
  }));
  return [...nodes, ...edges];
}

export function render({ model, el }) {
  if (!registered) {
    cytoscape.use(edgehandles);
    registered = true;
  }
  const style = document.createElement("style");
  style.textContent = CSS;
  const root = document.createElement("div");
  root.className = "nbflow-canvas";
  const container = document.createElement("div");
  container.className = "cy";
  const toolbar = document.createElement("div");
  toolbar.className = "toolbar";
  const moveButton = document.createElement("button");
  moveButton.textContent = "Move";
  moveButton.title = "Drag nodes to arrange them (positions are saved in the notebook)";
  const connectButton = document.createElement("button");
  connectButton.textContent = "Connect";
  connectButton.title = "Drag from a step to another to make the second run after the first (an after: tag)";
  const fitButton = document.createElement("button");
  fitButton.textContent = "Fit";
  fitButton.title = "Show the whole graph";
  toolbar.append(moveButton, connectButton, fitButton);
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
    minZoom: 0.2,
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
  let fitted = false;

  function fit() {
    if (container.clientWidth > 0 && container.clientHeight > 0 && cy.nodes().length) {
      cy.fit(undefined, 40);
      if (cy.zoom() > 1.2) {
        cy.zoom(1.2);
        cy.center();
      }
      fitted = true;
    }
  }

  function drawLegend() {
    legend.replaceChildren();
    for (const item of model.graph.legend || []) {
      const entry = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = item.colour;
      entry.append(swatch, document.createTextNode(item.state));
      entry.title = item.label;
      legend.append(entry);
    }
  }

  function loadGraph() {
    const graph = model.graph || {};
    cy.batch(() => {
      cy.elements().remove();
      cy.add(elementsOf(graph, model.states || {}));
    });
    selectFromModel();
    drawLegend();
    if (!fitted) {
      fit();
    }
  }

  function applyStates() {
    const byState = styleOf(model.graph || {});
    const states = model.states || {};
    cy.batch(() => {
      for (const node of model.graph.nodes || []) {
        const element = cy.getElementById(node.id);
        if (element.nonempty()) {
          element.data(nodeData(node, states[node.id] || node.state, byState));
        }
      }
    });
  }

  function selectFromModel() {
    cy.elements().unselect();
    if (model.selected) {
      cy.getElementById(model.selected).select();
    } else if (model.selected_edge) {
      cy.getElementById(model.selected_edge).select();
    }
  }

  function setMode(mode) {
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
    model.send_msg({ type: "moved", positions: { [node.id()]: { x, y } } });
  });
  cy.on("tap", "node", (event) => {
    model.selected_edge = "";
    model.selected = event.target.id();
  });
  cy.on("tap", "edge", (event) => {
    model.selected = "";
    model.selected_edge = event.target.id();
  });
  cy.on("tap", (event) => {
    if (event.target === cy) {
      model.selected = "";
      model.selected_edge = "";
    }
  });
  cy.on("ehcomplete", (event, source, target, added) => {
    // The notebook decides whether the edge exists: Python answers with a new graph.
    added.remove();
    model.send_msg({ type: "connect", source: source.id(), target: target.id() });
  });
  moveButton.addEventListener("click", () => {
    model.mode = "move";
  });
  connectButton.addEventListener("click", () => {
    model.mode = "connect";
  });
  fitButton.addEventListener("click", fit);

  model.on("graph", loadGraph);
  model.on("states", applyStates);
  model.on(["selected", "selected_edge"], selectFromModel);
  model.on("mode", () => setMode(model.mode));

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
  model.on("remove", () => {
    resize.disconnect();
    handles.destroy();
    cy.destroy();
    if (window.nbflowCanvas && window.nbflowCanvas.cy === cy) {
      delete window.nbflowCanvas;
    }
  });

  // For tests and debugging in the browser console: where each step is drawn on screen.
  window.nbflowCanvas = {
    cy,
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
      return Object.fromEntries(cy.nodes().map((n) => [n.id(), n.data("state")]));
    },
  };

  loadGraph();
  setMode(model.mode);
}
