/**
 * nbflow in JupyterLab: mark cells as steps (cell toolbar, context menu), badges with each
 * step's state, a side panel with the live pipeline graph, and commands to run, run up to
 * a step, run stale steps, cancel, and open the last run's report.
 *
 * The panel is also a builder: dragging a node, drawing an edge, adding, renaming and
 * deleting a step edit the notebook model (editing.ts), never the file; the graph is
 * recomputed by the server from the notebook as it is in the editor (POST graph).
 *
 * The notebook's own kernel takes part too (live.ts, LIVE-PROTOCOL.md): nbflow's IPython
 * extension is loaded silently in every Python kernel of a tracked notebook; commands
 * restore the pipeline's state into it and run stale steps (or up to a step) in it, the
 * step cells executing through the notebook's session; a finished run's outputs (CLI,
 * server, studio) can be written into the open notebook's cells, undoably.
 *
 * When the notebook belongs to a pipeline of notebooks (project.ts), the panel shows the
 * whole pipeline under its own graph, and "Run pipeline of notebooks" runs it on the server.
 *
 * The nbflow studio is reachable through the Jupyter server at <base url>/nbflow/studio/
 * (nbflow/studio/proxy.py): a launcher tile and "Open in nbflow studio" on a notebook in
 * the file browser open it in a new browser tab.
 *
 * Everything the front end knows comes from nbflow's REST API (nbflow/server.py), which
 * calls the same core API as the CLI and the widget.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin, ILayoutRestorer } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, showDialog } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import * as api from './api';
import { addStep, connect, deleteStep, EditError, renameStep, setLayout } from './editing';
import { loadInKernel, Mode, putOutputs, runInKernel } from './live';
import { PipelineModel } from './model';
import { notifyError, notifyOutcome } from './notify';
import { PipelinePanel } from './panel';
import { addAfter, markStep, stepOf, unmarkStep } from './tags';

const ICON = new LabIcon({
  name: 'nbflow:graph',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="8" y="2" width="8" height="5" rx="1"/><rect x="2" y="16" width="8" height="5" rx="1"/>' +
    '<rect x="14" y="16" width="8" height="5" rx="1"/>' +
    '<path d="M11.3 7h1.4v4H18a1 1 0 0 1 1 1v4h-1.4v-3.6H6.4V16H5v-4a1 1 0 0 1 1-1h5.3z"/></g></svg>'
});
const STEP_ICON = new LabIcon({
  name: 'nbflow:step',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 5a2 2 0 0 1 2-2h9l7 7v9a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2zm4 5v2h10v-2zm0 4v2h7v-2z"/></g></svg>'
});

const RESTORE_ICON = new LabIcon({
  name: 'nbflow:restore',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M13 3a9 9 0 0 0-9 9H1l4 4 4-4H6a7 7 0 1 1 2.05 4.95l-1.42 1.42A9 9 0 1 0 13 3z"/>' +
    '<path d="M12 8v5l4.25 2.52.77-1.28-3.52-2.09V8z"/></g></svg>'
});
const RUN_KERNEL_ICON = new LabIcon({
  name: 'nbflow:run-in-kernel',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M4 4h16v16H4zm2 2v12h12V6z"/><path d="M10 8.5v7l5.5-3.5z"/></g></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbflow-jupyterlab:plugin',
  description: 'nbflow: mark steps, see the pipeline graph beside the notebook, run and watch.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, ILauncher, IFileBrowserFactory],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null,
    browsers: IFileBrowserFactory | null
  ) => {
    const models = new Map<string, PipelineModel>();
    const panel = new PipelinePanel();
    panel.title.icon = ICON;
    app.shell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, panel.id);

    const modelOf = (nb: NotebookPanel | null): PipelineModel | null => {
      if (!nb) {
        return null;
      }
      const path = nb.context.path;
      let model = models.get(path);
      if (!model) {
        model = new PipelineModel(path, () => notebookJSON(nb));
        models.set(path, model);
        model.changed.connect(() => {
          renderBadges(nb, model!);
          app.commands.notifyCommandChanged();
        });
        void model.refresh();
      }
      return model;
    };

    const current = (): NotebookPanel | null => tracker.currentWidget;

    tracker.currentChanged.connect((_, nb) => {
      panel.model = modelOf(nb);
      panel.project.notebook = nb?.context.path ?? null;
    });
    tracker.widgetAdded.connect((_, nb) => {
      void nb.context.ready.then(() => {
        const model = modelOf(nb);
        nb.context.saveState.connect((_, state) => {
          if (state === 'completed' && !model?.running) {
            void model?.refresh();
          }
          if (state === 'completed' && !panel.project.running) {
            void panel.project.refresh(); // a saved edit may change the pipeline of notebooks
          }
        });
        nb.content.modelContentChanged.connect(() => model && renderBadges(nb, model));
        autoLoad(nb);
        // Any edit (typing, tags, the panel's gestures, undo, a collaborator's) redraws the
        // graph: the shared document's updates cover them all (the notebook's `changed`
        // signal does not include cell metadata).
        const ydoc = (nb.context.model.sharedModel as any).ydoc;
        const onUpdate = () => model?.refreshSoon();
        ydoc?.on('update', onUpdate);
        nb.disposed.connect(() => ydoc?.off('update', onUpdate));
      });
    });
    panel.model = modelOf(current());
    panel.project.notebook = current()?.context.path ?? null;

    /** Apply one gesture of the panel to the current notebook's model; say what happened. */
    const edit = (gesture: (nb: NotebookPanel, model: PipelineModel) => string | void) => {
      const nb = current();
      const model = modelOf(nb);
      if (!nb || !model) {
        return;
      }
      try {
        const said = gesture(nb, model);
        if (said) {
          panel.say(said);
        }
        model.refreshSoon(0);
      } catch (e) {
        if (!(e instanceof EditError)) {
          console.error('nbflow:', e);
        }
        panel.say((e as Error).message, 'error');
      }
    };
    panel.view.moved.connect((_, positions) =>
      edit(nb => {
        setLayout(nb.context.model.sharedModel, positions);
        return `moved ${Object.keys(positions).join(', ')} (not saved yet)`;
      })
    );
    panel.view.connected.connect((_, { source, target }) =>
      edit((nb, model) => {
        if (!model.graph) {
          throw new EditError('the graph is not loaded yet');
        }
        return connect(nb.context.model.sharedModel, model.graph, source, target);
      })
    );
    panel.action.connect(async (_, action) => {
      const nb = current();
      if (!nb) {
        return;
      }
      const step = panel.selected;
      if (action === 'add') {
        const result = await InputDialog.getText({
          title: step ? `New step below ${step}` : 'New step',
          placeholder: 'name'
        });
        if (result.button.accept && result.value) {
          const name = result.value.trim();
          edit(nb => {
            const stem = nb.context.path.split('/').pop()!.replace(/\.ipynb$/, '');
            const index = addStep(nb.context.model.sharedModel, name, step || null, stem);
            nb.content.activeCellIndex = index;
            void nb.content.scrollToItem(index, 'center');
            panel.selected = name;
            return `added step ${name}: write its code in the new cell, its docs above (not saved yet)`;
          });
        }
      } else if (action === 'rename' && step) {
        const result = await InputDialog.getText({ title: `Rename step ${step}`, text: step });
        if (result.button.accept && result.value && result.value.trim() !== step) {
          const name = result.value.trim();
          edit(nb => {
            renameStep(nb.context.model.sharedModel, step, name);
            panel.selected = name;
            return `renamed ${step} to ${name}; after:${step} tags now say after:${name} (not saved yet)`;
          });
        }
      } else if (action === 'delete' && step) {
        const result = await showDialog({
          title: `Delete step ${step}`,
          body: `Remove only the step's tags (its code stays, as ordinary cells), or delete its cells and docs? after:${step} tags of other steps go either way; Ctrl-Z in the notebook undoes it.`,
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Delete cells', ariaLabel: 'delete cells' }),
            Dialog.okButton({ label: 'Remove tags', ariaLabel: 'remove tags' })
          ]
        });
        if (result.button.accept) {
          const cells = result.button.label === 'Delete cells';
          edit(nb => {
            deleteStep(nb.context.model.sharedModel, step, cells);
            panel.selected = '';
            return cells ? `deleted step ${step} and its cells (not saved yet)` : `${step} is no longer a step (not saved yet)`;
          });
        }
      }
    });

    /** Make the cell of `step` the active one in `nb`. */
    const goToStep = (nb: NotebookPanel, step: string) => {
      const index = nb.content.widgets.findIndex(cell => stepOf(cell.model) === step);
      if (index >= 0) {
        nb.content.activeCellIndex = index;
        nb.content.deselectAll();
        void nb.content.scrollToItem(index, 'center');
        nb.content.activate();
      }
    };
    panel.stepClicked.connect((_, step) => {
      const nb = current();
      if (nb) {
        goToStep(nb, step);
      }
    });
    // A step of the pipeline of notebooks: its notebook is opened (if it is not the one in
    // front) and its cell made active; a text notebook opens in the editor JupyterLab picks.
    panel.project.openStep.connect(async (_, { path, step }) => {
      const nb = current();
      if (nb && nb.context.path === path) {
        goToStep(nb, step);
        return;
      }
      try {
        const widget = await app.commands.execute('docmanager:open', { path });
        if (widget instanceof NotebookPanel) {
          await widget.context.ready;
          await widget.revealed;
          goToStep(widget, step);
        }
      } catch (e) {
        report(e);
      }
    });

    const activeCell = () => current()?.content.activeCell ?? null;
    const isCode = () => activeCell()?.model.type === 'code';
    const hasNotebook = () => current() !== null;
    const report = (e: unknown) => void notifyError(e);

    /** The step of the active cell: its own tag, or the nearest step cell above it. */
    const selectedStep = (): string | null => {
      const nb = current();
      if (!nb) {
        return null;
      }
      for (let i = nb.content.activeCellIndex; i >= 0; i--) {
        const step = stepOf(nb.content.widgets[i].model);
        if (step) {
          return step;
        }
      }
      return null;
    };

    const run = async (options: (model: PipelineModel) => api.IRunOptions) => {
      const nb = current();
      const model = modelOf(nb);
      if (!nb || !model) {
        return;
      }
      try {
        if (nb.context.model.dirty) {
          await nb.context.save();
        }
        await model.refresh();
        await model.run(options(model));
        app.shell.activateById(panel.id);
      } catch (e) {
        report(e);
      }
    };

    /** Run in the notebook's own kernel (LIVE-PROTOCOL.md); the panel follows it. */
    const inKernel = async (mode: Mode, step: string | null) => {
      const nb = current();
      const model = modelOf(nb);
      const notebook = nb ? notebookJSON(nb) : null;
      if (!nb || !model || !notebook) {
        return;
      }
      if (model.running) {
        report(new Error('a run of this notebook is going on; wait for it or cancel it first'));
        return;
      }
      app.shell.activateById(panel.id);
      let outcome;
      try {
        outcome = await runInKernel(nb, notebook, mode, step, {
          begun: (runId, steps) => model.liveBegin(runId, steps),
          step: (name, state) => model.liveStep(name, state),
          events: events => model.liveEvents(events as api.IRunEvent[])
        });
      } catch (e) {
        await model.liveEnd('failed', (e as Error).message);
        report(e);
        return;
      }
      const counts = Object.entries(outcome.counts)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ');
      const missing = Object.entries(outcome.missing).map(([name, why]) => `${name} (${why})`);
      let message: string;
      if (outcome.runId === null) {
        message = outcome.restored.length
          ? `restored ${outcome.restored.join(', ')} into the kernel`
          : 'nothing to restore: no step is fresh (run the pipeline first)';
      } else {
        message = `run ${outcome.runId} in the kernel ${outcome.status}` + (counts ? ` (${counts})` : '');
      }
      if (missing.length) {
        message += `; not restored: ${missing.join('; ')}`;
      }
      if (outcome.error) {
        message += `: ${outcome.error}`;
      }
      await model.liveEnd(outcome.status, message);
      notifyOutcome(outcome.status === 'done' && missing.length ? 'partial' : outcome.status, message);
    };

    /** Copy run `id`'s outputs into the open notebook's cells (not saved; Ctrl-Z undoes it). */
    const writeOutputs = async (nb: NotebookPanel, model: PipelineModel, id: number): Promise<string> => {
      const notebook = notebookJSON(nb);
      if (!notebook) {
        throw new Error('the notebook is not loaded yet');
      }
      const answer = await api.runOutputs(model.path, id, notebook);
      const outputs: Record<string, any[]> = {};
      const counts: Record<string, number | null> = {};
      for (const cell of answer.cells) {
        outputs[cell.id] = cell.outputs;
        counts[cell.id] = cell.execution_count;
      }
      const changed = putOutputs(nb, outputs, counts);
      let message = `run ${id}'s outputs are in ${changed.length} cell${changed.length === 1 ? '' : 's'} (not saved yet; Ctrl-Z undoes it)`;
      if (answer.skipped.length) {
        const named = answer.skipped.map(s => `cell ${s.cell}${s.step ? ` (step ${s.step})` : ''}: ${s.why}`);
        message += `; skipped ${named.join('; ')}`;
      }
      return message;
    };

    const { commands } = app;
    commands.addCommand('nbflow:restore-kernel', {
      label: args => (args.toolbar ? '' : 'Restore pipeline state into this kernel'),
      icon: args => (args.toolbar ? RESTORE_ICON : undefined),
      caption: "nbflow: put the values of the pipeline's fresh steps into this notebook's kernel, from the cache",
      isEnabled: hasNotebook,
      execute: () => inKernel('restore', null)
    });
    commands.addCommand('nbflow:restore-to-kernel', {
      label: 'Restore up to this step',
      caption:
        "nbflow: put into this notebook's kernel what a run up to this step leaves: its values and its ancestors', and its hidden state",
      isEnabled: () => selectedStep() !== null,
      execute: () => inKernel('restore-to', selectedStep())
    });
    commands.addCommand('nbflow:run-stale-kernel', {
      label: args => (args.toolbar ? '' : 'Run stale steps in this kernel'),
      icon: args => (args.toolbar ? RUN_KERNEL_ICON : undefined),
      caption: "nbflow: run the stale steps in this notebook's kernel (fresh ones they need are restored)",
      isEnabled: hasNotebook,
      execute: () => inKernel('stale', null)
    });
    commands.addCommand('nbflow:run-to-kernel', {
      label: 'Run up to this step in this kernel',
      caption: "nbflow: run this step and the stale steps before it in this notebook's kernel",
      isEnabled: () => selectedStep() !== null,
      execute: () => inKernel('to', selectedStep())
    });
    commands.addCommand('nbflow:write-outputs', {
      label: "Write a run's outputs into the notebook",
      caption: "nbflow: copy a finished run's outputs into this notebook's cells (cells changed since are skipped)",
      isEnabled: hasNotebook,
      execute: async args => {
        const nb = current();
        const model = modelOf(nb);
        if (!nb || !model) {
          return;
        }
        try {
          let id = typeof args.run === 'number' ? args.run : null;
          if (id === null) {
            const { runs } = await api.listRuns(model.path);
            const finished = runs.filter(r => r.status !== 'running' && r.status !== 'pending');
            if (!finished.length) {
              throw new Error(`${model.path} has no finished run yet`);
            }
            const items = finished.map(r => `run ${r.id} (${r.status})`);
            const result = await InputDialog.getItem({ title: "Write which run's outputs into the notebook?", items });
            if (!result.button.accept || !result.value) {
              return;
            }
            id = finished[items.indexOf(result.value)].id;
          }
          const message = await writeOutputs(nb, model, id);
          panel.say(message);
          notifyOutcome(message.includes('skipped') ? 'partial' : 'done', message);
        } catch (e) {
          report(e);
        }
      }
    });
    commands.addCommand('nbflow:mark-step', {
      label: args => (args.toolbar ? '' : 'Make this cell an nbflow step…'),
      caption: 'Make this cell an nbflow step (tag step:<name>)',
      icon: STEP_ICON,
      isEnabled: isCode,
      execute: async () => {
        const cell = activeCell();
        if (!cell) {
          return;
        }
        const result = await InputDialog.getText({
          title: 'Step name',
          text: stepOf(cell.model) ?? '',
          placeholder: 'load'
        });
        if (result.button.accept && result.value) {
          try {
            markStep(cell.model, result.value.trim());
          } catch (e) {
            report(e);
          }
        }
      }
    });
    commands.addCommand('nbflow:add-after', {
      label: 'Add an nbflow dependency (after:)…',
      isEnabled: isCode,
      execute: async () => {
        const cell = activeCell();
        const model = modelOf(current());
        if (!cell || !model) {
          return;
        }
        const own = stepOf(cell.model);
        const steps = (model.graph?.nodes ?? []).map(n => n.id).filter(n => n !== own);
        const result = steps.length
          ? await InputDialog.getItem({ title: 'Run this step after', items: steps })
          : await InputDialog.getText({ title: 'Run this step after (step name)' });
        if (result.button.accept && result.value) {
          addAfter(cell.model, result.value);
        }
      }
    });
    commands.addCommand('nbflow:unmark-step', {
      label: 'Remove nbflow step tags',
      isEnabled: () => isCode() && stepOf(activeCell()!.model) !== null,
      execute: () => {
        const cell = activeCell();
        if (cell) {
          unmarkStep(cell.model);
        }
      }
    });
    commands.addCommand('nbflow:show-graph', {
      label: args => (args.toolbar ? '' : 'Show the nbflow pipeline graph'),
      caption: 'Show the nbflow pipeline graph',
      icon: ICON,
      execute: () => {
        app.shell.activateById(panel.id);
        void panel.model?.refresh();
      }
    });
    commands.addCommand('nbflow:run', {
      label: 'Run pipeline',
      caption: 'nbflow: run the pipeline (cached steps are restored, stale steps run)',
      isEnabled: hasNotebook,
      execute: () => run(() => ({}))
    });
    commands.addCommand('nbflow:run-to-selected', {
      label: 'Run pipeline up to the selected step',
      isEnabled: () => selectedStep() !== null,
      execute: () => run(() => ({ only: [selectedStep()!] }))
    });
    commands.addCommand('nbflow:run-project', {
      label: 'Run pipeline of notebooks',
      caption: 'nbflow: run every notebook of the pipeline of notebooks this notebook belongs to',
      isEnabled: () => panel.project.hasProject && !panel.project.running,
      execute: async () => {
        const nb = current();
        try {
          if (nb?.context.model.dirty) {
            await nb.context.save();
          }
          app.shell.activateById(panel.id);
          await panel.project.run();
        } catch (e) {
          report(e);
        }
      }
    });
    commands.addCommand('nbflow:run-stale', {
      label: 'Run stale steps',
      caption: 'nbflow: run only the stale steps',
      isEnabled: hasNotebook,
      execute: () =>
        run(model => {
          const stale = (model.graph?.nodes ?? []).filter(n => n.state === 'stale').map(n => n.id);
          return stale.length ? { only: stale } : {};
        })
    });
    commands.addCommand('nbflow:cancel', {
      label: 'Cancel pipeline run',
      caption: 'nbflow: cancel the running pipeline',
      isEnabled: () => modelOf(current())?.running ?? false,
      execute: () => modelOf(current())?.cancel().catch(report)
    });
    commands.addCommand('nbflow:open-report', {
      label: "Open the last run's report",
      isEnabled: hasNotebook,
      execute: async () => {
        const model = modelOf(current());
        if (!model) {
          return;
        }
        try {
          const { runs } = await api.listRuns(model.path);
          const last = runs.find(r => r.status !== 'running' && r.status !== 'pending');
          if (!last) {
            throw new Error(`${model.path} has no finished run yet`);
          }
          const { url } = await api.buildReport(model.path, last.id);
          window.open(url, '_blank'); // a path under the server's base URL, by run id
        } catch (e) {
          report(e);
        }
      }
    });
    const studioUrl = (notebook?: string) =>
      URLExt.join(PageConfig.getBaseUrl(), 'nbflow/studio/') +
      (notebook ? URLExt.objectToQueryString({ notebook }) : '');
    commands.addCommand('nbflow:open-studio', {
      label: args => (args.isLauncher ? 'nbflow studio' : 'Open the nbflow studio'),
      caption: 'Build, run and browse pipelines in the nbflow studio (a new browser tab)',
      icon: ICON,
      execute: () => void window.open(studioUrl(current()?.context.path), '_blank')
    });
    commands.addCommand('nbflow:open-in-studio', {
      label: 'Open in nbflow studio',
      caption: 'Open this notebook in the nbflow studio (a new browser tab)',
      icon: ICON,
      execute: () => {
        const item = browsers?.tracker.currentWidget?.selectedItems().next();
        const path = item && !item.done ? item.value.path : current()?.context.path;
        window.open(studioUrl(path), '_blank');
      }
    });
    launcher?.add({ command: 'nbflow:open-studio', category: 'Other', rank: 1 });

    for (const command of [
      'nbflow:open-studio',
      'nbflow:run',
      'nbflow:run-to-selected',
      'nbflow:run-stale',
      'nbflow:run-project',
      'nbflow:cancel',
      'nbflow:restore-kernel',
      'nbflow:restore-to-kernel',
      'nbflow:run-stale-kernel',
      'nbflow:run-to-kernel',
      'nbflow:write-outputs',
      'nbflow:open-report',
      'nbflow:show-graph',
      'nbflow:mark-step',
      'nbflow:add-after',
      'nbflow:unmark-step'
    ]) {
      palette?.addItem({ command, category: 'nbflow' });
    }
    tracker.activeCellChanged.connect(() => commands.notifyCommandChanged());

    // For tests and the browser console, like the studio's window.nbflowCanvas: the panel's
    // canvas and the current notebook's model (what the gestures edit).
    (window as any).nbflowLab = {
      canvas: panel.view.canvas,
      panel,
      project: panel.project,
      notebook: () => current()?.context.model ?? null
    };
  }
};

/**
 * `%load_ext nbflow` in the notebook's kernel whenever a (Python) kernel starts or
 * restarts, silently (LIVE-PROTOCOL.md, Loading).
 */
function autoLoad(nb: NotebookPanel): void {
  const session = nb.sessionContext;
  let loadedIn: string | null = null;
  const check = () => {
    const kernel = session.session?.kernel;
    if (!kernel || session.isDisposed) {
      return;
    }
    const status = kernel.status;
    if (status === 'restarting' || status === 'autorestarting' || status === 'starting') {
      loadedIn = null;
    } else if (status === 'idle' && loadedIn !== kernel.id) {
      loadedIn = kernel.id;
      void loadInKernel(session).catch(() => undefined);
    }
  };
  session.statusChanged.connect(check);
  session.kernelChanged.connect(() => {
    loadedIn = null;
    check();
  });
  void session.ready.then(check);
}

/** The notebook as it is in the editor, without outputs (the graph does not need them). */
function notebookJSON(nb: NotebookPanel): Record<string, any> | null {
  if (!nb.context.isReady) {
    return null;
  }
  const data = nb.context.model.toJSON() as Record<string, any>;
  for (const cell of data.cells ?? []) {
    if (cell.cell_type === 'code') {
      cell.outputs = [];
    }
  }
  return data;
}

/** A badge above each step cell: the step's name and its state (fresh, stale, running...). */
function renderBadges(nb: NotebookPanel, model: PipelineModel): void {
  const colours = Object.fromEntries((model.graph?.legend ?? []).map(l => [l.state, l.colour]));
  for (const cell of nb.content.widgets) {
    const step = stepOf(cell.model);
    let badge = cell.node.querySelector(':scope > .nbflow-badge') as HTMLElement | null;
    if (!step) {
      badge?.remove();
      continue;
    }
    if (!badge) {
      badge = document.createElement('div');
      badge.className = 'nbflow-badge';
      cell.node.insertBefore(badge, cell.node.firstChild);
    }
    const state = model.states[step] ?? 'unsaved';
    badge.dataset.step = step;
    badge.dataset.state = state;
    badge.style.background = colours[state] ?? '#eee';
    badge.textContent = `step ${step} · ${state}`;
  }
}

export default plugin;
