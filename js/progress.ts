/**
 * Model load progress as a notification.
 */
import { Notification } from '@jupyterlab/apputils';

import { trans } from './i18n';
import { StatusModel } from './status';
import { IModelStatus } from './tokens';

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
