/**
 * "Cite here" grounded in the notebook's library: GALACTICA ranks the library's entries for
 * the text before the cursor, the user picks one, it is written in the notebook's citation
 * format and the References cell is formatted from the cited entries by the server's CSL
 * processor, in one undo step. Free suggestions are given only when the user asks (or the
 * notebook has no library: then the free flow runs): one the library does not hold is
 * marked unverified and written as `[Title, Surname]{.unverified}`.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { anchoredContext, textToCite, trackContext } from '../actions';
import { IEditorContext } from '../editor';
import { trans } from '../i18n';
import { cellInfos, separateUndoStep, writeReferencesCell } from '../notebook';
import { checkModel } from '../progress';
import { IGalactica } from '../service';
import { ILibraryCiteResult, ILibrarySuggestion } from '../tokens';
import {
  formatReferences,
  ICell,
  librarySize,
  notebookCitedKeys,
  planBibliography
} from './bibliography';
import {
  LIBRARY_CITATION_FORMATS,
  LibraryCitationFormat,
  suggestionCitation
} from './insert';

/**
 * The settings of library citations (schema/plugin.json), defaults filled in.
 */
export interface ICitationSettings {
  /**
   * How a library entry is written at the cursor.
   */
  libraryCitationFormat: LibraryCitationFormat;
  /**
   * Whether the References cell is kept from the library (off when MyST or Jupyter Book
   * renders the bibliography itself).
   */
  libraryReferences: boolean;
  /**
   * The CSL style ('' is the server's).
   */
  citationStyle: string;
  /**
   * The References cell's heading.
   */
  referencesHeading: string;
  /**
   * How many suggestions to ask for.
   */
  citationCount: number;
}

/**
 * The library citation settings in the extension's settings.
 */
export function citationSettings(settings: object): ICitationSettings {
  const raw = settings as Partial<Record<keyof ICitationSettings, unknown>>;
  const format = raw.libraryCitationFormat as LibraryCitationFormat;
  return {
    libraryCitationFormat: LIBRARY_CITATION_FORMATS.includes(format)
      ? format
      : 'pandoc',
    libraryReferences: raw.libraryReferences !== false,
    citationStyle:
      typeof raw.citationStyle === 'string' ? raw.citationStyle : '',
    referencesHeading:
      typeof raw.referencesHeading === 'string' && raw.referencesHeading
        ? raw.referencesHeading
        : 'References',
    citationCount: typeof raw.citationCount === 'number' ? raw.citationCount : 3
  };
}

/**
 * The path of the document a widget shows (relative to the Jupyter root), or null.
 */
export function documentPath(widget: Widget | null): string | null {
  if (widget instanceof NotebookPanel) {
    return widget.context.path;
  }
  const path = (widget as IDocumentWidget | null)?.context?.path;
  return typeof path === 'string' && path ? path : null;
}

/**
 * A radio list of library suggestions: badge, key, title, first author, year; an
 * unverified one with a link to search for it.
 */
export class LibraryChoices
  extends Widget
  implements Dialog.IBodyWidget<number>
{
  constructor(result: ILibraryCiteResult) {
    super();
    this.addClass('jp-galactica-choices');
    this.addClass('jp-galactica-library-choices');
    const note = document.createElement('p');
    note.className = 'jp-galactica-note jp-galactica-library-origin';
    const library = result.library;
    note.textContent = result.grounded
      ? trans().__(
          'Ranked by GALACTICA among the %1 entries of your library (%2).',
          library?.size ?? 0,
          library?.sources.join(', ') || library?.origin || ''
        )
      : trans().__(
          "GALACTICA's own suggestions: those your library holds are shown as its entries; the others are unverified and may not exist."
        );
    const list = document.createElement('ul');
    list.setAttribute('role', 'radiogroup');
    list.setAttribute('aria-label', trans().__('Suggested references'));
    result.suggestions.forEach((s, i) => {
      list.append(this._item(s, i));
    });
    this.node.append(note, list);
  }

  getValue(): number {
    return this._chosen;
  }

  private _item(s: ILibrarySuggestion, i: number): HTMLElement {
    const item = document.createElement('li');
    item.className = 'jp-galactica-choice';
    item.dataset.key = s.key ?? '';
    const label = document.createElement('label');
    const radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'galactica-library-reference';
    radio.checked = i === 0;
    radio.addEventListener('change', () => {
      this._chosen = i;
    });
    const span = (className: string, text: string) => {
      const el = document.createElement(className === 'key' ? 'code' : 'span');
      el.className = `jp-galactica-citation-${className}`;
      el.textContent = text;
      return el;
    };
    const badge = document.createElement('span');
    badge.className = s.verified
      ? 'jp-galactica-badge jp-mod-library'
      : 'jp-galactica-badge jp-mod-unverified';
    badge.textContent = s.verified
      ? trans().__('library')
      : trans().__('unverified');
    // one inline block beside the radio, so the parts wrap as a sentence
    const text = document.createElement('span');
    text.className = 'jp-galactica-citation-text';
    text.style.flex = '1 1 0'; // beside the radio, never wrapped below it
    text.append(badge, ' ');
    if (s.key) {
      text.append(span('key', s.key), ' ');
    }
    text.append(span('title', s.title || s.text));
    if (s.author) {
      text.append(span('author', `, ${s.author}`));
    }
    if (s.year) {
      text.append(span('year', ` (${s.year})`));
    }
    label.append(radio, text);
    item.append(label);
    if (!s.verified && s.search) {
      const link = document.createElement('a');
      link.href = s.search;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      link.textContent = trans().__('search for it');
      item.append(link);
    }
    return item;
  }

  private _chosen = 0;
}

/**
 * What the user chose in the dialog.
 */
type Choice = ILibrarySuggestion | 'free' | null;

/**
 * Ask the user to choose a suggestion (or, from a grounded list, to see free ones).
 */
async function choose(result: ILibraryCiteResult): Promise<Choice> {
  const free = Dialog.createButton({
    label: trans().__('Free Suggestions'),
    caption: trans().__(
      "GALACTICA's own suggestions, checked against your library (the others are marked unverified)"
    ),
    displayType: 'default',
    accept: false
  });
  const buttons = [Dialog.cancelButton()];
  if (result.grounded) {
    buttons.push(free);
  }
  if (result.suggestions.length > 0) {
    buttons.push(Dialog.okButton({ label: trans().__('Cite') }));
  }
  const answer = await showDialog({
    title: trans().__('Cite: choose a reference'),
    body: new LibraryChoices(result),
    buttons
  });
  if (answer.button.label === free.label) {
    return 'free';
  }
  if (!answer.button.accept || answer.value === null) {
    return null;
  }
  return result.suggestions[answer.value] ?? null;
}

/**
 * Whether an error is the server's 404 (no library endpoint, or the document is not saved).
 */
function isNotFound(error: unknown): boolean {
  return (
    error instanceof ServerConnection.ResponseError &&
    error.response.status === 404
  );
}

/**
 * Ask the server for suggestions, with an in-progress notification that can stop it.
 *
 * @returns the result, or null when stopped or failed (the notification says why); a 404
 *   is thrown for the caller to fall back
 */
async function askServer(
  galactica: IGalactica,
  text: string,
  path: string,
  grounded: boolean
): Promise<ILibraryCiteResult | null> {
  const controller = new AbortController();
  const title = grounded
    ? trans().__('Ranking your library')
    : trans().__('Finding references');
  const id = Notification.emit(title, 'in-progress', {
    autoClose: false,
    actions: [
      {
        label: trans().__('Stop'),
        callback: () => controller.abort()
      }
    ]
  });
  try {
    const result = await galactica.cite(
      {
        text,
        path,
        grounded,
        n: citationSettings(galactica.settings).citationCount
      },
      controller.signal
    );
    Notification.dismiss(id);
    return result;
  } catch (error) {
    if (isNotFound(error)) {
      Notification.dismiss(id);
      throw error;
    }
    const stopped = (error as Error).name === 'AbortError';
    Notification.update({
      id,
      message: stopped
        ? trans().__('%1: stopped', title)
        : trans().__('%1 failed: %2', title, (error as Error).message),
      type: stopped ? 'info' : 'error',
      autoClose: stopped ? 2000 : false,
      actions: []
    });
    return null;
  }
}

/**
 * The cells of a notebook as they will be once `text` is written at `[start, end)` of the
 * cell `cellId`.
 */
export function cellsAfterInsert(
  cells: readonly ICell[],
  ids: readonly string[],
  cellId: string,
  start: number,
  end: number,
  text: string
): ICell[] {
  return cells.map((cell, i) =>
    ids[i] === cellId
      ? {
          ...cell,
          source: cell.source.slice(0, start) + text + cell.source.slice(end)
        }
      : cell
  );
}

/**
 * Write the References cell (the plan's) in the notebook; inside a transaction when the
 * caller has one.
 */
function applyPlan(
  panel: NotebookPanel,
  plan: ReturnType<typeof planBibliography>
): void {
  if (!plan.unchanged) {
    writeReferencesCell(panel, plan);
  }
}

/**
 * Format the entries the cells cite and plan the References cell; null (and an error
 * notification) when the server cannot format them.
 */
async function planFor(
  galactica: IGalactica,
  path: string,
  cells: readonly ICell[]
): Promise<ReturnType<typeof planBibliography> | null> {
  const settings = citationSettings(galactica.settings);
  const keys = notebookCitedKeys(cells);
  try {
    const formatted =
      keys.length > 0
        ? await formatReferences(path, keys, settings.citationStyle)
        : null;
    const problems = formatted?.problems ?? [];
    if (problems.length > 0) {
      console.warn('galactica-ext: formatting the references:', problems);
    }
    return planBibliography(
      cells,
      formatted?.references ?? [],
      formatted?.style ?? settings.citationStyle,
      settings.referencesHeading
    );
  } catch (error) {
    Notification.error(
      trans().__(
        'The References cell was not updated: %1',
        (error as Error).message
      ),
      { autoClose: 6000 }
    );
    return null;
  }
}

/**
 * Write a chosen suggestion at the context's position; in a notebook, bring the References
 * cell up to date from the library (unless switched off), both in one undo step.
 */
export async function insertLibraryChoice(
  galactica: IGalactica,
  context: IEditorContext,
  path: string,
  suggestion: ILibrarySuggestion,
  position: { readonly start: number; readonly end: number } = context
): Promise<string> {
  const settings = citationSettings(galactica.settings);
  const before = context.text.slice(0, context.start);
  const space = before.length > 0 && !/[\s([]$/.test(before) ? ' ' : '';
  const text =
    space + suggestionCitation(suggestion, settings.libraryCitationFormat);
  const panel = context.notebook;
  let { start, end } = position;
  const moveCursor = () => {
    if (!context.tracked) {
      const at = context.editor.getPositionAt(start + text.length);
      if (at) {
        context.editor.setCursorPosition(at);
      }
    }
  };
  if (!panel?.content.model || !context.cellId) {
    context.shared.updateSource(start, end, text);
    moveCursor();
    return text;
  }
  const shared = panel.content.model.sharedModel;
  let plan: ReturnType<typeof planBibliography> | null = null;
  if (settings.libraryReferences && suggestion.verified) {
    const cells = cellInfos(panel);
    const ids = shared.cells.map(c => c.getId());
    plan = await planFor(
      galactica,
      path,
      cellsAfterInsert(cells, ids, context.cellId, start, end, text)
    );
  }
  // where the citation goes now (the user may have typed while the server formatted)
  ({ start, end } = position);
  const index = shared.cells.findIndex(c => c.getId() === context.cellId);
  if (index === -1) {
    throw new Error('the cell was deleted');
  }
  separateUndoStep(panel);
  shared.transact(() => {
    shared.getCell(index).updateSource(start, end, text);
    if (plan) {
      applyPlan(panel, plan);
    }
  });
  separateUndoStep(panel);
  moveCursor();
  return text;
}

/**
 * Bring the notebook's References cell up to date with what it cites (a command).
 */
export async function updateBibliography(
  galactica: IGalactica,
  panel: NotebookPanel
): Promise<boolean> {
  const plan = await planFor(galactica, panel.context.path, cellInfos(panel));
  if (!plan || !panel.content.model) {
    return false;
  }
  separateUndoStep(panel);
  panel.content.model.sharedModel.transact(() => applyPlan(panel, plan));
  separateUndoStep(panel);
  return true;
}

/**
 * "Cite here" from the document's library: `fallback` (the free flow) runs when the
 * document has no library (or the server has no library endpoint).
 */
export async function citeHereFromLibrary(
  galactica: IGalactica,
  context: IEditorContext,
  path: string | null,
  fallback: (galactica: IGalactica, context: IEditorContext) => Promise<boolean>
): Promise<boolean> {
  if (!path) {
    return fallback(galactica, context);
  }
  const text = textToCite(galactica, context);
  if (text === null) {
    return false;
  }
  // no library (or no way to read one): GALACTICA's free citations, as before
  if (!(await librarySize(path))) {
    return fallback(galactica, context);
  }
  if (!checkModel(galactica)) {
    return false;
  }
  // the citation goes after the sentence (or the selected claim), replacing nothing
  const anchor = trackContext({ ...context, start: context.end });
  try {
    let grounded = true;
    for (;;) {
      let result: ILibraryCiteResult | null;
      try {
        result = await askServer(galactica, text, path, grounded);
      } catch (error) {
        return isNotFound(error) ? fallback(galactica, context) : false;
      }
      if (!result) {
        return false;
      }
      if (!result.library || result.library.size === 0) {
        return fallback(galactica, context);
      }
      const chosen = await choose(result);
      if (chosen === 'free') {
        grounded = false;
        continue;
      }
      if (!chosen) {
        return false;
      }
      const target = anchoredContext(context, anchor);
      if (!target) {
        Notification.warning(
          trans().__(
            'The cell was deleted while GALACTICA worked: nothing was inserted.'
          ),
          { autoClose: 5000 }
        );
        return false;
      }
      await insertLibraryChoice(galactica, target, path, chosen, anchor);
      return true;
    }
  } finally {
    anchor.dispose();
  }
}
