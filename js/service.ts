/**
 * The GALACTICA service shared by the sidebar, the inline completer and the commands.
 */
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Token } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import {
  citeFromLibrary,
  drawMolecule,
  fillPrompt,
  getPrompts,
  IStreamCallbacks,
  loadModel,
  runPrompt,
  runTask,
  TaskError,
  unloadModel
} from './api';
import { IGalacticaSettings, readSettings } from './settings';
import { StatusModel } from './status';
import {
  ILibraryCiteRequest,
  ILibraryCiteResult,
  ILoadModelRequest,
  IModelStatus,
  IMoleculeDrawing,
  IPromptCatalog,
  IPromptResult,
  IPromptRunRequest,
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
   * Whether an unload the user asked for is under way (no new work starts meanwhile).
   */
  readonly unloading: boolean;
  /**
   * Emitted when the user starts unloading the model: work in flight is dropped.
   */
  readonly unloadStarted: ISignal<IGalactica, void>;
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
  /**
   * Citations from the document's library (`POST /galactica/cite`).
   */
  cite(
    request: ILibraryCiteRequest,
    signal?: AbortSignal
  ): Promise<ILibraryCiteResult>;
  /**
   * The science prompt library's templates.
   */
  prompts(): Promise<IPromptCatalog>;
  /**
   * A template filled with the user's values, for the user to edit before running.
   */
  fillPrompt(name: string, values: Record<string, string>): Promise<string>;
  /**
   * Run a template (the edited prompt, or the values), streaming its tokens.
   */
  runPrompt(
    name: string,
    request: IPromptRunRequest,
    callbacks?: IStreamCallbacks
  ): Promise<IPromptResult>;
  /**
   * RDKit's check and 2D drawing of a SMILES.
   */
  drawMolecule(smiles: string): Promise<IMoleculeDrawing>;
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

  get unloading(): boolean {
    return this._unloading;
  }

  get unloadStarted(): ISignal<this, void> {
    return this._unloadStarted;
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
    this.status.unloadedByUser = false; // the user asked for a model again
    this.status.update(status);
    void this.status.refresh();
    return status;
  }

  async unload(): Promise<IModelStatus> {
    this._unloading = true;
    this._unloadStarted.emit();
    try {
      const status = await unloadModel(this._serverSettings);
      this.status.update(status);
      this.status.unloadedByUser = true; // nothing loads it again until the user does
      return status;
    } finally {
      this._unloading = false;
    }
  }

  run<K extends TaskName>(
    task: K,
    request: ITaskRequest,
    callbacks: IStreamCallbacks = {}
  ): Promise<ITaskResults[K]> {
    const refused = this._unloaded();
    if (refused) {
      return Promise.reject(refused);
    }
    return runTask(task, request, callbacks, this._serverSettings);
  }

  /**
   * The error a generation gets while the model is being unloaded, or while the user has
   * unloaded it on purpose (a request must not start it again), else null.
   */
  private _unloaded(): TaskError | null {
    if (this._unloading) {
      return new TaskError('the GALACTICA model is being unloaded');
    }
    return this.status.unloadedByUser && !this.status.ready
      ? new TaskError(
          'no GALACTICA model is loaded (you unloaded it): load one from the GALACTICA sidebar'
        )
      : null;
  }

  cite(
    request: ILibraryCiteRequest,
    signal?: AbortSignal
  ): Promise<ILibraryCiteResult> {
    const refused = this._unloaded();
    if (refused) {
      return Promise.reject(refused);
    }
    return citeFromLibrary(request, signal, this._serverSettings);
  }

  prompts(): Promise<IPromptCatalog> {
    return getPrompts(this._serverSettings);
  }

  fillPrompt(name: string, values: Record<string, string>): Promise<string> {
    return fillPrompt(name, values, this._serverSettings);
  }

  runPrompt(
    name: string,
    request: IPromptRunRequest,
    callbacks: IStreamCallbacks = {}
  ): Promise<IPromptResult> {
    const refused = this._unloaded();
    if (refused) {
      return Promise.reject(refused);
    }
    return runPrompt(name, request, callbacks, this._serverSettings);
  }

  drawMolecule(smiles: string): Promise<IMoleculeDrawing> {
    return drawMolecule(smiles, this._serverSettings);
  }

  private _settings: IGalacticaSettings = readSettings(null);
  private _settingsChanged = new Signal<this, IGalacticaSettings>(this);
  private _unloading = false;
  private _unloadStarted = new Signal<this, void>(this);
}
