/**
 * The GALACTICA service shared by the sidebar, the inline completer and the commands.
 */
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Token } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { IStreamCallbacks, loadModel, runTask, unloadModel } from './api';
import { IGalacticaSettings, readSettings } from './settings';
import { StatusModel } from './status';
import {
  ILoadModelRequest,
  IModelStatus,
  ITaskRequest,
  ITaskResults,
  TaskName
} from './tokens';

/**
 * The GALACTICA service token.
 */
export const IGalactica = new Token<IGalactica>(
  'galactica-ext:IGalactica',
  'The GALACTICA model: its status, the settings and the tasks.'
);

/**
 * The GALACTICA service.
 */
export interface IGalactica {
  /**
   * The model status, kept fresh from the server.
   */
  readonly status: StatusModel;
  /**
   * The current settings.
   */
  readonly settings: IGalacticaSettings;
  /**
   * Emitted when the settings change.
   */
  readonly settingsChanged: ISignal<IGalactica, IGalacticaSettings>;
  /**
   * Load (or switch) the model.
   */
  load(request: ILoadModelRequest): Promise<IModelStatus>;
  /**
   * Unload the model.
   */
  unload(): Promise<IModelStatus>;
  /**
   * Run a task, streaming its tokens.
   */
  run<K extends TaskName>(
    task: K,
    request: ITaskRequest,
    callbacks?: IStreamCallbacks
  ): Promise<ITaskResults[K]>;
}

/**
 * The implementation of {@link IGalactica} over the server extension.
 */
export class GalacticaService implements IGalactica {
  /**
   * Create the service; call {@link GalacticaService.connectSettings} once settings load.
   */
  constructor(private readonly _serverSettings: ServerConnection.ISettings) {
    this.status = new StatusModel(_serverSettings);
  }

  readonly status: StatusModel;

  get settings(): IGalacticaSettings {
    return this._settings;
  }

  get settingsChanged(): ISignal<this, IGalacticaSettings> {
    return this._settingsChanged;
  }

  /**
   * Follow the extension's settings in the registry.
   */
  connectSettings(settings: ISettingRegistry.ISettings): void {
    const update = () => {
      this._settings = readSettings(settings.composite as any);
      this._settingsChanged.emit(this._settings);
    };
    settings.changed.connect(update);
    update();
  }

  async load(request: ILoadModelRequest): Promise<IModelStatus> {
    const status = await loadModel(request, this._serverSettings);
    this.status.update(status);
    void this.status.refresh();
    return status;
  }

  async unload(): Promise<IModelStatus> {
    const status = await unloadModel(this._serverSettings);
    this.status.update(status);
    return status;
  }

  run<K extends TaskName>(
    task: K,
    request: ITaskRequest,
    callbacks: IStreamCallbacks = {}
  ): Promise<ITaskResults[K]> {
    return runTask(task, request, callbacks, this._serverSettings);
  }

  private _settings: IGalacticaSettings = readSettings(null);
  private _settingsChanged = new Signal<this, IGalacticaSettings>(this);
}
