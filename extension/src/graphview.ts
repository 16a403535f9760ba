/**
 * The pipeline graph in the side panel: a Lumino widget around nbflow's one canvas
 * (`@nbflow/canvas`, extension/canvas/, the same drawing and gestures as the studio).
 * Positions and states come from the server (nbflow.view), so every nbflow view shows
 * the same layout, colours and shapes. Gestures are only reported here (signals); the
 * panel turns them into edits of the notebook model (editing.ts).
 */
import { Widget } from '@lumino/widgets';
import { ISignal, Signal } from '@lumino/signaling';
import { createCanvas, ICanvas } from '@nbflow/canvas';

import { IGraph } from './api';

export class GraphView extends Widget {
  constructor() {
    super();
    this.addClass('nbflow-GraphView');
    this.canvas = createCanvas(this.node, {
      onMove: positions => this._moved.emit(positions),
      onConnect: (source, target) => this._connected.emit({ source, target }),
      onSelect: step => this._nodeClicked.emit(step)
    });
  }

  readonly canvas: ICanvas;

  get cy(): ICanvas['cy'] {
    return this.canvas.cy;
  }

  /** A step was tapped, or found by name (its name); the background was tapped (''). */
  get nodeClicked(): ISignal<this, string> {
    return this._nodeClicked;
  }

  get moved(): ISignal<this, Record<string, { x: number; y: number }>> {
    return this._moved;
  }

  get connected(): ISignal<this, { source: string; target: string }> {
    return this._connected;
  }

  /**
   * Draw `graph` (when it changed) and colour nodes by `states`. While the panel is
   * hidden only the newest call is kept, drawn when it shows: typing in a large notebook
   * re-plans often, and laying out a graph nobody sees would slow every badge down.
   */
  draw(graph: IGraph, states: Record<string, string>): void {
    if (!this.isVisible) {
      this._pending = { graph, states };
      return;
    }
    this._pending = null;
    const shape = JSON.stringify([
      graph.nodes.map(n => [n.id, n.label, n.state, n.x, n.y]),
      graph.edges.map(e => [e.id, e.names, e.explicit]),
      ((graph as any).groups ?? []).map((g: any) => [g.id, g.current]),
      !!(graph as any).readonly
    ]);
    if (shape !== this._shape) {
      this._shape = shape;
      this.canvas.setGraph(graph, states);
    } else {
      this.canvas.setStates(states);
    }
  }

  fit(): void {
    if (this.isVisible) {
      this.canvas.fit();
    }
  }

  protected onResize(): void {
    this.canvas.cy.resize();
  }

  protected onAfterShow(): void {
    if (this._pending) {
      this.draw(this._pending.graph, this._pending.states);
    }
    this.fit();
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.canvas.destroy();
    }
    super.dispose();
  }

  private _shape = '';
  private _pending: { graph: IGraph; states: Record<string, string> } | null = null;
  private _nodeClicked = new Signal<this, string>(this);
  private _moved = new Signal<this, Record<string, { x: number; y: number }>>(this);
  private _connected = new Signal<this, { source: string; target: string }>(this);
}
