// Types of the shared canvas (src/canvas.js) for the JupyterLab extension's TypeScript.
import type { Core } from 'cytoscape';

export interface ICanvasNode {
  id: string;
  label: string;
  state: string;
  x: number;
  y: number;
  /** The group (a notebook of a pipeline of notebooks) the node is drawn inside. */
  parent?: string;
}

/** A notebook of a pipeline of notebooks: drawn as a compound node around its steps. */
export interface ICanvasGroup {
  id: string;
  label: string;
  /** The notebook being looked at: drawn highlighted. */
  current?: boolean;
}

export interface ICanvasEdge {
  id: string;
  source: string;
  target: string;
  names?: string[];
  explicit?: boolean;
  /** An edge between two notebooks (a file or an after:NB:STEP tag). */
  link?: boolean;
}

export interface ICanvasGraph {
  nodes: ICanvasNode[];
  edges: ICanvasEdge[];
  groups?: ICanvasGroup[];
  /** Nodes cannot be moved nor edges drawn (Move and Connect are hidden). */
  readonly?: boolean;
  legend: { state: string; colour: string; shape: string; label: string }[];
}

export interface ICanvasOptions {
  onMove?: (positions: Record<string, { x: number; y: number }>) => void;
  onConnect?: (source: string, target: string) => void;
  onSelect?: (step: string) => void;
  onSelectEdge?: (edge: string) => void;
  onMode?: (mode: 'move' | 'connect') => void;
  toolbar?: boolean;
}

export interface ICanvas {
  readonly cy: Core;
  readonly root: HTMLElement;
  readonly mode: 'move' | 'connect';
  setGraph(graph: ICanvasGraph, states?: Record<string, string>): void;
  setStates(states: Record<string, string>): void;
  /** Labels changed since the graph was sent (a check mark, what a step produced). */
  setLabels(labels: Record<string, string>): void;
  select(step: string): void;
  selectEdge(edge: string): void;
  selectedStep(): string;
  setMode(mode: 'move' | 'connect'): void;
  fit(): void;
  find(text: string, choose?: boolean): string[];
  toggleCollapse(step: string): void;
  collapsed(): string[];
  nodeCenter(id: string): { x: number; y: number };
  edgeMiddle(id: string): { x: number; y: number };
  states(): Record<string, string>;
  destroy(): void;
}

export function createCanvas(el: HTMLElement, options?: ICanvasOptions): ICanvas;
export function fanOut(step: string, edges: ICanvasEdge[]): string[];
