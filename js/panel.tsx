/**
 * The GALACTICA sidebar.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import { galacticaIcon } from './icons';
import { StatusModel } from './status';
import { IModelStatus } from './tokens';

/**
 * Format a byte count for people.
 */
export function formatBytes(bytes: number | null): string {
  if (bytes === null || bytes === undefined) {
    return '-';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * The status block: state, model, device, dtype, memory, and a progress bar while loading.
 */
export function StatusView(props: {
  status: IModelStatus | null;
  error: string | null;
}): JSX.Element {
  const { status, error } = props;
  if (!status) {
    return (
      <div className="jp-galactica-status" data-state="unknown">
        {error ? `Cannot reach the server: ${error}` : 'Reading the status...'}
      </div>
    );
  }
  const progress = status.progress;
  return (
    <div className="jp-galactica-status" data-state={status.state}>
      <div className="jp-galactica-status-state">
        <span className="jp-galactica-dot" />
        <span className="jp-galactica-state-label">{status.state}</span>
      </div>
      {progress && (
        <div className="jp-galactica-progress" title={progress.phase}>
          <progress max={1} value={progress.fraction} />
          <span>
            {progress.phase} {Math.round(progress.fraction * 100)}%
          </span>
        </div>
      )}
      <dl className="jp-galactica-facts">
        <dt>Model</dt>
        <dd className="jp-galactica-model" title={status.model}>
          {status.model}
        </dd>
        <dt>Backend</dt>
        <dd>
          {status.backend}
          {status.url ? ` (${status.url})` : ''}
        </dd>
        <dt>Device</dt>
        <dd>{status.device ?? '-'}</dd>
        <dt>Dtype</dt>
        <dd>{status.dtype ?? '-'}</dd>
        <dt>Memory</dt>
        <dd>{formatBytes(status.memory_bytes)}</dd>
      </dl>
      {status.error && (
        <div className="jp-galactica-error" role="alert">
          {status.error}
        </div>
      )}
      {error && <div className="jp-galactica-error">{error}</div>}
    </div>
  );
}

/**
 * The GALACTICA panel of the left sidebar.
 */
export class GalacticaPanel extends ReactWidget {
  /**
   * Create the panel over the shared status model.
   */
  constructor(readonly statusModel: StatusModel) {
    super();
    this.id = 'galactica-ext-sidebar';
    this.addClass('jp-galactica-panel');
    this.title.icon = galacticaIcon;
    this.title.caption = 'GALACTICA';
  }

  protected render(): JSX.Element {
    return (
      <div className="jp-galactica-body">
        <header className="jp-galactica-header">GALACTICA</header>
        <UseSignal signal={this.statusModel.changed}>
          {() => (
            <StatusView
              status={this.statusModel.status}
              error={this.statusModel.error}
            />
          )}
        </UseSignal>
      </div>
    );
  }
}
