/**
 * The sidebar's model picker: a size, a hub id or local directory, or a remote server;
 * Load and Unload, the server's whole answer when it refuses, and the weights' licence.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IGalactica } from '../service';
import { IModelStatus } from '../tokens';
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
 * What the picker asks the server to load, and how it names it to the user.
 */
export function loadRequest(
  choice: string,
  custom: string,
  url: string,
  dtype: string,
  status: IModelStatus | null
): { request: Parameters<IGalactica['load']>[0]; requested: string } {
  if (choice === 'remote') {
    return { request: { url: url.trim() }, requested: url.trim() };
  }
  const model = choice === 'custom' ? custom.trim() : choice;
  return {
    request: {
      model,
      dtype,
      // a local model after a remote server: switch back to the local agent
      ...(status?.backend === 'remote' ? { url: '' } : {})
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
  const initial = galactica.settings.remoteUrl
    ? { choice: 'remote', custom: '' }
    : pickerChoice(galactica.settings.model);
  const [choice, setChoice] = React.useState(initial.choice);
  const [custom, setCustom] = React.useState(initial.custom);
  const touched = React.useRef(false);
  // With no model in the settings, show what the server actually serves once it says so.
  React.useEffect(() => {
    const served = status?.backend === 'local' ? status.model : '';
    if (!touched.current && !galactica.settings.model && served) {
      const shown = pickerChoice(served);
      setChoice(shown.choice);
      setCustom(shown.custom);
    }
  }, [status?.model, status?.backend]);
  const [url, setUrl] = React.useState(galactica.settings.remoteUrl);
  const [dtype, setDtype] = React.useState('auto');
  const [busy, setBusy] = React.useState(false);
  const [unloadError, setUnloadError] = React.useState<string | null>(null);

  const load = async () => {
    const { request, requested } = loadRequest(
      choice,
      custom,
      url,
      dtype,
      status
    );
    setBusy(true);
    setUnloadError(null);
    try {
      await galactica.load(request);
      onFailure(null);
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
  const loadDisabled =
    busy ||
    (choice === 'custom' && !custom.trim()) ||
    (choice === 'remote' && !url.trim());
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
          <option value="remote">
            {trans.__('Remote server (OpenAI-compatible)...')}
          </option>
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
      {choice === 'remote' && (
        <label>
          <span>{trans.__('Server URL')}</span>
          <input
            className="jp-galactica-model-url"
            type="url"
            placeholder={trans.__('http://host:8000/v1')}
            value={url}
            onChange={e => setUrl(e.target.value)}
          />
        </label>
      )}
      {choice !== 'remote' && (
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
