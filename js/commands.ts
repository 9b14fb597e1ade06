/**
 * Notebook commands: Summarise cell, Equation from selection, Cite here.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { citeHere, equationFromSelection, summariseCell } from './actions';
import { addLibraryCommands, citeHereAction } from './citations/commands';
import { getEditorContext } from './editor';
import { trans } from './i18n';
import { galacticaIcon } from './icons';
import { lastModel } from './progress';
import { IGalactica } from './service';

/**
 * The command ids.
 */
export namespace CommandIDs {
  export const summarise = 'galactica:summarise-cell';
  export const equation = 'galactica:equation-from-selection';
  export const cite = 'galactica:cite-here';
  export const showPanel = 'galactica:show-panel';
  export const load = 'galactica:load-model';
  export const unload = 'galactica:unload-model';
}

/**
 * The commands take no arguments: they act on the current notebook or editor.
 */
export const NO_ARGS = {
  args: { type: 'object' as const, properties: {} }
};

/**
 * Add the commands (and their palette entries).
 */
export function addCommands(
  app: JupyterFrontEnd,
  galactica: IGalactica,
  currentWidget: () => Widget | null,
  palette: ICommandPalette | null
): void {
  const { commands } = app;
  const hasEditor = () => getEditorContext(currentWidget()) !== null;

  /** A command that runs one GALACTICA action on the current editor. */
  const addEditorCommand = (
    id: string,
    label: string,
    caption: string,
    action: (
      galactica: IGalactica,
      context: NonNullable<ReturnType<typeof getEditorContext>>
    ) => Promise<unknown>
  ) =>
    commands.addCommand(id, {
      label,
      caption,
      icon: galacticaIcon,
      isEnabled: hasEditor,
      describedBy: NO_ARGS,
      execute: async () => {
        const context = getEditorContext(currentWidget());
        return context ? action(galactica, context) : false;
      }
    });

  addEditorCommand(
    CommandIDs.summarise,
    trans().__('Summarise Cell'),
    trans().__(
      'Insert a TL;DR markdown cell below the active cell (GALACTICA); the cell is not changed'
    ),
    summariseCell
  );
  addEditorCommand(
    CommandIDs.equation,
    trans().__('Equation from Selection'),
    trans().__(
      'Write the selected description (or the current line) as LaTeX, inserted as $$...$$ after it (GALACTICA)'
    ),
    equationFromSelection
  );
  addEditorCommand(
    CommandIDs.cite,
    trans().__('Cite Here'),
    trans().__(
      'Suggest references for the text before the cursor, insert the chosen one and update the References cell (GALACTICA)'
    ),
    citeHereAction(currentWidget, citeHere)
  );
  addLibraryCommands(app, galactica, currentWidget, palette);

  commands.addCommand(CommandIDs.load, {
    label: trans().__('Load the GALACTICA Model'),
    caption: trans().__(
      'Load the model the server was last asked for (the sidebar picks another)'
    ),
    describedBy: NO_ARGS,
    execute: () => galactica.load(lastModel(galactica))
  });
  commands.addCommand(CommandIDs.unload, {
    label: trans().__('Unload the GALACTICA Model'),
    caption: trans().__(
      'Free the memory the model takes; nothing loads it again until you do'
    ),
    describedBy: NO_ARGS,
    execute: () => galactica.unload()
  });

  if (palette) {
    const category = trans().__('GALACTICA');
    for (const command of [
      CommandIDs.summarise,
      CommandIDs.equation,
      CommandIDs.cite,
      CommandIDs.showPanel,
      CommandIDs.load,
      CommandIDs.unload
    ]) {
      palette.addItem({ command, category });
    }
  }
}
