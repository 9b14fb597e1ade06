/**
 * What the notebook commands and the sidebar do with a task's result.
 */
import { Notification } from '@jupyterlab/apputils';
import { CellAnchor, TextAnchor } from './anchor';
import { chooseReference } from './choose';
import {
  IEditorContext,
  insertShared,
  insertText,
  selectedText,
  textBeforeCursor
} from './editor';
import { trans } from './i18n';
import { citeInNotebook, insertMarkdownBelow } from './notebook';
import { checkModel, loadAction } from './progress';
import { formatCitation, IReference, parseReference } from './references';
import { IGalactica } from './service';
import { IReferenceSuggestion, ITaskResults, TaskName } from './tokens';
import { InsertionUndo } from './undo';

export { chooseReference } from './choose';

/**
 * A task's result and the notification that reported its progress.
 */
export interface ITaskOutcome<K extends TaskName> {
  result: ITaskResults[K];
  /**
   * The notification's id, for {@link reportDone}.
   */
  notification: string;
}

/**
 * Run a task with an in-progress notification that shows the streamed text and a Stop
 * button; errors become an error notification (and `null`). The caller reports the outcome
 * with {@link reportDone}.
 */
export async function runWithProgress<K extends TaskName>(
  galactica: IGalactica,
  task: K,
  text: string,
  title: string,
  options: { max_tokens?: number; n?: number; temperature?: number } = {}
): Promise<ITaskOutcome<K> | null> {
  const controller = new AbortController();
  const id = Notification.emit(title, 'in-progress', {
    autoClose: false,
    actions: [
      {
        label: trans().__('Stop'),
        caption: trans().__('Stop generating'),
        callback: () => controller.abort()
      }
    ]
  });
  let streamed = '';
  const show = (message: string, progress?: number) =>
    Notification.update({
      id,
      message,
      type: 'in-progress',
      autoClose: false,
      progress
    });
  try {
    const result = await galactica.run(
      task,
      { text, ...options },
      {
        signal: controller.signal,
        onToken: (token, index) => {
          if (index === 0) {
            streamed += token;
            show(`${title}\n${streamed.slice(-160)}`);
          }
        },
        onStatus: status =>
          show(
            `${title}: ${status.state} ${status.model}`,
            status.progress?.fraction
          )
      }
    );
    return { result, notification: id };
  } catch (error) {
    if ((error as Error).name === 'AbortError') {
      Notification.update({
        id,
        message: trans().__('%1: stopped', title),
        type: 'info',
        autoClose: 2000,
        actions: []
      });
      return null;
    }
    const notReady = !galactica.status.ready;
    Notification.update({
      id,
      message: trans().__('%1 failed: %2', title, (error as Error).message),
      type: 'error',
      autoClose: false,
      actions: notReady ? [loadAction(galactica)] : []
    });
    return null;
  }
}

/**
 * Turn a task's notification into its outcome: what was done, with an Undo action when
 * `undo` is given (the insertion stays undoable by Ctrl+Z until the user presses another
 * key, see {@link InsertionUndo}).
 */
export function reportDone(
  id: string,
  message: string,
  undo: InsertionUndo | null = null,
  truncated = false
): void {
  const text = truncated
    ? trans().__(
        '%1 (the start of the text was cut to fit the context)',
        message
      )
    : message;
  Notification.update({
    id,
    message: text,
    type: 'success',
    autoClose: undo ? 10000 : 3000,
    actions: undo
      ? [
          {
            label: trans().__('Undo'),
            caption: trans().__('Remove what GALACTICA inserted'),
            callback: () => {
              undo.undo();
            }
          }
        ]
      : []
  });
}

/**
 * Where a command's result goes: the position it was asked for, followed through the
 * user's edits (and the cell's moves) until the result arrives.
 */
export function trackContext(context: IEditorContext): TextAnchor {
  if (context.notebook && context.cellId) {
    return new CellAnchor(
      context.notebook,
      context.cellId,
      context.shared,
      context.start,
      context.end
    );
  }
  return new TextAnchor(context.shared, context.start, context.end);
}

/**
 * The context of a tracked position now, or `null` when its cell was deleted.
 */
export function anchoredContext(
  context: IEditorContext,
  anchor: TextAnchor
): IEditorContext | null {
  if (anchor instanceof CellAnchor && anchor.index === -1) {
    return null;
  }
  return {
    ...context,
    shared: anchor.shared,
    text: anchor.shared.getSource(),
    start: anchor.start,
    end: anchor.end,
    tracked: true
  };
}

/**
 * The element whose keys an insertion's undo watches: the notebook, or the file's editor.
 */
function undoHost(context: IEditorContext): HTMLElement {
  return context.notebook?.node ?? context.editor.host;
}

/**
 * Write `text` over `[start, end)` of the context's text: at the tracked position without
 * moving the user's cursor, or at the cursor (which then follows the text).
 *
 * @returns the undo of the insertion
 */
function write(
  context: IEditorContext,
  start: number,
  end: number,
  text: string
): InsertionUndo {
  if (context.tracked) {
    insertShared(context.shared, start, end, text);
  } else {
    insertText(context.editor, start, end, text);
  }
  return InsertionUndo.forText(undoHost(context), context.shared, start, text);
}

/**
 * The markdown of a TL;DR cell.
 */
export function tldrMarkdown(summary: string): string {
  return `**TL;DR:** ${summary.trim()}`;
}

/**
 * The markdown of a display equation.
 */
export function equationMarkdown(latex: string): string {
  return `$$\n${latex.trim()}\n$$`;
}

/**
 * The index of the context's cell now (it may have moved), or -1 when it was deleted.
 */
function cellIndex(context: IEditorContext): number {
  const cells = context.notebook?.content.model?.sharedModel.cells ?? [];
  return cells.findIndex(cell => cell.getId() === context.cellId);
}

/**
 * Insert a TL;DR markdown cell below the context's cell (the cell itself is never touched),
 * or the TL;DR at the end of a file, as one undo step.
 *
 * @returns the undo of the insertion
 */
export function insertSummary(
  context: IEditorContext,
  summary: string
): InsertionUndo {
  if (context.notebook && context.cellId) {
    const index = cellIndex(context);
    const cells = context.notebook.content.model?.sharedModel.cells ?? [];
    const id = insertMarkdownBelow(
      context.notebook,
      index === -1 ? cells.length - 1 : index,
      tldrMarkdown(summary),
      { galactica: { tldr: true } }
    );
    return InsertionUndo.forCell(context.notebook, id);
  }
  const end = context.shared.getSource().length;
  return write(
    { ...context, tracked: true },
    end,
    end,
    `\n\n${tldrMarkdown(summary)}\n`
  );
}

/**
 * Insert a text as a markdown cell below (notebook) or after the selection (file).
 *
 * @returns the undo of the insertion
 */
export function insertBelow(
  context: IEditorContext,
  text: string
): InsertionUndo {
  if (context.notebook && context.cellId) {
    const index = cellIndex(context);
    const cells = context.notebook.content.model?.sharedModel.cells ?? [];
    const id = insertMarkdownBelow(
      context.notebook,
      index === -1 ? cells.length - 1 : index,
      text.trim()
    );
    return InsertionUndo.forCell(context.notebook, id);
  }
  return write(context, context.end, context.end, `\n\n${text.trim()}\n`);
}

/**
 * Insert `$$ latex $$` after the selection (or the cursor) on lines of its own.
 *
 * @returns the undo of the insertion
 */
export function insertEquation(
  context: IEditorContext,
  latex: string
): InsertionUndo {
  const before = context.text.slice(0, context.end);
  const lead = before.length === 0 ? '' : before.endsWith('\n') ? '\n' : '\n\n';
  return write(
    context,
    context.end,
    context.end,
    `${lead}${equationMarkdown(latex)}\n`
  );
}

/**
 * Write a chosen reference over the context's selection; in a notebook, keep the
 * References cell (works numbered in reading order).
 *
 * @returns the work's number in the References list (0 outside notebooks)
 */
export function insertCitation(
  galactica: IGalactica,
  context: IEditorContext,
  suggestion: IReferenceSuggestion | IReference
): number {
  const ref = parseReference(suggestion.text);
  const { citationFormat, referencesHeading } = galactica.settings;
  // a citation follows the word before it after one space
  const before = context.text.slice(0, context.start);
  const space = before.length > 0 && !/[\s([]$/.test(before) ? ' ' : '';
  const cite = (n: number) => space + formatCitation(ref, n, citationFormat);
  if (context.notebook && context.cellId) {
    return citeInNotebook(
      context.notebook,
      context.cellId,
      context.start,
      context.end,
      ref,
      cite,
      referencesHeading
    );
  }
  const text = formatCitation(
    ref,
    0,
    citationFormat === 'numbered' ? 'author-title' : citationFormat
  );
  write(context, context.start, context.end, space + text);
  return 0;
}

/**
 * The text a task works on: the selection, else the cell (or file) text.
 */
export function taskText(context: IEditorContext): string {
  return selectedText(context) || context.text;
}

/**
 * Whether `text` has something to work on; if not, a short warning says what to do.
 */
export function hasText(text: string, whatToDo: string): boolean {
  if (text.trim()) {
    return true;
  }
  Notification.warning(whatToDo, { autoClose: 3000 });
  return false;
}

/**
 * The text a citation is for (before the cursor, as much as the context setting allows),
 * or null after a warning when there is none.
 */
export function textToCite(
  galactica: IGalactica,
  context: IEditorContext
): string | null {
  const text = textBeforeCursor(
    context,
    galactica.settings.inlineCompletion.contextChars
  );
  return hasText(text, trans().__('Write the sentence to cite first.'))
    ? text
    : null;
}

/**
 * Summarise the active cell into a TL;DR cell below it; the notification that says so has
 * an Undo action.
 */
export async function summariseCell(
  galactica: IGalactica,
  context: IEditorContext
): Promise<boolean> {
  const text = taskText(context);
  if (!hasText(text, trans().__('Nothing to summarise: the cell is empty.'))) {
    return false;
  }
  if (!checkModel(galactica)) {
    return false;
  }
  const anchor = trackContext(context);
  try {
    const outcome = await runWithProgress(
      galactica,
      'summarise',
      text,
      trans().__('Summarising'),
      {
        max_tokens: galactica.settings.maxTokens
      }
    );
    if (!outcome) {
      return false;
    }
    const { result, notification } = outcome;
    if (!result.text.trim()) {
      Notification.update({
        id: notification,
        message: trans().__('GALACTICA gave an empty summary.'),
        type: 'warning',
        autoClose: 3000,
        actions: []
      });
      return false;
    }
    const target = anchoredContext(context, anchor) ?? context;
    const undo = insertSummary(target, result.text);
    reportDone(
      notification,
      context.notebook
        ? trans().__('TL;DR inserted below the cell.')
        : trans().__('TL;DR added at the end of the file.'),
      undo,
      result.truncated
    );
    return true;
  } finally {
    anchor.dispose();
  }
}

/**
 * Turn the selection (or the current line) into LaTeX, inserted as `$$...$$` after it (where
 * it is when the equation arrives).
 */
export async function equationFromSelection(
  galactica: IGalactica,
  context: IEditorContext
): Promise<boolean> {
  let description = selectedText(context);
  if (!description.trim()) {
    const lineStart = context.text.lastIndexOf('\n', context.end - 1) + 1;
    let lineEnd = context.text.indexOf('\n', context.end);
    lineEnd = lineEnd === -1 ? context.text.length : lineEnd;
    description = context.text.slice(lineStart, lineEnd);
    context = { ...context, start: lineStart, end: lineEnd };
  }
  if (
    !hasText(
      description,
      trans().__('Select the description of an equation first.')
    )
  ) {
    return false;
  }
  if (!checkModel(galactica)) {
    return false;
  }
  const anchor = trackContext(context);
  try {
    const outcome = await runWithProgress(
      galactica,
      'equation',
      description,
      trans().__('Writing the equation'),
      { max_tokens: galactica.settings.maxTokens }
    );
    if (!outcome) {
      return false;
    }
    const { result, notification } = outcome;
    if (!result.latex.trim()) {
      Notification.update({
        id: notification,
        message: trans().__('GALACTICA gave no equation.'),
        type: 'warning',
        autoClose: 3000,
        actions: []
      });
      return false;
    }
    const target = anchoredContext(context, anchor);
    if (!target) {
      reportGone(notification);
      return false;
    }
    const undo = insertEquation(target, result.latex);
    reportDone(
      notification,
      trans().__('Equation inserted.'),
      undo,
      result.truncated
    );
    return true;
  } finally {
    anchor.dispose();
  }
}

/**
 * The cell a result was for is gone: say so instead of writing elsewhere.
 */
function reportGone(notification: string): void {
  Notification.update({
    id: notification,
    message: trans().__(
      'The cell was deleted while GALACTICA worked: nothing was inserted.'
    ),
    type: 'warning',
    autoClose: 5000,
    actions: []
  });
}

/**
 * Suggest references for the text before the cursor (or the selection's end), let the user
 * choose one and cite it there: at that position even if the user edited meanwhile, and
 * never over a selection made since.
 */
export async function citeHere(
  galactica: IGalactica,
  context: IEditorContext
): Promise<boolean> {
  const text = textToCite(galactica, context);
  if (text === null) {
    return false;
  }
  if (!checkModel(galactica)) {
    return false;
  }
  // the citation goes after the sentence (or the selected claim), replacing nothing
  const anchor = trackContext({ ...context, start: context.end });
  try {
    const outcome = await runWithProgress(
      galactica,
      'cite',
      text,
      trans().__('Finding references'),
      {
        n: galactica.settings.citationCount
      }
    );
    if (!outcome) {
      return false;
    }
    const { result, notification } = outcome;
    Notification.dismiss(notification);
    const chosen = await chooseReference(result.suggestions);
    if (!chosen) {
      return false;
    }
    const target = anchoredContext(context, anchor);
    if (!target) {
      reportGone(Notification.emit('', 'warning'));
      return false;
    }
    insertCitation(galactica, target, chosen);
    return true;
  } finally {
    anchor.dispose();
  }
}
