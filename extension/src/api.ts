/**
 * The REST client: nbflow's server extension under /nbflow/api/ (see docs/rest-api.yaml).
 * Requests go through ServerConnection, so JupyterLab's token and XSRF handling apply.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface INode {
  id: string;
  label: string;
  state: string;
  reasons: string[];
  cell: number;
  cell_id: string | null;
  params: string[];
  docs: string;
  x: number;
  y: number;
}

export interface IGraph {
  notebook: string;
  title: string;
  nodes: INode[];
  edges: { id: string; source: string; target: string; names: string[]; explicit: boolean }[];
  legend: { state: string; colour: string; shape: string; label: string }[];
  style: any[];
  run: { id: number; status: string } | null;
  /** One line each: the notebook's warnings (why it was planned on its own, for one). */
  warnings?: string[];
}

export interface IRunEvent {
  type: string;
  run_id: number;
  step?: string;
  status?: string;
  error?: string;
  duration?: number;
  [key: string]: any;
}

export interface IRunOptions {
  params?: Record<string, unknown>;
  only?: string[];
  from?: string[];
  force?: string[];
  force_all?: boolean;
}

const settings = ServerConnection.makeSettings();

function url(route: string, query: Record<string, string> = {}): string {
  return URLExt.join(settings.baseUrl, 'nbflow/api', route) + URLExt.objectToQueryString(query);
}

export async function request<T>(route: string, init: RequestInit = {}, query: Record<string, string> = {}): Promise<T> {
  const response = await ServerConnection.makeRequest(url(route, query), init, settings);
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    throw new Error(data.message || `${response.status} ${response.statusText}`);
  }
  return data as T;
}

export function graph(path: string): Promise<IGraph> {
  return request<IGraph>('graph', {}, { path });
}

/** The graph of notebook JSON as it is in the editor (not saved yet). */
export function graphOf(path: string, notebook: Record<string, any>): Promise<IGraph> {
  return request<IGraph>('graph', { method: 'POST', body: JSON.stringify({ path, notebook }) });
}

export function startRun(path: string, options: IRunOptions = {}): Promise<{ id: number }> {
  return request('runs', { method: 'POST', body: JSON.stringify({ path, ...options }) });
}

export function cancelRun(path: string, id: number): Promise<unknown> {
  return request(`runs/${id}`, { method: 'DELETE' }, { path });
}

export function listRuns(path: string): Promise<{ runs: { id: number; status: string }[] }> {
  return request('runs', {}, { path });
}

export function buildReport(path: string, id: number): Promise<{ url: string }> {
  return request(`runs/${id}/report`, { method: 'POST' }, { path });
}

/** Read the run's server-sent events in order until RunFinished (or the stream ends). */
export async function followRun(path: string, id: number, onEvent: (event: IRunEvent) => void): Promise<void> {
  const response = await ServerConnection.makeRequest(url(`runs/${id}/events`, { path }), {}, settings);
  if (!response.ok || !response.body) {
    throw new Error(`events of run ${id}: ${response.status}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter(line => line.startsWith('data: '))
        .map(line => line.slice(6))
        .join('\n');
      if (data) {
        onEvent(JSON.parse(data));
      }
    }
  }
}

export interface IRunOutputs {
  run_id: number;
  status: string;
  from: 'output notebook' | 'cache';
  cells: { id: string; index: number; outputs: any[]; execution_count: number | null }[];
  skipped: { id: string | null; index: number; cell: number; step: string | null; why: string }[];
}

/** Run `id`'s outputs for the cells of the notebook as it is in the editor. */
export function runOutputs(path: string, id: number, notebook: Record<string, any>): Promise<IRunOutputs> {
  return request(`runs/${id}/outputs`, { method: 'POST', body: JSON.stringify({ path, notebook }) });
}
