/**
 * GALACTICA in JupyterLab: the sidebar, inline completion and notebook commands.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { ILatexTypesetter } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

// the commands, the completion provider, the sidebar and the load notifier are all
// registered when the extension activates, so their modules are needed at once
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { addCommands, CommandIDs, NO_ARGS } from './commands';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { GalacticaInlineProvider } from './completer/provider';
import { setTranslator, trans } from './i18n';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { GalacticaPanel } from './panel';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { LoadNotifier } from './progress';
import { GalacticaService, IGalactica } from './service';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { GalacticaStatusItem } from './statusbar';

export { IGalactica } from './service';

/**
 * The core plugin: the GALACTICA service, the sidebar and the notebook commands.
 */
const corePlugin: JupyterFrontEndPlugin<IGalactica> = {
  id: 'galactica-ext:plugin',
  description:
    'GALACTICA: the model status, the sidebar and the notebook commands.',
  autoStart: true,
  provides: IGalactica,
  optional: [
    ISettingRegistry,
    ILabShell,
    ILayoutRestorer,
    ILatexTypesetter,
    ICommandPalette,
    ITranslator,
    IStatusBar
  ],
  activate: (
    app: JupyterFrontEnd,
    settingRegistry: ISettingRegistry | null,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    typesetter: ILatexTypesetter | null,
    palette: ICommandPalette | null,
    translator: ITranslator | null,
    statusBar: IStatusBar | null
  ): IGalactica => {
    setTranslator(translator);
    const galactica = new GalacticaService(app.serviceManager.serverSettings);
    new LoadNotifier(galactica.status);
    if (settingRegistry) {
      settingRegistry
        .load(corePlugin.id)
        .then(settings => galactica.connectSettings(settings))
        .catch(reason =>
          console.error('galactica-ext: cannot load the settings.', reason)
        );
    }

    // tasks apply to the main area's current notebook or editor
    const currentWidget = (): Widget | null =>
      labShell?.currentWidget ?? app.shell.currentWidget ?? null;

    const panel = new GalacticaPanel({
      galactica,
      currentWidget,
      typesetter,
      translator
    });
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(CommandIDs.showPanel, {
      label: trans().__('Show the GALACTICA Panel'),
      describedBy: NO_ARGS,
      execute: () => app.shell.activateById(panel.id)
    });
    addCommands(app, galactica, currentWidget, palette);
    statusBar?.registerStatusItem('galactica-ext:status', {
      item: new GalacticaStatusItem(galactica, () =>
        app.shell.activateById(panel.id)
      ),
      align: 'left',
      rank: 900
    });
    return galactica;
  }
};

/**
 * The inline completion provider: ghost text while writing.
 */
const inlineCompleterPlugin: JupyterFrontEndPlugin<void> = {
  id: 'galactica-ext:inline-completer',
  description:
    'GALACTICA ghost text in markdown cells and files: prose, references and LaTeX.',
  autoStart: true,
  requires: [ICompletionProviderManager, IGalactica],
  activate: (
    app: JupyterFrontEnd,
    manager: ICompletionProviderManager,
    galactica: IGalactica
  ): void => {
    manager.registerInlineProvider(new GalacticaInlineProvider(galactica));
  }
};

export default [corePlugin, inlineCompleterPlugin];
