/**
 * Commands of library citations: Cite here from the library, export the cited entries as a
 * `.bib`, bring the References cell up to date.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { IEditorContext } from '../editor';
import { trans } from '../i18n';
import { galacticaIcon } from '../icons';
import { cellInfos } from '../notebook';
import { IGalactica } from '../service';
import {
  bibName,
  exportBib,
  IExportResult,
  isExists,
  notebookCitedKeys
} from './bibliography';
import {
  citeHereFromLibrary,
  documentPath,
  updateBibliography
} from './citeHere';

/**
 * The command ids.
 */
export namespace LibraryCommandIDs {
  export const exportBib = 'galactica:export-bibliography';
  export const updateReferences = 'galactica:update-references';
}

/**
 * The commands take no arguments.
 */
const NO_ARGS = {
  args: { type: 'object' as const, properties: {} }
};

/**
 * "Cite here" for the current widget: from its library when it has one, else `fallback`.
 */
export function citeHereAction(
  currentWidget: () => Widget | null,
  fallback: (galactica: IGalactica, context: IEditorContext) => Promise<boolean>
): (galactica: IGalactica, context: IEditorContext) => Promise<boolean> {
  return (galactica, context) =>
    citeHereFromLibrary(
      galactica,
      context,
      documentPath(currentWidget()),
      fallback
    );
}

/**
 * Export the entries a notebook cites as a `.bib` next to it; an existing file is replaced
 * only when the user says so.
 *
 * @returns what was written, or null (nothing cited, declined, or an error: a notification
 *   says which)
 */
export async function exportCitedEntries(
  panel: NotebookPanel
): Promise<IExportResult | null> {
  const path = panel.context.path;
  const keys = notebookCitedKeys(cellInfos(panel));
  if (keys.length === 0) {
    Notification.warning(
      trans().__(
        'The notebook cites no entry: cite with [@key] (or the MyST or LaTeX form) first.'
      ),
      { autoClose: 5000 }
    );
    return null;
  }
  let result: IExportResult;
  try {
    try {
      result = await exportBib(path, keys);
    } catch (error) {
      if (!isExists(error)) {
        throw error;
      }
      const name = bibName(path);
      const answer = await showDialog({
        title: trans().__('Replace %1?', name),
        body: trans().__(
          '%1 already exists next to the notebook. Replace it with the %2 cited entries?',
          name,
          keys.length
        ),
        buttons: [
          Dialog.cancelButton(),
          Dialog.warnButton({ label: trans().__('Replace') })
        ]
      });
      if (!answer.button.accept) {
        return null;
      }
      result = await exportBib(path, keys, { overwrite: true });
    }
  } catch (error) {
    Notification.error(
      trans().__('Export failed: %1', (error as Error).message),
      { autoClose: false }
    );
    return null;
  }
  const missing = result.missing.length
    ? ' ' +
      trans().__(
        'Not in the library (left out): %1.',
        result.missing.join(', ')
      )
    : '';
  Notification.success(
    trans().__(
      '%1 entries written to %2.',
      result.written.length,
      result.path
    ) + missing,
    { autoClose: 5000 }
  );
  return result;
}

/**
 * Add the library commands (and their palette entries).
 */
export function addLibraryCommands(
  app: JupyterFrontEnd,
  galactica: IGalactica,
  currentWidget: () => Widget | null,
  palette: ICommandPalette | null
): void {
  const notebook = () => {
    const widget = currentWidget();
    return widget instanceof NotebookPanel ? widget : null;
  };
  app.commands.addCommand(LibraryCommandIDs.exportBib, {
    label: trans().__('Export Cited Entries as .bib'),
    caption: trans().__(
      'Write the library entries the notebook cites to a .bib named after it, next to it (asks before replacing a file)'
    ),
    icon: galacticaIcon,
    isEnabled: () => notebook() !== null,
    describedBy: NO_ARGS,
    execute: async () => {
      const panel = notebook();
      return panel ? exportCitedEntries(panel) : null;
    }
  });
  app.commands.addCommand(LibraryCommandIDs.updateReferences, {
    label: trans().__('Update the References Cell from the Library'),
    caption: trans().__(
      'Format the library entries the notebook cites (CSL) into its References cell'
    ),
    icon: galacticaIcon,
    isEnabled: () => notebook() !== null,
    describedBy: NO_ARGS,
    execute: async () => {
      const panel = notebook();
      return panel ? updateBibliography(galactica, panel) : false;
    }
  });
  if (palette) {
    const category = trans().__('GALACTICA');
    for (const command of [
      LibraryCommandIDs.exportBib,
      LibraryCommandIDs.updateReferences
    ]) {
      palette.addItem({ command, category });
    }
  }
}
