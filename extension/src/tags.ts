/**
 * Step tags on cells (`step:<name>`, `after:<name>`), the notebook format of nbflow:
 * ordinary JupyterLab cell tags, saved with the notebook.
 */
import { ICellModel } from '@jupyterlab/cells';

export const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function tagsOf(cell: ICellModel): string[] {
  const tags = cell.getMetadata('tags');
  return Array.isArray(tags) ? (tags as string[]) : [];
}

export function stepOf(cell: ICellModel): string | null {
  const tag = tagsOf(cell).find(t => t.startsWith('step:'));
  return tag ? tag.slice(5) : null;
}

export function setTags(cell: ICellModel, tags: string[]): void {
  if (tags.length) {
    cell.setMetadata('tags', tags);
  } else {
    cell.deleteMetadata('tags');
  }
}

export function markStep(cell: ICellModel, name: string): void {
  if (!STEP_NAME.test(name)) {
    throw new Error(`"${name}" is not a step name: use letters, digits, _ and -, not starting with a digit`);
  }
  setTags(cell, [...tagsOf(cell).filter(t => !t.startsWith('step:')), `step:${name}`]);
}

export function addAfter(cell: ICellModel, name: string): void {
  const tag = `after:${name}`;
  const tags = tagsOf(cell);
  if (!tags.includes(tag)) {
    setTags(cell, [...tags, tag]);
  }
}

export function unmarkStep(cell: ICellModel): void {
  setTags(cell, tagsOf(cell).filter(t => !t.startsWith('step:') && !t.startsWith('after:')));
}
