/**
 * The side panel: the active notebook's pipeline graph, live during a run, and a builder.
 * Clicking a node (or a step in the list under it) jumps to its cell; dragging a node,
 * drawing an edge (Connect), Add step, Rename and Delete are reported as signals, which
 * index.ts turns into edits of the notebook model (editing.ts). The canvas's own toolbar
 * (Move, Connect, Fit, Collapse, Find a step) comes with the shared canvas. Under them,
 * the pipeline of notebooks the notebook belongs to, if any (project.ts).
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, Widget } from '@lumino/widgets';

import { GraphView } from './graphview';
import { PipelineModel } from './model';
import { ProjectSection } from './project';

export type Action = 'add' | 'rename' | 'delete';

export class PipelinePanel extends Panel {
  constructor() {
    super();
    this.id = 'nbflow-graph-panel';
    this.addClass('nbflow-Panel');
    this.title.caption = 'nbflow pipeline';
    this.header.addClass('nbflow-Panel-header');
    this.header.node.innerHTML =
      '<div class="nbflow-Panel-title"></div><div class="nbflow-Panel-status" role="status"></div>' +
      '<div class="nbflow-Panel-actions">' +
      '<button type="button" data-action="add" title="Add a step below the selected one (a new tagged cell with its docs)">Add step</button>' +
      '<button type="button" data-action="rename" title="Rename the selected step (after: tags naming it follow)">Rename</button>' +
      '<button type="button" data-action="delete" title="Delete the selected step (its tags, or its cells)">Delete</button>' +
      '</div><div class="nbflow-Panel-message" role="alert"></div><div class="nbflow-Panel-notes" role="note"></div>';
    this.list.addClass('nbflow-Panel-steps');
    this.addWidget(this.header);
    this.addWidget(this.view);
    this.addWidget(this.list);
    this.addWidget(this.project);
    this.view.nodeClicked.connect((_, id) => {
      this._selected = id;
      this.updateActions();
      if (id) {
        this._stepClicked.emit(id);
      }
    });
    this.list.node.addEventListener('click', event => {
      const item = (event.target as HTMLElement).closest('li');
      if (item?.dataset.step) {
        this._selected = item.dataset.step;
        this.view.canvas.select(item.dataset.step);
        this.updateActions();
        this._stepClicked.emit(item.dataset.step);
      }
    });
    this.header.node.addEventListener('click', event => {
      const button = (event.target as HTMLElement).closest('button');
      if (button?.dataset.action) {
        this._action.emit(button.dataset.action as Action);
      }
    });
    this.render();
  }

  readonly header = new Widget();
  readonly view = new GraphView();
  readonly list = new Widget({ node: document.createElement('ul') });
  /** The pipeline of notebooks the notebook belongs to (hidden when none): project.ts. */
  readonly project = new ProjectSection();

  get stepClicked(): ISignal<this, string> {
    return this._stepClicked;
  }

  /** A button of the builder was pressed (the selected step is `selected`). */
  get action(): ISignal<this, Action> {
    return this._action;
  }

  /** The step selected on the canvas or in the list ('' for none). */
  get selected(): string {
    return this._selected;
  }

  set selected(step: string) {
    this._selected = step;
    this.view.canvas.select(step);
    this.updateActions();
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
    this._selected = '';
    this.say('');
    model?.changed.connect(this.render, this);
    this.render();
  }

  /** One line saying what the last gesture did, or why it was refused. */
  say(text: string, kind: 'info' | 'error' = 'info'): void {
    const message = this.header.node.querySelector('.nbflow-Panel-message') as HTMLElement;
    message.textContent = text;
    message.dataset.kind = text ? kind : '';
  }

  render(): void {
    const title = this.header.node.querySelector('.nbflow-Panel-title')!;
    const status = this.header.node.querySelector('.nbflow-Panel-status')!;
    const notes = this.header.node.querySelector('.nbflow-Panel-notes')!;
    const model = this._model;
    this.node.dataset.runStatus = model?.runStatus ?? '';
    if (!model) {
      title.textContent = 'nbflow';
      status.textContent = 'Open a notebook to see its pipeline.';
      notes.textContent = '';
      this.list.node.replaceChildren();
      this.updateActions();
      return;
    }
    title.textContent = model.graph ? `${model.graph.title} (${model.path})` : model.path;
    status.textContent = model.error || model.runMessage || this.summary(model);
    notes.textContent = (model.graph?.warnings ?? []).map(w => `warning: ${w}`).join('\n');
    if (!model.graph) {
      this.updateActions();
      return;
    }
    if (this._selected && !model.graph.nodes.some(n => n.id === this._selected)) {
      this._selected = '';
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
    this.updateActions();
  }

  private updateActions(): void {
    const buttons = this.header.node.querySelectorAll('.nbflow-Panel-actions button');
    buttons.forEach(b => {
      const button = b as HTMLButtonElement;
      button.disabled = !this._model || (button.dataset.action !== 'add' && !this._selected);
    });
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
  private _selected = '';
  private _stepClicked = new Signal<this, string>(this);
  private _action = new Signal<this, Action>(this);
}
