/**
 * The GALACTICA sidebar: the model's status and picker, and a task area over the active
 * cell, and the science prompt library. Its parts live beside this module: status.tsx,
 * picker.tsx, taskArea.tsx (with results.tsx, citations.tsx and the useTask hook),
 * prompts.tsx (with promptResult.tsx), and runView.tsx, what every run shows.
 */
import { ILatexTypesetter } from '@jupyterlab/rendermime';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { galacticaIcon } from '../icons';
import { IGalactica } from '../service';
import { ModelPicker } from './picker';
import { PromptLibrary } from './prompts';
import { ILoadFailure, StatusView } from './status';
import { TaskArea } from './taskArea';

export { formatBytes, StatusView } from './status';
export { ModelPicker, pickerChoice, SIZES } from './picker';
export { TaskArea } from './taskArea';

/**
 * The status block and the model picker, which share the last refused load.
 */
export function ModelSection(props: {
  galactica: IGalactica;
  trans: TranslationBundle;
}): JSX.Element {
  const { galactica, trans } = props;
  const [failure, setFailure] = React.useState<ILoadFailure | null>(null);
  const status = galactica.status;
  return (
    <UseSignal signal={status.changed}>
      {() => (
        <>
          <StatusView
            status={status.status}
            error={status.error}
            failure={failure}
            trans={trans}
          />
          <ModelPicker
            galactica={galactica}
            status={status.status}
            failure={failure}
            onFailure={setFailure}
            trans={trans}
          />
        </>
      )}
    </UseSignal>
  );
}

/**
 * The GALACTICA panel of the left sidebar.
 */
export class GalacticaPanel extends ReactWidget {
  /**
   * Create the panel.
   */
  constructor(options: GalacticaPanel.IOptions) {
    super();
    this.galactica = options.galactica;
    this._currentWidget = options.currentWidget;
    this._typesetter = options.typesetter ?? null;
    this._trans = (options.translator ?? nullTranslator).load('galactica_ext');
    this.id = 'galactica-ext-sidebar';
    this.addClass('jp-galactica-panel');
    this.title.icon = galacticaIcon;
    this.title.caption = this._trans.__('GALACTICA');
  }

  /**
   * The GALACTICA service the panel shows and drives.
   */
  readonly galactica: IGalactica;

  protected render(): JSX.Element {
    const trans = this._trans;
    return (
      <div className="jp-galactica-body">
        <header className="jp-galactica-header">{trans.__('GALACTICA')}</header>
        <ModelSection galactica={this.galactica} trans={trans} />
        <TaskArea
          galactica={this.galactica}
          currentWidget={this._currentWidget}
          typesetter={this._typesetter}
          trans={trans}
        />
        <PromptLibrary
          galactica={this.galactica}
          currentWidget={this._currentWidget}
          trans={trans}
        />
      </div>
    );
  }

  private readonly _currentWidget: () => Widget | null;
  private readonly _typesetter: ILatexTypesetter | null;
  private readonly _trans: TranslationBundle;
}

/**
 * The panel's statics.
 */
export namespace GalacticaPanel {
  /**
   * What the panel needs.
   */
  export interface IOptions {
    /**
     * The GALACTICA service.
     */
    galactica: IGalactica;
    /**
     * The main area's current widget (where tasks apply).
     */
    currentWidget: () => Widget | null;
    /**
     * The app's LaTeX typesetter, for equation previews.
     */
    typesetter?: ILatexTypesetter | null;
    /**
     * The app's translator (strings in the `galactica_ext` domain).
     */
    translator?: ITranslator | null;
  }
}
