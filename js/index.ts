/**
 * GALACTICA in JupyterLab: the sidebar, inline completion and notebook commands.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { GalacticaPanel } from './panel';
import { StatusModel } from './status';

/**
 * The sidebar plugin: the GALACTICA panel with the model status.
 */
const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'galactica-ext:plugin',
  description: 'The GALACTICA sidebar: model status, loading and tasks.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell,
    restorer: ILayoutRestorer | null
  ) => {
    const statusModel = new StatusModel(app.serviceManager.serverSettings);
    const panel = new GalacticaPanel(statusModel);
    labShell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, panel.id);
  }
};

export default [sidebarPlugin];
