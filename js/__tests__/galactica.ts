/**
 * A scripted GALACTICA service for the panel's specs: the test decides what each run
 * streams and how it ends, and every request the panel sends is recorded.
 *
 * It stands in for the server extension's HTTP API (the real one runs in the Galata tests);
 * aborting a run's signal rejects it with an AbortError, as `fetch` does.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import { IStreamCallbacks } from '../api';
import { IGalactica } from '../service';
import { DEFAULT_SETTINGS, IGalacticaSettings } from '../settings';
import { StatusModel } from '../status';
import {
  ILibraryCiteRequest,
  ILibraryCiteResult,
  ILoadModelRequest,
  IMoleculeDrawing,
  IPromptCatalog,
  IPromptResult,
  IPromptRunRequest,
  IModelStatus,
  ITaskRequest,
  ITaskResults,
  TaskName
} from '../tokens';

/**
 * One run the panel started.
 */
export interface IRecordedRun {
  /**
   * The task, or `prompt:NAME` for a template of the prompt library.
   */
  task: string;
  request: ITaskRequest | IPromptRunRequest;
  callbacks: IStreamCallbacks;
  resolve: (result: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * The status of a ready local model.
 */
export const READY: IModelStatus = {
  state: 'ready',
  model: 'facebook/galactica-125m',
  device: 'cpu',
  dtype: 'float32',
  memory_bytes: 250 * 1024 * 1024,
  progress: null,
  error: null,
  backend: 'local',
  url: 'http://127.0.0.1:8765'
};

export class ScriptedGalactica implements IGalactica {
  constructor(settings: Partial<IGalacticaSettings> = {}) {
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    // never polled: disposed before its first tick
    this.status = new StatusModel(
      ServerConnection.makeSettings({ baseUrl: 'http://127.0.0.1:9/' })
    );
    this.status.dispose();
  }

  readonly status: StatusModel;
  readonly settings: IGalacticaSettings;
  readonly settingsChanged: Signal<IGalactica, IGalacticaSettings> = new Signal<
    IGalactica,
    IGalacticaSettings
  >(this);
  readonly unloading = false;
  readonly unloadStarted: Signal<IGalactica, void> = new Signal<
    IGalactica,
    void
  >(this);

  /**
   * The runs started, oldest first.
   */
  readonly runs: IRecordedRun[] = [];
  /**
   * The load and unload requests, oldest first.
   */
  readonly loads: (ILoadModelRequest | 'unload')[] = [];
  /**
   * How the next load or unload ends: the status, or an error to throw.
   */
  nextLoad: IModelStatus | Error = READY;

  load(request: ILoadModelRequest): Promise<IModelStatus> {
    this.loads.push(request);
    return this._answer();
  }

  unload(): Promise<IModelStatus> {
    this.loads.push('unload');
    return this._answer();
  }

  run<K extends TaskName>(
    task: K,
    request: ITaskRequest,
    callbacks: IStreamCallbacks = {}
  ): Promise<ITaskResults[K]> {
    return this._record<ITaskResults[K]>(task, request, callbacks);
  }

  private _record<T>(
    task: string,
    request: ITaskRequest | IPromptRunRequest,
    callbacks: IStreamCallbacks
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      callbacks.signal?.addEventListener('abort', () => {
        const error = new Error('The operation was aborted.');
        error.name = 'AbortError';
        reject(error);
      });
      this.runs.push({
        task,
        request,
        callbacks,
        resolve: result => resolve(result as T),
        reject
      });
    });
  }

  /**
   * The library citation requests, oldest first, and how the next one ends.
   */
  readonly cites: ILibraryCiteRequest[] = [];
  nextCite: ILibraryCiteResult | Error = new Error('no library cite scripted');

  cite(request: ILibraryCiteRequest): Promise<ILibraryCiteResult> {
    this.cites.push(request);
    const next = this.nextCite;
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  }

  /**
   * The prompt library the server lists, and the molecules it draws (by SMILES).
   */
  catalog: IPromptCatalog = { templates: [], rdkit: false, notice: '' };
  drawings: Record<string, IMoleculeDrawing> = {};
  readonly fills: { name: string; values: Record<string, string> }[] = [];

  prompts(): Promise<IPromptCatalog> {
    return Promise.resolve(this.catalog);
  }

  fillPrompt(name: string, values: Record<string, string>): Promise<string> {
    this.fills.push({ name, values });
    const template = this.catalog.templates.find(t => t.name === name);
    if (!template) {
      return Promise.reject(new Error(`unknown prompt template '${name}'`));
    }
    return Promise.resolve(
      template.form.replace(
        /\{(\w+)\}/g,
        (_, field: string) => values[field] ?? ''
      )
    );
  }

  runPrompt(
    name: string,
    request: IPromptRunRequest,
    callbacks: IStreamCallbacks = {}
  ): Promise<IPromptResult> {
    return this._record<IPromptResult>(`prompt:${name}`, request, callbacks);
  }

  drawMolecule(smiles: string): Promise<IMoleculeDrawing> {
    const drawing = this.drawings[smiles];
    return drawing
      ? Promise.resolve(drawing)
      : Promise.reject(new Error(`no drawing of ${smiles}`));
  }

  /**
   * The last run started.
   */
  get last(): IRecordedRun {
    const run = this.runs[this.runs.length - 1];
    if (!run) {
      throw new Error('no run was started');
    }
    return run;
  }

  private _answer(): Promise<IModelStatus> {
    const next = this.nextLoad;
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  }
}
