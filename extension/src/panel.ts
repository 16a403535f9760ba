/**
 * The side panel: the active notebook's pipeline graph, live during a run; clicking a
 * node (or a step in the list under it) jumps to its cell.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, Widget } from '@lumino/widgets';

import { GraphView } from './graphview';
import { PipelineModel } from './model';

export class PipelinePanel extends Panel {
  constructor() {
    super();
    this.id = 'nbflow-graph-panel';
    this.addClass('nbflow-Panel');
    this.title.caption = 'nbflow pipeline';
    this.header.addClass('nbflow-Panel-header');
    this.header.node.innerHTML =
      '<div class="nbflow-Panel-title"></div><div class="nbflow-Panel-status" role="status"></div>';
    this.list.addClass('nbflow-Panel-steps');
    this.addWidget(this.header);
    this.addWidget(this.view);
    this.addWidget(this.list);
    this.view.nodeClicked.connect((_, id) => this._stepClicked.emit(id));
    this.list.node.addEventListener('click', event => {
      const item = (event.target as HTMLElement).closest('li');
      if (item?.dataset.step) {
        this._stepClicked.emit(item.dataset.step);
      }
    });
    this.render();
  }

  readonly header = new Widget();
  readonly view = new GraphView();
  readonly list = new Widget({ node: document.createElement('ul') });

  get stepClicked(): ISignal<this, string> {
    return this._stepClicked;
  }

  get model(): PipelineModel | null {
    return this._model;
  }

  set model(model: PipelineModel | null) {
    if (model === this._model) {
      return;
    }
    this._model?.changed.disconnect(this.render, this);
    this._model = model;
    model?.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    const title = this.header.node.querySelector('.nbflow-Panel-title')!;
    const status = this.header.node.querySelector('.nbflow-Panel-status')!;
    const model = this._model;
    this.node.dataset.runStatus = model?.runStatus ?? '';
    if (!model) {
      title.textContent = 'nbflow';
      status.textContent = 'Open a notebook to see its pipeline.';
      this.list.node.replaceChildren();
      return;
    }
    title.textContent = model.graph ? `${model.graph.title} (${model.path})` : model.path;
    status.textContent = model.error || model.runMessage || this.summary(model);
    if (!model.graph) {
      return;
    }
    this.view.draw(model.graph, model.states);
    const colours = Object.fromEntries(model.graph.legend.map(l => [l.state, l.colour]));
    this.list.node.replaceChildren(
      ...model.graph.nodes.map(node => {
        const state = model.states[node.id] ?? node.state;
        const item = document.createElement('li');
        item.dataset.step = node.id;
        item.dataset.state = state;
        item.title = node.reasons.join('; ');
        const swatch = document.createElement('span');
        swatch.className = 'nbflow-swatch';
        swatch.style.background = colours[state] ?? '#fff';
        item.append(swatch, `${node.id}: ${state}`);
        return item;
      })
    );
  }

  private summary(model: PipelineModel): string {
    const nodes = model.graph?.nodes ?? [];
    const stale = nodes.filter(n => model.states[n.id] === 'stale').length;
    return nodes.length ? `${nodes.length} steps, ${stale} stale` : 'No steps: tag a code cell step:<name>.';
  }

  protected onAfterShow(): void {
    this.view.fit();
  }

  private _model: PipelineModel | null = null;
  private _stepClicked = new Signal<this, string>(this);
}
