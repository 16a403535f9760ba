/**
 * The pipeline graph drawn with cytoscape.js (bundled from the npm registry at build time).
 * Positions and the stylesheet come from the server (nbflow.view), so every nbflow view
 * shows the same layout, colours and shapes.
 */
import { Widget } from '@lumino/widgets';
import { ISignal, Signal } from '@lumino/signaling';
import cytoscape from 'cytoscape';

import { IGraph } from './api';

export class GraphView extends Widget {
  constructor() {
    super();
    this.addClass('nbflow-GraphView');
    this.cy = cytoscape({
      container: this.node,
      elements: [],
      layout: { name: 'preset' },
      autoungrabify: true,
      boxSelectionEnabled: false,
      minZoom: 0.2,
      maxZoom: 3
    });
    this.cy.on('tap', 'node', event => this._nodeClicked.emit(event.target.id()));
  }

  readonly cy: cytoscape.Core;

  get nodeClicked(): ISignal<this, string> {
    return this._nodeClicked;
  }

  /** Draw `graph` (when its shape changed) and colour nodes by `states`. */
  draw(graph: IGraph, states: Record<string, string>): void {
    const shape = JSON.stringify([graph.nodes.map(n => [n.id, n.x, n.y]), graph.edges.map(e => e.id)]);
    if (shape !== this._shape) {
      this._shape = shape;
      this.cy.style(graph.style as any);
      this.cy.elements().remove();
      this.cy.add([
        ...graph.nodes.map(n => ({
          group: 'nodes' as const,
          data: { id: n.id, label: n.label, state: states[n.id] ?? n.state },
          position: { x: n.x, y: n.y }
        })),
        ...graph.edges.map(e => ({
          group: 'edges' as const,
          data: { id: e.id, source: e.source, target: e.target },
          classes: e.explicit ? 'explicit' : ''
        }))
      ]);
      this.fit();
    }
    this.cy.batch(() => {
      for (const [id, state] of Object.entries(states)) {
        this.cy.$id(id).data('state', state);
      }
    });
  }

  fit(): void {
    if (this.isVisible) {
      this.cy.resize();
      this.cy.fit(undefined, 20);
      if (this.cy.zoom() > 1.2) {
        // A small pipeline should not fill a wide panel with giant nodes.
        this.cy.zoom(1.2);
        this.cy.center();
      }
    }
  }

  protected onResize(): void {
    this.fit();
  }

  protected onAfterShow(): void {
    this.fit();
  }

  private _shape = '';
  private _nodeClicked = new Signal<this, string>(this);
}
