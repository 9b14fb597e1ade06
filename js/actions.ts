/**
 * What the notebook commands and the sidebar do with a task's result.
 */
import { InputDialog, Notification } from '@jupyterlab/apputils';

import {
  IEditorContext,
  insertText,
  refreshContext,
  selectedText,
  textBeforeCursor
} from './editor';
import { citeInNotebook, insertMarkdownBelow } from './notebook';
import { formatCitation, IReference, parseReference } from './references';
import { trans } from './i18n';
import { IGalactica } from './service';
import { IReferenceSuggestion, ITaskResults, TaskName } from './tokens';

/**
 * Run a task with an in-progress notification that shows the streamed text and a Stop
 * button; errors become an error notification (and `null`).
 */
export async function runWithProgress<K extends TaskName>(
  galactica: IGalactica,
  task: K,
  text: string,
  title: string,
  options: { max_tokens?: number; n?: number; temperature?: number } = {}
): Promise<ITaskResults[K] | null> {
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
    Notification.update({
      id,
      message: (result as { truncated?: boolean }).truncated
        ? trans().__(
            '%1: done (the start of the text was cut to fit the context)',
            title
          )
        : trans().__('%1: done', title),
      type: 'success',
      autoClose: 2000,
      actions: []
    });
    return result;
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
    Notification.update({
      id,
      message: trans().__('%1 failed: %2', title, (error as Error).message),
      type: 'error',
      autoClose: false,
      actions: []
    });
    return null;
  }
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
 * Insert a TL;DR markdown cell below the active cell (the cell itself is never touched).
 */
export function insertSummary(context: IEditorContext, summary: string): void {
  if (context.notebook && context.cell) {
    const index = context.notebook.content.widgets.indexOf(context.cell);
    insertMarkdownBelow(context.notebook, index, tldrMarkdown(summary), {
      galactica: { tldr: true }
    });
  } else {
    const end = context.text.length;
    insertText(context.editor, end, end, `\n\n${tldrMarkdown(summary)}\n`);
  }
}

/**
 * Insert a text as a markdown cell below (notebook) or after the selection (file).
 */
export function insertBelow(context: IEditorContext, text: string): void {
  if (context.notebook && context.cell) {
    const index = context.notebook.content.widgets.indexOf(context.cell);
    insertMarkdownBelow(context.notebook, index, text.trim());
  } else {
    insertText(
      context.editor,
      context.end,
      context.end,
      `\n\n${text.trim()}\n`
    );
  }
}

/**
 * Insert `$$ latex $$` after the selection (or the cursor) on lines of its own.
 */
export function insertEquation(context: IEditorContext, latex: string): void {
  const before = context.text.slice(0, context.end);
  const lead = before.length === 0 ? '' : before.endsWith('\n') ? '\n' : '\n\n';
  insertText(
    context.editor,
    context.end,
    context.end,
    `${lead}${equationMarkdown(latex)}\n`
  );
}

/**
 * Write a chosen reference at the cursor; in a notebook, keep the References cell.
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
  const write = (n: number) => space + formatCitation(ref, n, citationFormat);
  if (context.notebook && context.cell) {
    const index = context.notebook.content.widgets.indexOf(context.cell);
    return citeInNotebook(
      context.notebook,
      index,
      context.start,
      context.end,
      ref,
      write,
      referencesHeading
    );
  }
  const text = formatCitation(
    ref,
    0,
    citationFormat === 'numbered' ? 'author-title' : citationFormat
  );
  insertText(context.editor, context.start, context.end, space + text);
  return 0;
}

/**
 * Ask the user to choose one of the suggested references.
 */
export async function chooseReference(
  suggestions: IReferenceSuggestion[]
): Promise<IReferenceSuggestion | null> {
  if (suggestions.length === 0) {
    Notification.warning(
      trans().__('GALACTICA suggested no reference for this text.'),
      {
        autoClose: 4000
      }
    );
    return null;
  }
  const items = suggestions.map((s, i) => `${i + 1}. ${s.text}`);
  const answer = await InputDialog.getItem({
    title: trans().__('Cite: choose a reference'),
    label: trans().__(
      'Suggested by GALACTICA. Citations can be invented, more often for rare works: check that the work exists before you rely on it.'
    ),
    items,
    current: 0,
    okLabel: trans().__('Cite')
  });
  if (!answer.button.accept || answer.value === null) {
    return null;
  }
  return suggestions[items.indexOf(answer.value)] ?? null;
}

/**
 * The text a task works on: the selection, else the cell (or file) text.
 */
export function taskText(context: IEditorContext): string {
  return selectedText(context) || context.text;
}

/**
 * Summarise the active cell into a TL;DR cell below it.
 */
export async function summariseCell(
  galactica: IGalactica,
  context: IEditorContext
): Promise<boolean> {
  const text = taskText(context);
  if (!text.trim()) {
    Notification.warning(
      trans().__('Nothing to summarise: the cell is empty.'),
      {
        autoClose: 3000
      }
    );
    return false;
  }
  const result = await runWithProgress(
    galactica,
    'summarise',
    text,
    trans().__('Summarising'),
    {
      max_tokens: galactica.settings.maxTokens
    }
  );
  if (!result) {
    return false;
  }
  if (!result.text.trim()) {
    Notification.warning(trans().__('GALACTICA gave an empty summary.'), {
      autoClose: 3000
    });
    return false;
  }
  insertSummary(context, result.text);
  return true;
}

/**
 * Turn the selection (or the current line) into LaTeX, inserted as `$$...$$` after it.
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
  if (!description.trim()) {
    Notification.warning(
      trans().__('Select the description of an equation first.'),
      {
        autoClose: 3000
      }
    );
    return false;
  }
  const result = await runWithProgress(
    galactica,
    'equation',
    description,
    trans().__('Writing the equation'),
    { max_tokens: galactica.settings.maxTokens }
  );
  if (!result) {
    return false;
  }
  if (!result.latex.trim()) {
    Notification.warning(trans().__('GALACTICA gave no equation.'), {
      autoClose: 3000
    });
    return false;
  }
  insertEquation(context, result.latex);
  return true;
}

/**
 * Suggest references for the text before the cursor, let the user choose one and cite it.
 */
export async function citeHere(
  galactica: IGalactica,
  context: IEditorContext
): Promise<boolean> {
  const text = textBeforeCursor(
    { ...context, end: context.start },
    galactica.settings.inlineCompletion.contextChars
  );
  if (!text.trim()) {
    Notification.warning(trans().__('Write the sentence to cite first.'), {
      autoClose: 3000
    });
    return false;
  }
  const result = await runWithProgress(
    galactica,
    'cite',
    text,
    trans().__('Finding references'),
    {
      n: galactica.settings.citationCount
    }
  );
  if (!result) {
    return false;
  }
  const chosen = await chooseReference(result.suggestions);
  if (!chosen) {
    return false;
  }
  insertCitation(galactica, refreshContext(context), chosen);
  return true;
}
