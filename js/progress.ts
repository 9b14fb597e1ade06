/**
 * Model load progress as a notification.
 */
import { Notification } from '@jupyterlab/apputils';

import { trans } from './i18n';
import { IGalactica } from './service';
import { StatusModel } from './status';
import { ILoadModelRequest, IModelStatus } from './tokens';

/**
 * The request that loads the model served last (an empty request would load the server's
 * default model instead).
 */
export function lastModel(galactica: IGalactica): ILoadModelRequest {
  const status = galactica.status.status;
  return status?.model && status.backend === 'local'
    ? { model: status.model }
    : {};
}

/**
 * A notification action that loads the model (the one the server was last asked for).
 */
export function loadAction(galactica: IGalactica): Notification.IAction {
  return {
    label: trans().__('Load'),
    caption: trans().__('Load the GALACTICA model'),
    callback: () => {
      galactica.status.unloadedByUser = false;
      galactica
        .load(lastModel(galactica))
        .catch(error =>
          Notification.error(
            trans().__('GALACTICA: cannot load the model: %1', String(error)),
            { autoClose: false }
          )
        );
    }
  };
}

/**
 * Whether an explicit request may run now: not after the user unloaded the model on
 * purpose (then a notification says so, with a Load action).
 */
export function checkModel(galactica: IGalactica): boolean {
  if (!galactica.status.unloadedByUser || galactica.status.ready) {
    return true;
  }
  Notification.warning(
    trans().__(
      'No GALACTICA model is loaded: you unloaded it. Load it to use GALACTICA again.'
    ),
    { autoClose: 8000, actions: [loadAction(galactica)] }
  );
  return false;
}

/**
 * Shows an in-progress notification while the model starts or loads, then its outcome.
 */
export class LoadNotifier {
  /**
   * Follow a status model.
   */
  constructor(status: StatusModel) {
    status.changed.connect((_, value) => this._onStatus(value));
  }

  private _onStatus(status: IModelStatus | null): void {
    if (!status) {
      return;
    }
    const busy = status.state === 'starting' || status.state === 'loading';
    const name = status.model.split('/').pop() || status.model;
    if (busy) {
      const phase = status.progress?.phase ?? status.state;
      const message = trans().__(
        'GALACTICA: %1 %2 (%3)',
        status.state,
        name,
        phase
      );
      const progress = status.progress?.fraction;
      if (this._id === null) {
        this._id = Notification.emit(message, 'in-progress', {
          autoClose: false,
          progress
        });
      } else {
        Notification.update({
          id: this._id,
          message,
          type: 'in-progress',
          autoClose: false,
          progress
        });
      }
      return;
    }
    if (this._id === null) {
      return;
    }
    if (status.state === 'ready') {
      Notification.update({
        id: this._id,
        message: trans().__('GALACTICA: %1 is ready', name),
        type: 'success',
        autoClose: 3000
      });
    } else if (status.state === 'failed') {
      Notification.update({
        id: this._id,
        message: trans().__(
          'GALACTICA: %1 failed: %2',
          name,
          status.error ?? trans().__('unknown error')
        ),
        type: 'error',
        autoClose: false
      });
    } else {
      Notification.dismiss(this._id);
    }
    this._id = null;
  }

  private _id: string | null = null;
}
