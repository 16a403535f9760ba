/**
 * Editing a pipeline from the side panel's gestures, through JupyterLab's notebook model.
 *
 * Every edit changes the notebook's shared model (`ISharedNotebook`: cell tags, notebook
 * metadata, cells) inside one `transact`, so a gesture is one entry of the notebook's own
 * undo history (Ctrl-Z in command mode), shows as unsaved changes, and reaches other
 * collaborators like any other edit. Nothing here writes the file or talks to the server.
 *
 * Which cells belong to a step follows nbflow/notebook.py: a code cell tagged
 * `step:<name>` starts the step, the untagged code cells after it continue it up to the
 * next `step:` cell; markdown cells directly above a step are its docs; the first
 * markdown cell of the notebook is the pipeline's description. Whether an edge is
 * allowed is judged on the graph the server computed (nbflow.graph): an edge the code
 * already implies is reported with the variables it carries, a cycle is refused with its
 * path.
 */
import type { ISharedNotebook } from '@jupyter/ydoc';

import { IGraph } from './api';
import { STEP_NAME } from './tags';

type Metadata = {
  getMetadata(key: string): unknown;
  setMetadata(key: string, value: any): void;
  deleteMetadata(key: string): void;
};

/** A refused edit: the message says why, in one line. */
export class EditError extends Error {}

function tags(cell: Metadata): string[] {
  const value = cell.getMetadata('tags');
  return Array.isArray(value) ? (value as string[]) : [];
}

function setTags(cell: Metadata, value: string[]): void {
  if (value.length) {
    cell.setMetadata('tags', value);
  } else {
    cell.deleteMetadata('tags');
  }
}

function stepTag(cell: Metadata): string | null {
  const tag = tags(cell).find(t => t.trim().startsWith('step:'));
  return tag ? tag.trim().slice(5) : null;
}

const isSkip = (cell: Metadata) => tags(cell).some(t => t.trim() === 'skip');

/** The indexes of each step's code cells (first the tagged one), in notebook order. */
export function stepCells(notebook: ISharedNotebook): Map<string, number[]> {
  const steps = new Map<string, number[]>();
  let current: number[] | null = null;
  notebook.cells.forEach((cell, index) => {
    if (cell.cell_type !== 'code' || isSkip(cell)) {
      return;
    }
    const name = stepTag(cell);
    if (name !== null) {
      current = [index];
      steps.set(name, current);
    } else if (current && !tags(cell).some(t => t.trim() === 'parameters')) {
      current.push(index);
    }
  });
  return steps;
}

function cellsOf(notebook: ISharedNotebook, step: string): number[] {
  const cells = stepCells(notebook).get(step);
  if (!cells) {
    throw new EditError(`no step "${step}" in the notebook`);
  }
  return cells;
}

function descriptionIndex(notebook: ISharedNotebook): number {
  return notebook.cells.findIndex(c => c.cell_type === 'markdown' && !isSkip(c));
}

/** The markdown cells directly above the code cell at `index` (its docs), top first. */
function docsAbove(notebook: ISharedNotebook, index: number): number[] {
  const description = descriptionIndex(notebook);
  const found: number[] = [];
  for (let j = index - 1; j >= 0; j--) {
    const cell = notebook.cells[j];
    if (isSkip(cell)) {
      continue;
    }
    if (cell.cell_type === 'code') {
      break;
    }
    if (cell.cell_type === 'markdown' && j !== description) {
      found.unshift(j);
    }
  }
  return found;
}

/** The path `from` ... `to` along the graph's edges, or null. */
export function pathBetween(graph: IGraph, from: string, to: string): string[] | null {
  const children: Record<string, string[]> = {};
  for (const edge of graph.edges) {
    (children[edge.source] ??= []).push(edge.target);
  }
  const previous: Record<string, string> = {};
  const queue = [from];
  const seen = new Set([from]);
  while (queue.length) {
    const node = queue.shift()!;
    if (node === to) {
      const path = [to];
      while (path[0] !== from) {
        path.unshift(previous[path[0]]);
      }
      return path;
    }
    for (const child of children[node] ?? []) {
      if (!seen.has(child)) {
        seen.add(child);
        previous[child] = node;
        queue.push(child);
      }
    }
  }
  return null;
}

/**
 * Make `target` run after `source` (tag `after:<source>` on target's step cell).
 * Returns what happened; throws `EditError` when the edge would close a cycle.
 */
export function connect(notebook: ISharedNotebook, graph: IGraph, source: string, target: string): string {
  if (source === target) {
    throw new EditError(`a step cannot run after itself (${source})`);
  }
  const edge = graph.edges.find(e => e.source === source && e.target === target);
  if (edge) {
    return edge.names.length
      ? `${target} already runs after ${source}: it reads ${edge.names.join(', ')} from it`
      : `${target} already runs after ${source}: it is tagged after:${source}`;
  }
  const back = pathBetween(graph, target, source);
  if (back) {
    throw new EditError(
      `not connected: ${target} already runs before ${source}, so after:${source} would make a cycle: ` +
        [source, ...back].join(' -> ')
    );
  }
  const cell = notebook.cells[cellsOf(notebook, target)[0]];
  cellsOf(notebook, source);
  notebook.transact(() => setTags(cell, [...tags(cell), `after:${source}`]));
  return `${target} now runs after ${source} (tag after:${source}; not saved yet)`;
}

/** Save node positions in the notebook's `metadata.nbflow.layout` (other steps keep theirs). */
export function setLayout(notebook: ISharedNotebook, positions: Record<string, { x: number; y: number }>): void {
  const nbflow = { ...((notebook.getMetadata('nbflow') as Record<string, any>) ?? {}) };
  const layout = { ...(nbflow.layout ?? {}) };
  for (const [name, pos] of Object.entries(positions)) {
    layout[name] = { x: Math.round(pos.x * 10) / 10, y: Math.round(pos.y * 10) / 10 };
  }
  nbflow.layout = layout;
  notebook.transact(() => notebook.setMetadata('nbflow', nbflow));
}

function checkNewName(notebook: ISharedNotebook, name: string): void {
  if (!STEP_NAME.test(name)) {
    throw new EditError(
      `"${name}" is not a step name: a name starts with a letter or _ and has only letters, digits, _ and -`
    );
  }
  if (stepCells(notebook).has(name)) {
    throw new EditError(`there is already a step "${name}"`);
  }
}

/**
 * Add step `name`: a markdown cell with its docs and a code cell tagged `step:<name>`,
 * below step `below` (where its inputs exist) or after the last code cell. Returns the
 * index of the new code cell.
 */
export function addStep(notebook: ISharedNotebook, name: string, below: string | null, stem: string): number {
  checkNewName(notebook, name);
  const cells = notebook.cells;
  let at: number;
  if (below !== null) {
    // After the step's cells, before the docs of whatever code cell follows.
    const last = cellsOf(notebook, below).slice(-1)[0];
    const next = cells.findIndex((c, i) => i > last && c.cell_type === 'code');
    at = next < 0 ? cells.length : (docsAbove(notebook, next)[0] ?? next);
  } else {
    const lastCode = cells.map(c => c.cell_type).lastIndexOf('code');
    at = lastCode + 1;
  }
  const docs = `### ${name}\n\nWhat this step does: what it reads, what it makes.`;
  const description = descriptionIndex(notebook);
  const added = [
    { cell_type: 'markdown' as const, source: docs, metadata: {} },
    { cell_type: 'code' as const, source: '', metadata: { tags: [`step:${name}`] }, outputs: [], execution_count: null }
  ];
  notebook.transact(() => {
    if (description < 0 || description >= at) {
      // The first markdown cell is the description: docs need one above them.
      notebook.insertCells(0, [{ cell_type: 'markdown', source: `# ${stem}`, metadata: {} }]);
      at += 1;
    }
    notebook.insertCells(at, added);
  });
  return at + 1;
}

function retagAfter(notebook: ISharedNotebook, old: string, renamed: string | null): void {
  for (const cell of notebook.cells) {
    const current = tags(cell);
    if (!current.some(t => t.trim() === `after:${old}`)) {
      continue;
    }
    setTags(
      cell,
      renamed === null
        ? current.filter(t => t.trim() !== `after:${old}`)
        : current.map(t => (t.trim() === `after:${old}` ? `after:${renamed}` : t))
    );
  }
}

function moveLayout(notebook: ISharedNotebook, old: string, renamed: string | null): void {
  const nbflow = notebook.getMetadata('nbflow') as Record<string, any> | undefined;
  if (!nbflow?.layout || !(old in nbflow.layout)) {
    return;
  }
  const layout = { ...nbflow.layout };
  if (renamed !== null) {
    layout[renamed] = layout[old];
  }
  delete layout[old];
  notebook.setMetadata('nbflow', { ...nbflow, layout });
}

/** Rename a step: its tag, every `after:` tag naming it, and its saved position. */
export function renameStep(notebook: ISharedNotebook, old: string, renamed: string): void {
  if (old === renamed) {
    return;
  }
  const cell = notebook.cells[cellsOf(notebook, old)[0]];
  checkNewName(notebook, renamed);
  notebook.transact(() => {
    setTags(
      cell,
      tags(cell).map(t => (t.trim() === `step:${old}` ? `step:${renamed}` : t))
    );
    retagAfter(notebook, old, renamed);
    moveLayout(notebook, old, renamed);
  });
}

/**
 * Delete a step. With `cells`, its code cells and docs go; without, only its tags do
 * (`step:`, its own `after:` tags) and its cells stay as ordinary code. Either way the
 * `after:<name>` tags of other steps and its saved position go.
 */
export function deleteStep(notebook: ISharedNotebook, name: string, cells: boolean): void {
  const indexes = cellsOf(notebook, name);
  notebook.transact(() => {
    retagAfter(notebook, name, null);
    moveLayout(notebook, name, null);
    if (cells) {
      const docs = docsAbove(notebook, indexes[0]);
      notebook.deleteCellRange(docs[0] ?? indexes[0], indexes[indexes.length - 1] + 1);
    } else {
      const cell = notebook.cells[indexes[0]];
      setTags(
        cell,
        tags(cell).filter(t => !t.trim().startsWith('step:') && !t.trim().startsWith('after:'))
      );
    }
  });
}
