/**
 * The notebook's own kernel takes part in the pipeline (issue 17; LIVE-PROTOCOL.md).
 *
 * - `loadInKernel`: a silent `%load_ext nbflow` (no output, no history) in a Python kernel.
 * - `KernelDriver`: calls the kernel-side driver (`nbflow.live.driver.call`) through silent
 *   execute requests whose `user_expressions` return JSON text.
 * - `runInKernel`: restore / restore up to a step / run stale / run up to a step in the
 *   kernel. `begin` gets the notebook as it is in the editor (unsaved edits included);
 *   restored steps get their cached outputs in their cells; steps to run execute through
 *   the notebook's own session (`CodeCell.execute`, so outputs appear as if run by hand),
 *   bracketed by `step_started` and `step_finished` (which gets the cells' outputs from the
 *   model; a step that raised and has retries left is run again by the kernel, whose
 *   answer brings the last attempt's outputs for its cells); then `finish`. Every answer
 *   brings the run's new events (the REST API's event stream's, in order):
 *   `progress.events` applies them as the panel applies that stream, so a failed check
 *   turns the step it checks failed as it happens. A step that fails does not stop the
 *   run: the driver skips the steps that need it (as every executor does) and the others
 *   run. A step the driver runs in the kernel itself (`in_kernel`: a `map:` step, once per
 *   element; or a deferred step whose inputs changed) comes back with its outputs, which
 *   go into its cells; a step whose re-computed key is cached (early cut-off) comes back
 *   from `step_started` as cached, with its cached outputs.
 * - `putOutputs`: outputs into cells through the shared model, in one undoable transaction.
 *
 * Nothing here saves the notebook or talks to nbflow's REST API (index.ts does).
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

/** What `begin` says about one step. */
export interface IStepDecision {
  name: string;
  action: 'restore' | 'run' | 'skip';
  reason: string;
  cell_ids: string[];
  cell_indexes: number[];
  /** Run by the driver in the kernel (`run_step`), not cell by cell through the session. */
  in_kernel?: boolean;
  outputs: Record<string, any[]>;
}

export type Mode = 'restore' | 'restore-to' | 'stale' | 'to' | 'only';

/** What the driver answers for a step it ran in the kernel itself, or settled as cached. */
interface IRanHere {
  status: string;
  /** the step's error (`error` would be the call's own failure) */
  step_error?: string;
  outputs?: Record<string, any[]>;
}

/** What the frontend tells the panel while it drives a run. */
export interface IProgress {
  begun(runId: number | null, steps: IStepDecision[]): void;
  step(step: string, state: string): void;
  /** The run's events, in order, as the kernel published them (`Event.to_dict`). */
  events(events: Record<string, any>[]): void;
}

export interface IOutcome {
  runId: number | null;
  status: 'done' | 'failed' | 'cancelled';
  restored: string[];
  ran: string[];
  missing: Record<string, string>;
  error: string;
  counts: Record<string, number>;
}

/** A Python `repr` of a `str` (what `text/plain` holds for a string) back to the string. */
export function unrepr(text: string): string {
  const quote = text[0];
  if ((quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) {
    throw new Error(`not a Python string: ${text.slice(0, 80)}`);
  }
  const body = text.slice(1, -1);
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_, esc: string) => {
    if (esc.length > 1) {
      return String.fromCodePoint(parseInt(esc.slice(1), 16));
    }
    return simple[esc] ?? esc;
  });
}

function isPython(session: ISessionContext): Promise<boolean> {
  const kernel = session.session?.kernel;
  if (!kernel) {
    return Promise.resolve(false);
  }
  return kernel.info.then(info => info.language_info.name === 'python').catch(() => false);
}

/** `%load_ext nbflow` in the session's kernel, silently; false when it is not Python or fails. */
export async function loadInKernel(session: ISessionContext): Promise<boolean> {
  const kernel = session.session?.kernel;
  if (!kernel || !(await isPython(session))) {
    return false;
  }
  const future = kernel.requestExecute({
    code: '%load_ext nbflow',
    silent: true,
    store_history: false,
    allow_stdin: false,
    stop_on_error: false
  });
  const reply = await future.done;
  return reply.content.status === 'ok';
}

/** The kernel-side driver of a notebook's session. */
export class KernelDriver {
  /** `onEvents` receives the events of the kernel's run each answer brings. */
  constructor(
    readonly session: ISessionContext,
    readonly onEvents: ((events: Record<string, any>[]) => void) | null = null
  ) {}

  /** Call driver function `name`; its answer, or an Error with its one line. */
  async call<T = Record<string, any>>(name: string, args: Record<string, unknown>): Promise<T> {
    const kernel = this.session.session?.kernel;
    if (!kernel) {
      throw new Error('this notebook has no kernel');
    }
    const expr =
      `__import__("nbflow.live.driver").live.driver.call(${JSON.stringify(name)}, ` +
      `${JSON.stringify(JSON.stringify(args))})`;
    const future = kernel.requestExecute({
      code: '',
      silent: true,
      store_history: false,
      user_expressions: { r: expr },
      allow_stdin: false,
      stop_on_error: false
    });
    const reply = await future.done;
    const content = reply.content as any;
    const result = content.user_expressions?.r;
    if (content.status !== 'ok' || !result) {
      throw new Error(`the kernel did not answer nbflow (${content.ename ?? content.status})`);
    }
    if (result.status !== 'ok') {
      const why = `${result.ename}: ${result.evalue}`;
      if (result.ename === 'ModuleNotFoundError') {
        throw new Error(`nbflow is not installed in this notebook's kernel (${why})`);
      }
      throw new Error(`nbflow's driver failed in the kernel: ${why}`);
    }
    const answer = JSON.parse(unrepr(result.data['text/plain']));
    if (Array.isArray(answer?.events) && answer.events.length && this.onEvents) {
      this.onEvents(answer.events);
    }
    if (answer && typeof answer === 'object' && 'error' in answer && typeof answer.error === 'string') {
      throw new Error(answer.error);
    }
    return answer as T;
  }
}

/** The code cells of `nb` by cell id. */
function cellsById(nb: NotebookPanel): Map<string, CodeCell> {
  const found = new Map<string, CodeCell>();
  for (const widget of nb.content.widgets) {
    if (widget.model.type === 'code') {
      found.set(widget.model.id, widget as CodeCell);
    }
  }
  return found;
}

/**
 * Consecutive outputs of one stream as one output, as they end up when a cell runs (given
 * at once, JupyterLab's output model would append each to the one before it *and* keep it:
 * a `map:` step's element lines would show twice).
 */
export function coalesceStreams(list: any[]): any[] {
  const text = (t: string | string[]) => (Array.isArray(t) ? t.join('') : t ?? '');
  const merged: any[] = [];
  for (const output of list) {
    const last = merged[merged.length - 1];
    if (output.output_type === 'stream' && last?.output_type === 'stream' && last.name === output.name) {
      merged[merged.length - 1] = { ...last, text: text(last.text) + text(output.text) };
    } else {
      merged.push(output);
    }
  }
  return merged;
}

/**
 * Put `outputs` (cell id -> nbformat outputs) into the notebook's cells through the shared
 * model, all in one transaction of the notebook's undo history (Ctrl-Z in command mode
 * takes them all back). `counts` sets execution counts too (null clears). Returns the ids
 * of the cells changed.
 */
export function putOutputs(
  nb: NotebookPanel,
  outputs: Record<string, any[]>,
  counts: Record<string, number | null> = {}
): string[] {
  const shared = nb.context.model.sharedModel;
  const byId = new Map(shared.cells.map(c => [c.getId(), c]));
  const changed: string[] = [];
  shared.transact(() => {
    for (const [id, list] of Object.entries(outputs)) {
      const cell = byId.get(id) as any;
      if (!cell || cell.cell_type !== 'code') {
        continue;
      }
      cell.setOutputs(coalesceStreams(list));
      if (id in counts) {
        cell.execution_count = counts[id];
      }
      changed.push(id);
    }
  }, true);
  return changed;
}

function errorOf(reply: any): string {
  const content = reply?.content;
  if (!content || content.status === 'ok') {
    return '';
  }
  return content.status === 'error' ? `${content.ename}: ${content.evalue}` : String(content.status);
}

/**
 * Drive a run in the notebook's own kernel (`mode`, `step` as LIVE-PROTOCOL.md's `begin`;
 * `restore-to` restores what a run up to and including `step` leaves).
 */
export async function runInKernel(
  nb: NotebookPanel,
  notebook: Record<string, any>,
  mode: Mode,
  step: string | null,
  progress: IProgress
): Promise<IOutcome> {
  const session = nb.sessionContext;
  await session.ready;
  if (!session.session?.kernel) {
    throw new Error(`${nb.context.path} has no kernel: start one first`);
  }
  if (!(await isPython(session))) {
    throw new Error("nbflow runs steps in Python kernels; this notebook's kernel is not Python");
  }
  await loadInKernel(session);
  const driver = new KernelDriver(session, events => progress.events(events));
  const begun = await driver.call<{ run_id: number | null; steps: IStepDecision[] }>('begin', {
    path: nb.context.path,
    notebook,
    mode,
    step,
    params: {}
  });
  const steps = begun.steps.filter(s => s.action !== 'skip');
  progress.begun(begun.run_id, steps);
  const outcome: IOutcome = {
    runId: begun.run_id,
    status: 'done',
    restored: [],
    ran: [],
    missing: {},
    error: '',
    counts: {}
  };
  const cells = cellsById(nb);
  /** The first failure names the run's error; the run goes on (the driver skips what needs it). */
  const failed = (name: string, error: string): void => {
    if (outcome.status === 'done') {
      outcome.status = 'failed';
      outcome.error = `${name}: ${error}`;
    }
  };
  /** A step the driver ran in the kernel: its outputs into its cells; false when the run stops. */
  const ranHere = (name: string, answer: IRanHere): boolean => {
    putOutputs(nb, answer.outputs ?? {});
    progress.step(name, answer.status);
    outcome.ran.push(name);
    if (answer.status === 'failed') {
      failed(name, answer.step_error || answer.status);
      return true;
    }
    if (answer.status === 'cancelled') {
      outcome.status = answer.status;
      outcome.error = `${name}: ${answer.step_error || answer.status}`;
      return false;
    }
    return true;
  };
  try {
    for (const s of steps) {
      if (s.action === 'restore') {
        const restored = await driver.call<{ missing: Record<string, string> } & Partial<IRanHere>>('restore', {
          step: s.name
        });
        if (restored.status !== undefined) {
          // deferred by the plan, and a step that ran changed what it reads: it ran in the kernel
          if (!ranHere(s.name, restored as IRanHere)) {
            break;
          }
          continue;
        }
        Object.assign(outcome.missing, restored.missing);
        putOutputs(nb, s.outputs);
        outcome.restored.push(s.name);
        progress.step(s.name, Object.keys(restored.missing).length ? 'failed' : 'cached');
        continue;
      }
      if (s.in_kernel) {
        progress.step(s.name, 'running');
        if (!ranHere(s.name, await driver.call<IRanHere>('run_step', { step: s.name }))) {
          break;
        }
        continue;
      }
      const started = await driver.call<Partial<IRanHere>>('step_started', { step: s.name });
      if (started.status === 'skipped') {
        // a step it needs failed: the driver skipped it; its cells do not run
        progress.step(s.name, 'skipped');
        continue;
      }
      if (started.status === 'cached') {
        // early cut-off: the steps above it left the values it read before; restored, not run
        putOutputs(nb, started.outputs ?? {});
        outcome.restored.push(s.name);
        progress.step(s.name, 'cached');
        continue;
      }
      progress.step(s.name, 'running');
      let error = '';
      let interrupted = false;
      for (const id of s.cell_ids) {
        const cell = cells.get(id);
        if (!cell) {
          error = `cell ${id} of step ${s.name} is not in the notebook any more`;
          break;
        }
        let reply: any;
        try {
          reply = await CodeCell.execute(cell, session, { deletedCells: [], recordTiming: false });
        } catch (e) {
          error = (e as Error).message || 'the execution was cancelled';
          interrupted = true;
          break;
        }
        error = errorOf(reply);
        if (error) {
          interrupted = reply?.content?.ename === 'KeyboardInterrupt';
          break;
        }
      }
      const outputs: Record<string, any[]> = {};
      for (const id of s.cell_ids) {
        const cell = cells.get(id);
        if (cell) {
          outputs[id] = cell.model.outputs.toJSON();
        }
      }
      const finished = await driver.call<IRanHere & { attempts?: number }>('step_finished', {
        step: s.name,
        outputs,
        error: error || null,
        interrupted
      });
      if (finished.attempts) {
        // it failed and had retries (retry:): the kernel ran it again; the last attempt's outputs
        putOutputs(nb, finished.outputs ?? {});
      }
      if (finished.status === 'done') {
        error = '';
      } else if (finished.status === 'failed' && finished.step_error) {
        // the kernel's word: a timeout: interrupts the cell, and the step failed (not cancelled)
        error = finished.step_error;
        interrupted = false;
      } else if (finished.status === 'cancelled') {
        error = finished.step_error || error || 'interrupted';
        interrupted = true;
      }
      progress.step(s.name, interrupted ? 'cancelled' : finished.status);
      outcome.ran.push(s.name);
      if (interrupted) {
        outcome.status = 'cancelled';
        outcome.error = `${s.name}: ${error}`;
        break;
      }
      if (error) {
        failed(s.name, error);
      }
    }
  } catch (e) {
    outcome.status = 'failed';
    outcome.error = (e as Error).message;
  }
  const finished = await driver.call<{ counts?: Record<string, number> }>('finish', { status: outcome.status });
  outcome.counts = finished.counts ?? {};
  return outcome;
}
