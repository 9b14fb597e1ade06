import { nullTranslator } from '@jupyterlab/translation';
import * as React from 'react';

import {
  loadRequest,
  ModelPicker,
  remoteChoice,
  servedChoice
} from '../panel/picker';
import { ILoadFailure, MODEL_CARD_URL, StatusView } from '../panel/status';
import { IModelStatus } from '../tokens';
import { click, IMounted, mount, setValue } from './dom';
import { READY, ScriptedGalactica } from './galactica';

const trans = nullTranslator.load('galactica_ext');

/** A refusal as long as the server's real ones for a bad directory (over 140 characters). */
const REFUSAL =
  "model directory '/data/models/galactica-1.3b-finetuned-on-my-own-papers-2024' does not " +
  'exist (a local model is a directory holding config.json, the weights and the tokenizer files)';

describe('loadRequest', () => {
  it('loads a size, a custom source, or a configured remote by name', () => {
    expect(loadRequest('1.3b', '', 'auto', READY)).toEqual({
      request: { model: '1.3b', dtype: 'auto' },
      requested: 'galactica-1.3b'
    });
    expect(loadRequest('custom', ' /data/m ', 'float32', READY)).toEqual({
      request: { model: '/data/m', dtype: 'float32' },
      requested: '/data/m'
    });
    expect(loadRequest(remoteChoice('gpu'), '', 'auto', READY)).toEqual({
      request: { remote: 'gpu' },
      requested: 'gpu'
    });
  });

  it('switches back from a remote server to the local agent', () => {
    const remote = { ...READY, backend: 'remote' as const, remote: 'gpu' };
    expect(loadRequest('125m', '', 'auto', remote).request).toEqual({
      model: '125m',
      dtype: 'auto',
      remote: ''
    });
  });
});

describe('servedChoice', () => {
  it('shows a remote by its name, a local model by size or source', () => {
    expect(
      servedChoice({
        ...READY,
        backend: 'remote',
        remote: 'gpu',
        remotes: ['gpu']
      })
    ).toEqual({ choice: 'remote:gpu', custom: '' });
    expect(servedChoice(READY)).toEqual({ choice: '125m', custom: '' });
    expect(servedChoice({ ...READY, model: '/data/tiny' })).toEqual({
      choice: 'custom',
      custom: '/data/tiny'
    });
  });
});

describe('ModelPicker', () => {
  let galactica: ScriptedGalactica;
  let failure: ILoadFailure | null;
  let view: IMounted;
  const $ = <T extends Element = HTMLElement>(selector: string) =>
    view.container.querySelector<T>(selector);

  /** The picker as the panel holds it: the refused load lives above it. */
  function Holder(): JSX.Element {
    const [held, setHeld] = React.useState<ILoadFailure | null>(null);
    failure = held;
    return (
      <ModelPicker
        galactica={galactica}
        status={READY}
        failure={held}
        onFailure={setHeld}
        trans={trans}
      />
    );
  }

  beforeEach(async () => {
    galactica = new ScriptedGalactica({ model: '125m' });
    failure = null;
    view = await mount(<Holder />);
  });
  afterEach(() => view.unmount());

  it("says the weights' licence and links the model card", () => {
    const licence = $('.jp-galactica-licence')!;
    expect(licence.textContent).toContain('CC BY-NC 4.0');
    expect(licence.textContent).toContain('non-commercial');
    expect(licence.querySelector('a')!.href).toBe(MODEL_CARD_URL);
  });

  it('disables Load until a custom source is typed', async () => {
    const load = $<HTMLButtonElement>('.jp-galactica-load')!;
    expect(load.disabled).toBe(false);
    await setValue(
      $<HTMLSelectElement>('.jp-galactica-model-select'),
      'custom'
    );
    expect(load.disabled).toBe(true);
    expect(load.getAttribute('aria-disabled')).toBe('true');
    await setValue(
      $<HTMLInputElement>('.jp-galactica-model-custom'),
      '/data/m'
    );
    expect(load.disabled).toBe(false);
  });

  it("shows the server's whole refusal, until a load succeeds", async () => {
    await setValue(
      $<HTMLSelectElement>('.jp-galactica-model-select'),
      'custom'
    );
    await setValue(
      $<HTMLInputElement>('.jp-galactica-model-custom'),
      '/data/bad'
    );
    galactica.nextLoad = new Error(REFUSAL);
    await click($('.jp-galactica-load'));
    expect(galactica.loads).toEqual([{ model: '/data/bad', dtype: 'auto' }]);
    const error = $('.jp-galactica-load-error')!;
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent).toBe(`Cannot load /data/bad: ${REFUSAL}`);
    expect(failure).toEqual({ requested: '/data/bad', message: REFUSAL });

    galactica.nextLoad = READY;
    await setValue($<HTMLSelectElement>('.jp-galactica-model-select'), '1.3b');
    await click($('.jp-galactica-load'));
    expect(galactica.loads[1]).toEqual({ model: '1.3b', dtype: 'auto' });
    expect($('.jp-galactica-load-error')).toBeNull();
    expect(failure).toBeNull();
  });

  it('offers the remotes the server configured, by name', async () => {
    await view.rerender(
      <ModelPicker
        galactica={galactica}
        status={{ ...READY, remotes: ['default', 'gpu'] }}
        failure={null}
        onFailure={() => undefined}
        trans={trans}
      />
    );
    const values = Array.from(
      view.container.querySelectorAll<HTMLOptionElement>(
        '.jp-galactica-model-select option'
      )
    ).map(o => o.value);
    expect(values).toEqual([
      '125m',
      '1.3b',
      '6.7b',
      '30b',
      '120b',
      'custom',
      'remote:default',
      'remote:gpu'
    ]);
    await setValue(
      $<HTMLSelectElement>('.jp-galactica-model-select'),
      'remote:gpu'
    );
    expect($('.jp-galactica-dtype')).toBeNull();
    await click($('.jp-galactica-load'));
    expect(galactica.loads).toEqual([{ remote: 'gpu' }]);
  });

  it('shows a model that fails to load after the server accepted it', async () => {
    let held: ILoadFailure | null = null;
    const Watched = (props: { status: IModelStatus }) => {
      const [shown, setShown] = React.useState<ILoadFailure | null>(null);
      held = shown;
      return (
        <ModelPicker
          galactica={galactica}
          status={props.status}
          failure={shown}
          onFailure={setShown}
          trans={trans}
        />
      );
    };
    await view.rerender(<Watched status={READY} />);
    await setValue(
      $<HTMLSelectElement>('.jp-galactica-model-select'),
      'custom'
    );
    await setValue(
      $<HTMLInputElement>('.jp-galactica-model-custom'),
      '/data/empty'
    );
    galactica.nextLoad = { ...READY, state: 'loading' };
    await click($('.jp-galactica-load'));
    await view.rerender(<Watched status={{ ...READY, state: 'loading' }} />);
    expect($('.jp-galactica-load-error')).toBeNull();
    const error = `${REFUSAL} (config.json is missing)`;
    await view.rerender(
      <Watched status={{ ...READY, state: 'failed', error }} />
    );
    expect($('.jp-galactica-load-error')!.textContent).toBe(
      `Cannot load /data/empty: ${error}`
    );
    expect(held).toEqual({ requested: '/data/empty', message: error });
  });

  it('shows why an unload failed', async () => {
    galactica.nextLoad = new Error('cannot reach http://127.0.0.1:8765');
    await click($('.jp-galactica-unload'));
    expect(galactica.loads).toEqual(['unload']);
    expect($('.jp-galactica-load-error')!.textContent).toContain(
      'cannot reach http://127.0.0.1:8765'
    );
  });
});

describe('StatusView', () => {
  it('keeps the served model ready and says the requested one failed', async () => {
    const view = await mount(
      <StatusView
        status={READY}
        error={null}
        failure={{ requested: '/data/bad', message: REFUSAL }}
        trans={trans}
      />
    );
    const root = view.container.querySelector('.jp-galactica-status')!;
    expect(root.getAttribute('data-state')).toBe('ready');
    expect(root.querySelector('.jp-galactica-model')!.textContent).toBe(
      READY.model
    );
    expect(root.querySelector('.jp-galactica-status-note')!.textContent).toBe(
      `Loading /data/bad failed (see Model below): still serving ${READY.model}.`
    );
    expect(root.querySelector('.jp-galactica-facts')!.textContent).toContain(
      '250.0 MiB'
    );
    const licence = root.querySelector('.jp-galactica-status-licence')!;
    expect(licence.textContent).toContain('CC BY-NC 4.0');
    expect(licence.querySelector('a')!.href).toBe(MODEL_CARD_URL);
    await view.unmount();
  });

  it("shows a failed model's whole error", async () => {
    const error = `${REFUSAL} `.repeat(3).trim();
    const view = await mount(
      <StatusView
        status={{ ...READY, state: 'failed', error }}
        error={null}
        failure={null}
        trans={trans}
      />
    );
    expect(
      view.container.querySelector('.jp-galactica-error')!.textContent
    ).toBe(error);
    expect(
      view.container.querySelector('.jp-galactica-status-note')
    ).toBeNull();
    await view.unmount();
  });
});
