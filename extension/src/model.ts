/**
 * The pipeline of one notebook as the front end sees it: the server's graph model plus
 * live states from a run's event stream. The side panel and the cell badges both listen
 * to `changed`; nothing here draws.
 */
import { ISignal, Signal } from '@lumino/signaling';

import * as api from './api';

export class PipelineModel {
  /**
   * `source` gives the notebook as it is in the editor (JSON, outputs left out): the graph
   * is then computed from that, unsaved edits included; without it, from the file.
   */
  constructor(
    readonly path: string,
    readonly source: (() => Record<string, any> | null) | null = null
  ) {}

  graph: api.IGraph | null = null;
  states: Record<string, string> = {};
  error = '';
  runId: number | null = null;
  runStatus = '';
  runMessage = '';

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Re-read the notebook on the server: steps, edges and fresh/stale states. */
  async refresh(): Promise<void> {
    const asked = ++this._asked;
    try {
      const notebook = this.source?.() ?? null;
      const graph = notebook ? await api.graphOf(this.path, notebook) : await api.graph(this.path);
      if (asked !== this._asked) {
        return; // a newer refresh is on its way
      }
      this.graph = graph;
      this.error = '';
      this.states = {};
      for (const node of this.graph.nodes) {
        this.states[node.id] = node.state;
      }
      // A run in the notebook's kernel: its steps keep the states the frontend saw
      // (cells it executes change the notebook, which refreshes the graph meanwhile).
      Object.assign(this.states, this._live ?? {});
      // After it, they keep its final states until the code changes (its own outputs and
      // execution counts landing in the cells are not edits).
      if (this._final && this._final.code === codeOf(notebook)) {
        Object.assign(this.states, this._final.states);
      } else {
        this._final = null;
      }
      if (this.graph.run && this.graph.run.id !== this.runId) {
        void this.follow(this.graph.run.id);
      }
    } catch (e) {
      if (asked !== this._asked) {
        return;
      }
      this.error = (e as Error).message;
    }
    this._changed.emit();
  }

  /** Refresh once the notebook has been quiet for `delay` ms (typing, several gestures). */
  refreshSoon(delay = 300): void {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => void this.refresh(), delay);
  }

  async run(options: api.IRunOptions = {}): Promise<number> {
    const { id } = await api.startRun(this.path, options);
    void this.follow(id);
    return id;
  }

  async cancel(): Promise<void> {
    if (this.runId !== null && this.runStatus === 'running') {
      await api.cancelRun(this.path, this.runId);
    }
  }

  get running(): boolean {
    return this.runStatus === 'running';
  }

  async follow(id: number): Promise<void> {
    this.runId = id;
    this.runStatus = 'running';
    this.runMessage = `run ${id} starting`;
    this._changed.emit();
    try {
      await api.followRun(this.path, id, event => this.apply(event));
    } catch (e) {
      this.runMessage = (e as Error).message;
      this.runStatus = 'unknown';
      this._changed.emit();
    }
  }

  /** A run in the notebook's own kernel begins (`runId` null: restoring only). */
  liveBegin(runId: number | null, steps: { name: string; action: string }[]): void {
    this._live = {};
    for (const s of steps) {
      this._live[s.name] = 'queued';
    }
    Object.assign(this.states, this._live);
    this.runId = runId;
    this.runStatus = 'running';
    this.runMessage = runId === null ? 'restoring in the kernel' : `run ${runId} in the kernel`;
    this._changed.emit();
  }

  /** A step of the kernel's run changed state (restored: "cached"). */
  liveStep(step: string, state: string): void {
    if (this._live) {
      this._live[step] = state;
    }
    this.states[step] = state;
    const counts: Record<string, number> = {};
    Object.values(this._live ?? {}).forEach(s => (counts[s] = (counts[s] ?? 0) + 1));
    const what = this.runId === null ? 'restoring in the kernel' : `run ${this.runId} in the kernel`;
    this.runMessage = `${what}: ` + Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ');
    this._changed.emit();
  }

  /** Events of the kernel's run (`Event.to_dict`, as the server's stream sends them): the
   * same step transitions as `apply`, kept as the kernel run's states. */
  liveEvents(events: api.IRunEvent[]): void {
    let moved = false;
    for (const event of events) {
      const state = stepState(event);
      if (state !== null && event.step) {
        if (this._live) {
          this._live[event.step] = state;
        }
        this.states[event.step] = state;
        moved = true;
      }
    }
    if (moved) {
      this._changed.emit();
    }
  }

  /** The kernel's run ended: its record in the run store has the last word. A run that
   * never began (the kernel refused `begin`) leaves the last run's state alone. */
  async liveEnd(status: string, message: string): Promise<void> {
    if (this._live === null) {
      this.runMessage = message;
      this._changed.emit();
      return;
    }
    const runId = this.runId;
    if (runId !== null) {
      await this.follow(runId).catch(() => undefined); // one snapshot: the run is not in the server
    }
    this._live = null;
    this.runStatus = status;
    this.runMessage = message;
    this._final = { code: codeOf(this.source?.() ?? null), states: { ...this.states } };
    this._changed.emit();
  }

  /** One event of the run: the same transitions as nbflow.view.GraphState. */
  apply(event: api.IRunEvent): void {
    const state = stepState(event);
    switch (event.type) {
      case 'StepQueued':
      case 'StepStarted':
      case 'StepFinished':
      case 'CheckFailed':
        this.states[event.step!] = state!;
        break;
      case 'RunFinished':
        this.runStatus = event.status!;
        this.runMessage =
          `run ${event.run_id} ${event.status} in ${(event.duration ?? 0).toFixed(1)} s` +
          (event.error ? `: ${event.error}` : '');
        break;
      case 'RunSnapshot':
        this.runStatus = event.status!;
        for (const [name, s] of Object.entries(event.steps as Record<string, { status: string }>)) {
          this.states[name] = s.status;
        }
        break;
      default:
        return;
    }
    if (event.type !== 'RunFinished' && event.type !== 'RunSnapshot') {
      const counts: Record<string, number> = {};
      Object.values(this.states).forEach(s => (counts[s] = (counts[s] ?? 0) + 1));
      this.runMessage = `run ${event.run_id}: ` + Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ');
    }
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _asked = 0;
  private _timer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _live: Record<string, string> | null = null;
  private _final: { code: string; states: Record<string, string> } | null = null;
}

/** The state `event` moves its step to (the transitions of nbflow.view.GraphState); null: none. */
export function stepState(event: api.IRunEvent): string | null {
  switch (event.type) {
    case 'StepQueued':
      return 'queued';
    case 'StepStarted':
      return 'running';
    case 'StepFinished':
      return event.status ?? null;
    case 'CheckFailed': // a check failed on the step's values: the step failed
      return 'failed';
    default:
      return null;
  }
}

/** What decides the plan in notebook JSON: each cell's type, source and tags. */
function codeOf(notebook: Record<string, any> | null): string {
  if (!notebook) {
    return '';
  }
  return JSON.stringify(
    (notebook.cells ?? []).map((c: any) => [c.cell_type, c.source, c.metadata?.tags ?? [], notebook.metadata?.nbflow])
  );
}
