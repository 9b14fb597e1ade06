/**
 * The sidebar's model picker: a size, a hub id or local directory, or a remote server;
 * Load and Unload, the server's whole answer when it refuses, and the weights' licence.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IGalactica } from '../service';
import { ILoadModelRequest, IModelStatus } from '../tokens';
import { ILoadFailure, LicenceNote } from './status';
import { errorMessage } from './useTask';

/**
 * The five GALACTICA sizes.
 */
export const SIZES = ['125m', '1.3b', '6.7b', '30b', '120b'];

/**
 * The weights' dtypes the picker offers.
 */
export const DTYPES = ['auto', 'float32', 'bfloat16', 'float16'];

/**
 * The picker's entry for a model spec: one of the five sizes, or a hub id / directory.
 */
export function pickerChoice(model: string): {
  choice: string;
  custom: string;
} {
  const size = SIZES.find(
    s => model === s || model === `facebook/galactica-${s}`
  );
  if (size) {
    return { choice: size, custom: '' };
  }
  return model
    ? { choice: 'custom', custom: model }
    : { choice: '125m', custom: '' };
}

/**
 * The picker's value for a configured remote server.
 */
export function remoteChoice(name: string): string {
  return `remote:${name}`;
}

/**
 * The picker's entry for what the server serves now: a configured remote by name, else
 * the model (a size, or a hub id / directory).
 */
export function servedChoice(status: IModelStatus): {
  choice: string;
  custom: string;
} {
  if (status.backend === 'remote' && status.remote) {
    return { choice: remoteChoice(status.remote), custom: '' };
  }
  return pickerChoice(status.model);
}

/**
 * What the picker asks the server to load, and how it names it to the user.
 */
export function loadRequest(
  choice: string,
  custom: string,
  dtype: string,
  status: IModelStatus | null
): { request: ILoadModelRequest; requested: string } {
  if (choice.startsWith('remote:')) {
    const name = choice.slice('remote:'.length);
    return { request: { remote: name }, requested: name };
  }
  const model = choice === 'custom' ? custom.trim() : choice;
  return {
    request: {
      model,
      dtype,
      // a local model after a remote server: switch back to the local agent
      ...(status?.backend === 'remote' ? { remote: '' } : {})
    },
    requested: choice === 'custom' ? model : `galactica-${model}`
  };
}

/**
 * The model picker.
 */
export function ModelPicker(props: {
  galactica: Pick<IGalactica, 'settings' | 'load' | 'unload'>;
  status: IModelStatus | null;
  /**
   * The last load the server refused, if the user has not loaded or chosen since.
   */
  failure: ILoadFailure | null;
  onFailure: (failure: ILoadFailure | null) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { galactica, status, failure, onFailure, trans } = props;
  const initial = pickerChoice(galactica.settings.model);
  const [choice, setChoice] = React.useState(initial.choice);
  const [custom, setCustom] = React.useState(initial.custom);
  const touched = React.useRef(false);
  // With no model in the settings, show what the server actually serves once it says so.
  React.useEffect(() => {
    if (
      !touched.current &&
      status &&
      (!galactica.settings.model || status.backend === 'remote')
    ) {
      const shown = servedChoice(status);
      setChoice(shown.choice);
      setCustom(shown.custom);
    }
  }, [status?.model, status?.backend, status?.remote]);
  const [dtype, setDtype] = React.useState('auto');
  const [busy, setBusy] = React.useState(false);
  const [unloadError, setUnloadError] = React.useState<string | null>(null);

  // a load the server accepted: if the model then fails to load, say so here too (the
  // status the click saw is not an answer to it)
  const [pending, setPending] = React.useState<{
    requested: string;
    before: IModelStatus | null;
  } | null>(null);
  React.useEffect(() => {
    if (!pending || !status || status === pending.before) {
      return;
    }
    if (status.state === 'failed') {
      onFailure({
        requested: pending.requested,
        message: status.error || trans.__('the model failed to load')
      });
      setPending(null);
    } else if (status.state === 'ready' || status.state === 'stopped') {
      setPending(null);
    }
  }, [pending, status]);

  const load = async () => {
    const { request, requested } = loadRequest(choice, custom, dtype, status);
    const before = status;
    setBusy(true);
    setUnloadError(null);
    try {
      await galactica.load(request);
      onFailure(null);
      setPending({ requested, before });
    } catch (error) {
      onFailure({ requested, message: errorMessage(error) });
    } finally {
      setBusy(false);
    }
  };
  const unload = async () => {
    setBusy(true);
    try {
      await galactica.unload();
      setUnloadError(null);
      onFailure(null);
    } catch (error) {
      setUnloadError(errorMessage(error));
    } finally {
      setBusy(false);
    }
  };
  const edited = () => {
    touched.current = true;
  };

  const loaded = status && status.state !== 'stopped';
  const remote = choice.startsWith('remote:');
  const loadDisabled = busy || (choice === 'custom' && !custom.trim());
  return (
    <fieldset className="jp-galactica-picker">
      <legend>{trans.__('Model')}</legend>
      <label>
        <span>{trans.__('Size or source')}</span>
        <select
          className="jp-galactica-model-select"
          value={choice}
          onChange={e => {
            edited();
            setChoice(e.target.value);
          }}
        >
          {SIZES.map(size => (
            <option key={size} value={size}>
              {`galactica-${size}`}
            </option>
          ))}
          <option value="custom">
            {trans.__('Hub id or local directory...')}
          </option>
          {(status?.remotes ?? []).map(name => (
            <option key={name} value={remoteChoice(name)}>
              {trans.__('Remote server: %1', name)}
            </option>
          ))}
        </select>
      </label>
      {choice === 'custom' && (
        <label>
          <span>{trans.__('Hub id or directory')}</span>
          <input
            className="jp-galactica-model-custom"
            type="text"
            placeholder={trans.__('facebook/galactica-1.3b or /path/to/model')}
            value={custom}
            onChange={e => {
              edited();
              setCustom(e.target.value);
            }}
          />
        </label>
      )}
      {!remote && (
        <label>
          <span>{trans.__('Dtype')}</span>
          <select
            className="jp-galactica-dtype"
            value={dtype}
            onChange={e => setDtype(e.target.value)}
          >
            {DTYPES.map(d => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </label>
      )}
      <div className="jp-galactica-buttons">
        <button
          className="jp-mod-styled jp-mod-accept jp-galactica-load"
          disabled={loadDisabled}
          aria-disabled={loadDisabled}
          onClick={() => void load()}
        >
          {trans.__('Load')}
        </button>
        <button
          className="jp-mod-styled jp-galactica-unload"
          disabled={busy || !loaded}
          aria-disabled={busy || !loaded}
          onClick={() => void unload()}
        >
          {trans.__('Unload')}
        </button>
      </div>
      {failure && (
        <div
          className="jp-galactica-error jp-galactica-load-error"
          role="alert"
        >
          <strong>{trans.__('Cannot load %1:', failure.requested)}</strong>{' '}
          {failure.message}
        </div>
      )}
      {unloadError && (
        <div
          className="jp-galactica-error jp-galactica-load-error"
          role="alert"
        >
          <strong>{trans.__('Cannot unload:')}</strong> {unloadError}
        </div>
      )}
      <LicenceNote trans={trans} className="jp-galactica-note" />
    </fieldset>
  );
}
