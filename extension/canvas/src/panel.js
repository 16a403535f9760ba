// The studio's canvas: a Panel ESM component (nbflow/studio/canvas.py) around the shared
// canvas (canvas.js). It only passes the Python model's properties to the canvas and the
// canvas's gestures back to Python; every decision is taken in Python.
//
// Model properties (synced with the Python PipelineCanvas):
//   graph          {nodes, edges, legend} from nbflow.view.graph_model
//   states         {step: state} live states during a run (win over graph.nodes[].state)
//   labels         {step: label} labels that changed since the graph was sent (check marks, summaries)
//   selected       the selected step ("" for none)        written here on tap
//   selected_edge  the selected edge id "a->b" ("" for none) written here on tap
//   mode           "move" (drag nodes) or "connect" (drag from a node to another draws an edge)
// Messages to Python (model.send_msg):
//   {type: "moved", positions: {step: {x, y}}}   after a node is dropped
//   {type: "connect", source, target}            after an edge is drawn

import { createCanvas } from "./canvas.js";

export function render({ model, el }) {
  const canvas = createCanvas(el, {
    onMove: (positions) => model.send_msg({ type: "moved", positions }),
    onConnect: (source, target) => model.send_msg({ type: "connect", source, target }),
    onSelect: (step) => {
      if (step) {
        model.selected_edge = "";
      }
      model.selected = step;
    },
    onSelectEdge: (edge) => {
      if (edge) {
        model.selected = "";
      }
      model.selected_edge = edge;
    },
    onMode: (mode) => {
      model.mode = mode;
    },
  });

  function selectFromModel() {
    if (model.selected) {
      canvas.select(model.selected);
    } else {
      canvas.selectEdge(model.selected_edge);
    }
  }

  function loadGraph() {
    canvas.setGraph(model.graph || {}, model.states || {});
    canvas.setLabels(model.labels || {});
    selectFromModel();
  }

  model.on("graph", loadGraph);
  model.on("states", () => canvas.setStates(model.states || {}));
  model.on("labels", () => canvas.setLabels(model.labels || {}));
  model.on(["selected", "selected_edge"], selectFromModel);
  model.on("mode", () => canvas.setMode(model.mode));
  model.on("remove", () => {
    canvas.destroy();
    if (window.nbflowCanvas === canvas) {
      delete window.nbflowCanvas;
    }
  });

  // For tests and debugging in the browser console: cy, nodeCenter, edgeMiddle, states.
  window.nbflowCanvas = canvas;

  loadGraph();
  canvas.setMode(model.mode);
}
