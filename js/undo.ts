/**
 * Undo of what a command inserted: whatever the user reaches for first (the notification's
 * Undo, Ctrl+Z / Cmd+Z in the notebook or editor, `z` in command mode) removes our
 * insertion, and only it.
 */
import type { ISharedText } from '@jupyter/ydoc';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

import { TextAnchor } from './anchor';

/**
 * The notebook model's Yjs undo manager (not in the public typings).
 */
interface IUndoManager {
  undoStack: unknown[];
  stopCapturing(): void;
}

function undoManager(panel: NotebookPanel): IUndoManager | null {
  return (
    (
      panel.content.model?.sharedModel as unknown as {
        undoManager?: IUndoManager;
      }
    )?.undoManager ?? null
  );
}

/**
 * Whether a key event is the platform's undo (Ctrl+Z, or Cmd+Z on a Mac).
 */
export function isUndoKey(event: KeyboardEvent): boolean {
  return (
    (event.ctrlKey || event.metaKey) &&
    !event.shiftKey &&
    !event.altKey &&
    event.key.toLowerCase() === 'z'
  );
}

/**
 * A key that only modifies others (pressed on its own it changes nothing).
 */
function isModifier(event: KeyboardEvent): boolean {
  return ['Control', 'Meta', 'Shift', 'Alt', 'AltGraph', 'CapsLock'].includes(
    event.key
  );
}

/**
 * Removes one insertion on request; armed for the keyboard until the user presses another
 * key.
 */
export class InsertionUndo implements IDisposable {
  /**
   * @param host the element whose keys are watched (the notebook or the file editor)
   * @param remove removes the insertion; returns whether something was removed
   * @param stillThere whether the insertion is still there to be removed
   */
  constructor(
    private readonly _host: HTMLElement,
    private readonly _remove: () => boolean,
    private readonly _stillThere: () => boolean
  ) {
    this._host.addEventListener('keydown', this._onKey, true);
  }

  /**
   * Remove the inserted cell `cellId` of `panel` (inserted just now, as one undo step).
   */
  static forCell(panel: NotebookPanel, cellId: string): InsertionUndo {
    const manager = undoManager(panel);
    manager?.stopCapturing();
    const depth = manager?.undoStack.length ?? -1;
    const shared = () => panel.content.model?.sharedModel;
    const index = () =>
      shared()?.cells.findIndex(cell => cell.getId() === cellId) ?? -1;
    return new InsertionUndo(
      panel.node,
      () => {
        const model = shared();
        if (!model || index() === -1) {
          return false;
        }
        // our insertion is the notebook's last undo step: undo it (Redo brings it back)
        if (manager && manager.undoStack.length === depth && depth > 0) {
          model.undo();
        }
        const at = index();
        if (at !== -1) {
          model.transact(() => model.deleteCell(at));
        }
        return true;
      },
      () => index() !== -1
    );
  }

  /**
   * Remove `text`, inserted just now at `start` of `shared`, if it is still there.
   */
  static forText(
    host: HTMLElement,
    shared: ISharedText,
    start: number,
    text: string
  ): InsertionUndo {
    const anchor = new TextAnchor(shared, start, start + text.length);
    const there = () =>
      !anchor.isDisposed &&
      anchor.shared.getSource().slice(anchor.start, anchor.end) === text;
    const undo = new InsertionUndo(
      host,
      () => {
        if (!there()) {
          return false;
        }
        anchor.shared.updateSource(anchor.start, anchor.end, '');
        return true;
      },
      there
    );
    undo._anchor = anchor;
    return undo;
  }

  /**
   * Whether Ctrl+Z would still undo the insertion.
   */
  get armed(): boolean {
    return this._armed;
  }

  /**
   * Whether the insertion can still be removed.
   */
  get available(): boolean {
    return !this._disposed && this._stillThere();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /**
   * Remove the insertion now.
   *
   * @returns whether something was removed
   */
  undo(): boolean {
    if (this._disposed) {
      return false;
    }
    const removed = this._remove();
    this.dispose();
    return removed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._disarm();
    this._anchor?.dispose();
  }

  private _disarm(): void {
    if (this._armed) {
      this._armed = false;
      this._host.removeEventListener('keydown', this._onKey, true);
    }
  }

  private _onKey = (event: KeyboardEvent): void => {
    if (isModifier(event)) {
      return;
    }
    if (isUndoKey(event) && this.available) {
      event.preventDefault();
      event.stopPropagation();
      this.undo();
      return;
    }
    // any other key: the user moved on, their own undo history is theirs again
    this._disarm();
  };

  private _anchor: TextAnchor | null = null;
  private _armed = true;
  private _disposed = false;
}
