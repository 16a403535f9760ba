/**
 * How every nbflow command says how it ended: one notification, in JupyterLab 4 and in
 * Notebook 7 alike (both load `@jupyterlab/apputils-extension:notification`, which shows
 * `Notification` as toasts). The side panel's status line says the same; the notification
 * is what you see when the panel is closed (Notebook 7 opens no side panel by itself).
 *
 * - done: a success toast that closes itself;
 * - failed: an error toast with its one line (naming the step and its error), kept until
 *   dismissed;
 * - cancelled, or done with something left out (a value not restored, a cell skipped): a
 *   warning toast that closes itself.
 *
 * Nothing here decides an outcome or talks to the server or the kernel.
 */
import { Notification } from '@jupyterlab/apputils';

/** How a command ended. `partial`: done, with something left out (said in the message). */
export type CommandOutcome = 'done' | 'partial' | 'failed' | 'cancelled';

/** Milliseconds a toast that is not an error stays. */
const AUTO_CLOSE = 8000;

/** Tell the user how a command ended (`message`: one line); the notification's id. */
export function notifyOutcome(outcome: CommandOutcome, message: string): string {
  const type = outcome === 'done' ? 'success' : outcome === 'failed' ? 'error' : 'warning';
  return Notification.emit(message, type, {
    autoClose: outcome === 'failed' ? false : AUTO_CLOSE,
    data: { nbflow: outcome }
  });
}

/** A command failed with `error` (thrown by it): its one line, as a failed outcome. */
export function notifyError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return notifyOutcome('failed', (text || 'nbflow: the command failed').split('\n')[0]);
}
