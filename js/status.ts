/**
 * The model status, polled from the server.
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { getStatus } from './api';
import { IModelStatus } from './tokens';

/**
 * How often the status is polled while nothing changes (ms).
 */
const IDLE_INTERVAL = 10000;

/**
 * How often the status is polled while a model starts or loads (ms).
 */
const BUSY_INTERVAL = 1000;

/**
 * Where the user's "unloaded on purpose" intent is kept.
 */
const UNLOADED_KEY = 'galactica-ext:unloaded-by-user';

function readUnloaded(): boolean {
  try {
    return window.localStorage.getItem(UNLOADED_KEY) === '1';
  } catch {
    return false;
  }
}

/**
 * Keeps the server's model status and tells when it changes.
 */
export class StatusModel implements IDisposable {
  /**
   * Start polling `GET /galactica/status`.
   */
  constructor(
    private readonly _settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {
    this._poll = new Poll({
      auto: true,
      factory: () => this._fetch(),
      frequency: { interval: IDLE_INTERVAL, backoff: true, max: 60000 },
      name: 'galactica-ext:status',
      standby: 'when-hidden'
    });
  }

  /**
   * The last status read, or `null` before the first answer.
   */
  get status(): IModelStatus | null {
    return this._status;
  }

  /**
   * The last error polling the server, if the last poll failed.
   */
  get error(): string | null {
    return this._error;
  }

  /**
   * Whether the user unloaded the model on purpose: then nothing loads it again (no
   * command, no ghost text) until the user loads one. Kept in the browser's storage, so a
   * reload of the page keeps it.
   */
  get unloadedByUser(): boolean {
    return this._unloadedByUser;
  }

  set unloadedByUser(value: boolean) {
    if (value === this._unloadedByUser) {
      return;
    }
    this._unloadedByUser = value;
    try {
      if (value) {
        window.localStorage.setItem(UNLOADED_KEY, '1');
      } else {
        window.localStorage.removeItem(UNLOADED_KEY);
      }
    } catch {
      // storage may be unavailable (private mode): the intent lasts for this page
    }
    this._changed.emit(this._status);
  }

  /**
   * Whether the model is ready for tasks.
   */
  get ready(): boolean {
    return this._status?.state === 'ready';
  }

  /**
   * Emitted when the status (or the polling error) changes.
   */
  get changed(): ISignal<this, IModelStatus | null> {
    return this._changed;
  }

  /**
   * Whether the model has been disposed.
   */
  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /**
   * Poll now, e.g. after asking the server to load a model.
   */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick;
  }

  /**
   * Take a status the server returned from another call (load, unload).
   */
  update(status: IModelStatus): void {
    this._set(status, null);
  }

  /**
   * Stop polling.
   */
  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _fetch(): Promise<void> {
    try {
      this._set(await getStatus(this._settings), null);
    } catch (error) {
      this._set(this._status, (error as Error).message ?? String(error));
      throw error;
    }
  }

  private _set(status: IModelStatus | null, error: string | null): void {
    const busy = status?.state === 'starting' || status?.state === 'loading';
    if (busy && this._unloadedByUser) {
      // someone loads a model (another tab, the server's own start): the intent is over
      this.unloadedByUser = false;
    }
    const interval = busy ? BUSY_INTERVAL : IDLE_INTERVAL;
    if (this._poll.frequency.interval !== interval) {
      this._poll.frequency = { ...this._poll.frequency, interval };
    }
    const same =
      error === this._error &&
      JSON.stringify(status) === JSON.stringify(this._status);
    this._status = status;
    this._error = error;
    if (!same) {
      this._changed.emit(status);
    }
  }

  private _changed = new Signal<this, IModelStatus | null>(this);
  private _unloadedByUser = readUnloaded();
  private _error: string | null = null;
  private _poll: Poll;
  private _status: IModelStatus | null = null;
}
