/**
 * The status-bar item: the model's state and name; a click opens the sidebar.
 */
import { Widget } from '@lumino/widgets';

import { trans } from './i18n';
import { galacticaIcon } from './icons';
import { IGalactica } from './service';
import { IModelStatus } from './tokens';

/**
 * The short model name: the last part of a hub id or a path.
 */
export function shortModelName(model: string): string {
  return (
    model
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() || model
  );
}

/**
 * What the item says, and its tooltip, for a status.
 */
export function describeStatus(
  status: IModelStatus | null,
  unloadedByUser: boolean,
  error: string | null = null
): { label: string; title: string; state: string } {
  if (!status) {
    return {
      label: trans().__('GALACTICA'),
      title: error
        ? trans().__('GALACTICA: the server does not answer (%1)', error)
        : trans().__('GALACTICA: asking the server…'),
      state: 'unknown'
    };
  }
  const name = shortModelName(status.model);
  switch (status.state) {
    case 'ready':
      return {
        label: trans().__('GALACTICA: %1', name),
        title: trans().__(
          'GALACTICA: %1 is ready (%2). Click to open the sidebar.',
          status.model,
          [status.device, status.dtype].filter(Boolean).join(', ') ||
            status.backend
        ),
        state: 'ready'
      };
    case 'starting':
    case 'loading': {
      const fraction = status.progress?.fraction;
      const percent =
        typeof fraction === 'number' ? ` ${Math.round(fraction * 100)}%` : '';
      return {
        label: trans().__('GALACTICA: loading%1', percent),
        title: trans().__(
          'GALACTICA: %1 is loading; ghost text starts when it is ready.',
          status.model
        ),
        state: status.state
      };
    }
    case 'failed':
      return {
        label: trans().__('GALACTICA: failed'),
        title: trans().__(
          'GALACTICA: %1 failed: %2. No ghost text until a model loads. Click to open the sidebar.',
          status.model,
          status.error ?? trans().__('unknown error')
        ),
        state: 'failed'
      };
    default:
      return {
        label: unloadedByUser
          ? trans().__('GALACTICA: unloaded')
          : trans().__('GALACTICA: no model'),
        title: unloadedByUser
          ? trans().__(
              'GALACTICA: you unloaded the model, so there is no ghost text and nothing loads until you load a model. Click to open the sidebar.'
            )
          : trans().__(
              'GALACTICA: no model is loaded, so there is no ghost text. Click to open the sidebar and load one.'
            ),
        state: 'stopped'
      };
  }
}

/**
 * The status-bar item.
 */
export class GalacticaStatusItem extends Widget {
  /**
   * Follow `galactica`'s status; `open` opens the sidebar.
   */
  constructor(
    private readonly _galactica: IGalactica,
    open: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-galactica-statusItem');
    this.node.setAttribute('type', 'button');
    const icon = document.createElement('span');
    icon.className = 'jp-galactica-statusItem-icon';
    galacticaIcon.element({ container: icon, height: '14px', width: '14px' });
    this._label.className = 'jp-galactica-statusItem-label';
    this.node.append(icon, this._label);
    this.node.addEventListener('click', open);
    _galactica.status.changed.connect(this._update, this);
    this._update();
  }

  dispose(): void {
    this._galactica.status.changed.disconnect(this._update, this);
    super.dispose();
  }

  private _update(): void {
    const { status, unloadedByUser, error } = this._galactica.status;
    const described = describeStatus(status, unloadedByUser, error);
    this._label.textContent = described.label;
    this.node.title = described.title;
    this.node.setAttribute('aria-label', described.title);
    this.node.dataset.state = described.state;
  }

  private _label = document.createElement('span');
}
