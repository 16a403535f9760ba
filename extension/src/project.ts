/**
 * The pipeline of notebooks the open notebook belongs to, in the side panel (issue 21):
 * every notebook of it as a group around its steps, the file edges between them, the
 * open notebook's group highlighted, each step's state; Run runs the whole pipeline
 * through the REST API (POST project/runs, recorded in the run store as
 * `nbflow run FOLDER` records it) and the states follow the run (GET project, polled
 * while it goes on).
 *
 * Which pipeline: the server decides (nbflow.project.project_of): the nbflow.toml of the
 * notebook's folder when it lists the notebook, else the folder when a file edge or an
 * after:NB:STEP joins the notebook to another pipeline notebook there. A notebook of no
 * such pipeline hides this section.
 *
 * The graph is read-only here: a pipeline of notebooks is edited one notebook at a time
 * (the panel's own graph above). Clicking a step asks for it to be shown (`openStep`):
 * index.ts opens that notebook and goes to the step's cell.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, Widget } from '@lumino/widgets';

import * as api from './api';
import { GraphView } from './graphview';

export interface IProjectRun {
  id: number;
  project: string;
  status: string;
  error: string | null;
  notebooks: Record<string, { run: number; status: string; notebook: string }>;
  skipped: Record<string, string>;
  duration: number;
}

export interface IProjectGraph {
  project: string | null;
  current: string | null;
  title?: string;
  groups: { id: string; label: string; notebook: string; current: boolean }[];
  nodes: (api.INode & { parent: string; step: string })[];
  edges: { id: string; source: string; target: string; names: string[]; explicit: boolean; link: boolean }[];
  legend: { state: string; colour: string; shape: string; label: string }[];
  run: IProjectRun | null;
}

export function projectOf(path: string): Promise<IProjectGraph> {
  return api.request<IProjectGraph>('project', {}, { path });
}

export function startProjectRun(path: string): Promise<IProjectRun> {
  return api.request<IProjectRun>('project/runs', { method: 'POST', body: JSON.stringify({ path }) });
}

export function projectRun(id: number): Promise<IProjectRun> {
  return api.request<IProjectRun>(`project/runs/${id}`);
}

/** How often the states of a running pipeline of notebooks are asked for (ms). */
const POLL = 1000;

export class ProjectSection extends Panel {
  constructor() {
    super();
    this.addClass('nbflow-ProjectSection');
    this.header.addClass('nbflow-Panel-header');
    this.header.node.innerHTML =
      '<div class="nbflow-Panel-title nbflow-Project-title"></div>' +
      '<div class="nbflow-Panel-status nbflow-Project-status" role="status"></div>' +
      '<div class="nbflow-Panel-actions"><button type="button" data-action="run-project" ' +
      'title="Run every notebook of this pipeline, each in its own kernel (cached steps are restored)">' +
      'Run pipeline of notebooks</button></div>';
    this.addWidget(this.header);
    this.header.node.addEventListener('click', event => {
      const button = (event.target as HTMLElement).closest('button');
      if (button?.dataset.action === 'run-project') {
        void this.run().catch(e => this.say((e as Error).message, true));
      }
    });
    this.hide();
  }

  readonly header = new Widget();
  graph: IProjectGraph | null = null;

  /**
   * The canvas, made only while a pipeline of notebooks is shown: most notebooks belong to
   * none, and their panel then holds one canvas, not two.
   */
  get view(): GraphView | null {
    return this._view;
  }

  private ensureView(): GraphView {
    if (!this._view) {
      const view = new GraphView();
      view.nodeClicked.connect((_, id) => {
        const node = this.graph?.nodes.find(n => n.id === id);
        const group = node && this.graph?.groups.find(g => g.id === node.parent);
        if (node && group) {
          this._openStep.emit({ path: group.notebook, step: node.step });
        }
      });
      this.addWidget(view);
      this._view = view;
    }
    return this._view;
  }

  private dropView(): void {
    this._view?.dispose();
    this._view = null;
  }

  /** A step was clicked: the notebook it is in (relative to the server's root) and its name. */
  get openStep(): ISignal<this, { path: string; step: string }> {
    return this._openStep;
  }

  /** Whether the open notebook belongs to a pipeline of notebooks (Run can be used). */
  get hasProject(): boolean {
    return !!this.graph?.project;
  }

  get running(): boolean {
    return this.graph?.run?.status === 'running';
  }

  /** The notebook open in the editor (null: none): the section shows its pipeline of notebooks. */
  set notebook(path: string | null) {
    if (path === this._notebook) {
      return;
    }
    this._notebook = path;
    this.graph = null;
    void this.refresh();
  }

  get notebook(): string | null {
    return this._notebook;
  }

  async refresh(): Promise<void> {
    const path = this._notebook;
    const asked = ++this._asked;
    clearTimeout(this._poll);
    if (!path) {
      this.graph = null;
      this.render();
      return;
    }
    let graph: IProjectGraph;
    try {
      graph = await projectOf(path);
    } catch (e) {
      if (asked === this._asked) {
        this.graph = null;
        this.render((e as Error).message);
      }
      return;
    }
    if (asked !== this._asked) {
      return; // another notebook, or a newer refresh, came first
    }
    this.graph = graph;
    this.render();
    if (this.running) {
      this._poll = setTimeout(() => void this.refresh(), POLL);
    }
  }

  /** Run the whole pipeline of notebooks on the server; the section follows it. */
  async run(): Promise<IProjectRun> {
    if (!this.graph?.project) {
      throw new Error(`${this._notebook ?? 'this notebook'} belongs to no pipeline of notebooks`);
    }
    const run = await startProjectRun(this.graph.project);
    this.say(`pipeline run ${run.id} started`);
    await this.refresh();
    return run;
  }

  private say(text: string, error = false): void {
    const status = this.header.node.querySelector('.nbflow-Project-status') as HTMLElement;
    status.textContent = text;
    status.dataset.kind = error ? 'error' : '';
  }

  private render(error = ''): void {
    const graph = this.graph;
    if (!graph || !graph.project) {
      if (error) {
        // A broken nbflow.toml next to the notebook: say so, in one line naming it.
        this.show();
        this.header.node.querySelector('.nbflow-Project-title')!.textContent = 'Pipeline of notebooks';
        this.say(error, true);
      } else {
        this.hide();
      }
      this.dropView();
      return;
    }
    this.show();
    const view = this.ensureView();
    this.header.node.querySelector('.nbflow-Project-title')!.textContent =
      `Pipeline of notebooks: ${graph.project} (${graph.groups.length} notebooks)`;
    const states = Object.fromEntries(graph.nodes.map(n => [n.id, n.state]));
    view.draw({ ...graph, readonly: true } as any, states);
    const button = this.header.node.querySelector('button[data-action="run-project"]') as HTMLButtonElement;
    button.disabled = this.running;
    this.node.dataset.runStatus = graph.run?.status ?? '';
    this.say(this.summary(graph));
  }

  private summary(graph: IProjectGraph): string {
    const run = graph.run;
    if (run) {
      const each = Object.entries(run.notebooks).map(([name, r]) => `${name} ${r.status}`);
      return `pipeline run ${run.id} ${run.status}` + (each.length ? `: ${each.join(', ')}` : '');
    }
    const stale = graph.nodes.filter(n => n.state !== 'fresh').length;
    return `${graph.nodes.length} steps, ${stale} to run`;
  }

  private _view: GraphView | null = null;
  private _notebook: string | null = null;
  private _asked = 0;
  private _poll: any = undefined;
  private _openStep = new Signal<this, { path: string; step: string }>(this);
}
