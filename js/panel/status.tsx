/**
 * The sidebar's status block: state, model, placement, load progress, the weights' licence,
 * and what became of the user's last load request.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IModelStatus, ModelState } from '../tokens';

/**
 * The model card of the smallest GALACTICA: its licence and limitations.
 */
export const MODEL_CARD_URL = 'https://huggingface.co/facebook/galactica-125m';

/**
 * The licence of GALACTICA's weights (this extension's code is BSD-3-Clause).
 */
export const WEIGHTS_LICENCE = 'CC BY-NC 4.0';

/**
 * A load request the server refused: what was asked for and the server's whole answer.
 */
export interface ILoadFailure {
  /**
   * The model (or server URL) the user asked for.
   */
  requested: string;
  /**
   * The server's message, whole.
   */
  message: string;
}

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
 * A model state's label, translated.
 */
export function stateLabel(
  state: ModelState,
  trans: TranslationBundle
): string {
  switch (state) {
    case 'stopped':
      return trans.__('stopped');
    case 'starting':
      return trans.__('starting');
    case 'loading':
      return trans.__('loading');
    case 'ready':
      return trans.__('ready');
    case 'failed':
      return trans.__('failed');
  }
}

/**
 * The licence of GALACTICA's weights, with a link to the model card.
 */
export function LicenceNote(props: {
  trans: TranslationBundle;
  className?: string;
}): JSX.Element {
  const { trans } = props;
  return (
    <p className={`jp-galactica-licence ${props.className ?? ''}`.trim()}>
      {trans.__(
        "GALACTICA's weights are licensed %1: non-commercial use only (this extension's code is BSD-3-Clause).",
        WEIGHTS_LICENCE
      )}{' '}
      <a href={MODEL_CARD_URL} target="_blank" rel="noopener noreferrer">
        {trans.__('Model card')}
      </a>
    </p>
  );
}

/**
 * The status block: state, model, device, dtype, memory, the weights' licence, and a
 * progress bar while loading.
 */
export function StatusView(props: {
  status: IModelStatus | null;
  error: string | null;
  failure: ILoadFailure | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { status, error, failure, trans } = props;
  if (!status) {
    return (
      <div className="jp-galactica-status" data-state="unknown">
        {error
          ? trans.__('Cannot reach the server: %1', error)
          : trans.__('Reading the status...')}
      </div>
    );
  }
  const progress = status.progress;
  return (
    <div className="jp-galactica-status" data-state={status.state}>
      <div className="jp-galactica-status-state">
        <span className="jp-galactica-dot" />
        <span className="jp-galactica-state-label">
          {stateLabel(status.state, trans)}
        </span>
      </div>
      {failure && (
        <div className="jp-galactica-status-note" role="status">
          {status.state === 'ready'
            ? trans.__(
                'Loading %1 failed (see Model below): still serving %2.',
                failure.requested,
                status.model
              )
            : trans.__(
                'Loading %1 failed (see Model below).',
                failure.requested
              )}
        </div>
      )}
      {progress && (
        <div className="jp-galactica-progress" title={progress.phase}>
          <progress max={1} value={progress.fraction} />
          <span>
            {progress.phase} {Math.round(progress.fraction * 100)}%
          </span>
        </div>
      )}
      <dl className="jp-galactica-facts">
        <dt>{trans.__('Model')}</dt>
        <dd className="jp-galactica-model" title={status.model}>
          {status.model}
        </dd>
        <dt>{trans.__('Backend')}</dt>
        <dd title={status.url ?? ''}>
          {status.backend}
          {status.url ? ` (${status.url})` : ''}
        </dd>
        <dt>{trans.__('Device')}</dt>
        <dd>{status.device ?? '-'}</dd>
        <dt>{trans.__('Dtype')}</dt>
        <dd>{status.dtype ?? '-'}</dd>
        <dt>{trans.__('Memory')}</dt>
        <dd>{formatBytes(status.memory_bytes)}</dd>
        <dt>{trans.__('Licence')}</dt>
        <dd className="jp-galactica-status-licence">
          {trans.__('weights %1, non-commercial', WEIGHTS_LICENCE)} (
          <a href={MODEL_CARD_URL} target="_blank" rel="noopener noreferrer">
            {trans.__('model card')}
          </a>
          )
        </dd>
      </dl>
      {status.error && status.error !== failure?.message && (
        <div className="jp-galactica-error" role="alert">
          {status.error}
        </div>
      )}
      {error && <div className="jp-galactica-error">{error}</div>}
    </div>
  );
}
