/**
 * Positions that follow a text's edits: where a result goes once a long generation ends,
 * even if the user edited the text (or moved the cell) meanwhile.
 */
import type { Delta, ISharedText, SourceChange } from '@jupyter/ydoc';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

/**
 * Map an offset of a text through one change (a Yjs text delta): text inserted at the
 * offset itself goes after it, text deleted around it pulls it to the deletion's start.
 */
export function mapOffset(offset: number, delta: Delta<string>): number {
  let index = 0; // position in the text before the change
  let result = offset;
  for (const op of delta) {
    if (index > offset) {
      break;
    }
    if (op.retain !== undefined) {
      index += op.retain;
    } else if (op.insert !== undefined) {
      if (index < offset) {
        result += op.insert.length;
      }
    } else if (op.delete !== undefined) {
      const end = index + op.delete;
      result -= Math.max(0, Math.min(end, offset) - index);
      index = end;
    }
  }
  return result;
}

/**
 * A range of a shared text (a cell's source or a file) kept up to date through its edits.
 */
export class TextAnchor implements IDisposable {
  /**
   * Track `[start, end)` of `shared`.
   */
  constructor(shared: ISharedText, start: number, end: number) {
    this._start = start;
    this._end = end;
    this._bind(shared);
  }

  /**
   * The text the range is in.
   */
  get shared(): ISharedText {
    return this._shared!;
  }

  /**
   * The range's start now.
   */
  get start(): number {
    return this._start;
  }

  /**
   * The range's end now.
   */
  get end(): number {
    return this._end;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /**
   * Follow another shared object with the same text (a cell re-created by a move).
   */
  rebind(shared: ISharedText): void {
    if (shared !== this._shared && !this._disposed) {
      this._shared?.changed.disconnect(this._onChange, this);
      this._bind(shared);
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._shared?.changed.disconnect(this._onChange, this);
  }

  private _bind(shared: ISharedText): void {
    this._shared = shared;
    shared.changed.connect(this._onChange, this);
    const length = shared.getSource().length;
    this._start = Math.min(this._start, length);
    this._end = Math.min(Math.max(this._end, this._start), length);
  }

  private _onChange(_: ISharedText, change: SourceChange): void {
    if (change.sourceChange) {
      this._start = mapOffset(this._start, change.sourceChange);
      this._end = Math.max(
        this._start,
        mapOffset(this._end, change.sourceChange)
      );
    }
  }

  private _disposed = false;
  private _end: number;
  private _shared: ISharedText | null = null;
  private _start: number;
}

/**
 * A range in a notebook cell, found again by the cell's id when the cell moves.
 */
export class CellAnchor extends TextAnchor {
  /**
   * Track `[start, end)` of the cell with id `cellId` in `notebook`.
   */
  constructor(
    readonly notebook: NotebookPanel,
    readonly cellId: string,
    shared: ISharedText,
    start: number,
    end: number
  ) {
    super(shared, start, end);
    notebook.model?.sharedModel.changed.connect(this._onCells, this);
  }

  /**
   * The cell's index now, or -1 when it was deleted.
   */
  get index(): number {
    const cells = this.notebook.model?.sharedModel.cells ?? [];
    return cells.findIndex(cell => cell.getId() === this.cellId);
  }

  dispose(): void {
    this.notebook.model?.sharedModel.changed.disconnect(this._onCells, this);
    super.dispose();
  }

  private _onCells(): void {
    const cells = this.notebook.model?.sharedModel.cells ?? [];
    const cell = cells.find(c => c.getId() === this.cellId);
    if (cell) {
      this.rebind(cell);
    }
  }
}
