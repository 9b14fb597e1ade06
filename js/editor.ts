/**
 * Where the user writes: the active cell or file editor, its text, cursor and selection.
 */
import type { ISharedText } from '@jupyter/ydoc';
import { Cell } from '@jupyterlab/cells';
import { CodeEditor } from '@jupyterlab/codeeditor';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { FileEditor } from '@jupyterlab/fileeditor';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { tailContext } from './completer/triggers';

/**
 * Where the text being written lives.
 */
export type EditorKind =
  'markdown-cell' | 'code-cell' | 'raw-cell' | 'markdown-file' | 'file';

/**
 * A snapshot of the active editor.
 */
export interface IEditorContext {
  /**
   * The editor.
   */
  editor: CodeEditor.IEditor;
  /**
   * What the editor holds.
   */
  kind: EditorKind;
  /**
   * The notebook, when the editor is a cell's.
   */
  notebook: NotebookPanel | null;
  /**
   * The cell, when the editor is a cell's.
   */
  cell: Cell | null;
  /**
   * The cell's id, when the editor is a cell's.
   */
  cellId: string | null;
  /**
   * The shared text the editor shows (the cell's source or the file).
   */
  shared: ISharedText;
  /**
   * Whether `start` and `end` are a tracked request position (results are written there,
   * into `shared`, and the user's cursor is left alone) rather than the cursor.
   */
  tracked?: boolean;
  /**
   * The editor's whole text.
   */
  text: string;
  /**
   * Offsets of the selection (equal when nothing is selected).
   */
  start: number;
  end: number;
}

/**
 * The markdown file extensions.
 */
const MARKDOWN_FILE = /\.(md|markdown|mdown|mkd|qmd|rmd)$/i;

/**
 * What kind of editor a widget's active editor is.
 */
export function editorKind(widget: Widget | null): EditorKind | null {
  if (widget instanceof NotebookPanel) {
    const type = widget.content.activeCell?.model.type;
    return type === 'markdown'
      ? 'markdown-cell'
      : type === 'code'
        ? 'code-cell'
        : type === 'raw'
          ? 'raw-cell'
          : null;
  }
  const doc = widget as IDocumentWidget | null;
  if (doc?.content instanceof FileEditor) {
    return MARKDOWN_FILE.test(doc.context.path) ? 'markdown-file' : 'file';
  }
  return null;
}

/**
 * The active editor of a notebook or file editor widget.
 */
export function getEditorContext(widget: Widget | null): IEditorContext | null {
  const kind = editorKind(widget);
  if (!kind) {
    return null;
  }
  let editor: CodeEditor.IEditor | null | undefined = null;
  let notebook: NotebookPanel | null = null;
  let cell: Cell | null = null;
  if (widget instanceof NotebookPanel) {
    notebook = widget;
    cell = widget.content.activeCell;
    editor = cell?.editor;
  } else {
    editor = ((widget as IDocumentWidget).content as FileEditor).editor;
  }
  if (!editor) {
    return null;
  }
  return {
    editor,
    kind,
    notebook,
    cell,
    cellId: cell?.model.sharedModel.getId() ?? null,
    shared: editor.model.sharedModel,
    ...textAndSelection(editor)
  };
}

/**
 * The selected text, or '' when nothing is selected.
 */
export function selectedText(context: IEditorContext): string {
  return context.text.slice(context.start, context.end);
}

/**
 * The markdown of the notebook's cells above the active one, newest last, at most
 * `maxChars` characters: the context a prompt continues.
 */
export function textAbove(notebook: NotebookPanel, maxChars: number): string {
  const cells = notebook.content.widgets;
  const active = notebook.content.activeCellIndex;
  const parts: string[] = [];
  let size = 0;
  for (let i = active - 1; i >= 0 && size < maxChars; i--) {
    const model = cells[i].model;
    if (model.type !== 'markdown') {
      continue;
    }
    const source = model.sharedModel.getSource();
    parts.unshift(source);
    size += source.length + 2;
  }
  return parts.join('\n\n');
}

/**
 * The text before the cursor (the selection's end), with the cells above it in a notebook.
 */
export function textBeforeCursor(
  context: IEditorContext,
  maxChars: number
): string {
  const here = context.text.slice(0, context.end);
  if (!context.notebook || context.kind !== 'markdown-cell') {
    return tailContext(here, maxChars);
  }
  const above = textAbove(context.notebook, maxChars - here.length);
  return tailContext(above ? `${above}\n\n${here}` : here, maxChars);
}

/**
 * Replace the text between two offsets of an editor and put the cursor after it.
 */
export function insertText(
  editor: CodeEditor.IEditor,
  start: number,
  end: number,
  text: string
): void {
  editor.model.sharedModel.updateSource(start, end, text);
  editor.setCursorPosition(editor.getPositionAt(start + text.length)!);
}

/**
 * Replace the text between two offsets of a shared text, leaving the user's cursor alone
 * (a result that arrives while the user works elsewhere).
 */
export function insertShared(
  shared: ISharedText,
  start: number,
  end: number,
  text: string
): void {
  shared.updateSource(start, end, text);
}

/**
 * The same editor's context now (its text and selection may have changed meanwhile).
 */
export function refreshContext(context: IEditorContext): IEditorContext {
  return { ...context, ...textAndSelection(context.editor) };
}

/**
 * An editor's text and its selection as ordered offsets.
 */
function textAndSelection(editor: CodeEditor.IEditor): {
  text: string;
  start: number;
  end: number;
} {
  const text = editor.model.sharedModel.getSource();
  const selection = editor.getSelection();
  const from = editor.getOffsetAt(selection.start);
  const to = editor.getOffsetAt(selection.end);
  return { text, start: Math.min(from, to), end: Math.max(from, to) };
}
