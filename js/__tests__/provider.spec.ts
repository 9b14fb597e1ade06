import {
  IInlineCompletionItem,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { IStreamCallbacks } from '../api';
import {
  enabledFor,
  finishSuggestion,
  GalacticaInlineProvider,
  PROVIDER_DEFAULTS
} from '../completer/provider';
import { detectTrigger } from '../completer/triggers';
import { EditorKind } from '../editor';
import { IGalactica } from '../service';
import { DEFAULT_SETTINGS, IGalacticaSettings } from '../settings';
import { ITaskRequest, TaskName } from '../tokens';

/**
 * A scripted GALACTICA service: each task answers with `tokens` streamed, then `result`.
 */
class FakeGalactica {
  settings: IGalacticaSettings = {
    ...DEFAULT_SETTINGS,
    inlineCompletion: { ...DEFAULT_SETTINGS.inlineCompletion }
  };
  settingsChanged = new Signal<any, IGalacticaSettings>(this);
  status = { ready: true } as any;
  unloading = false;
  unloadStarted = new Signal<any, void>(this);
  calls: { task: TaskName; request: ITaskRequest; signal?: AbortSignal }[] = [];
  tokens: [string, number][] = [];
  result: any = { text: '', truncated: false };
  error: Error | null = null;
  /** resolves the pending run (tests can hold the generation open) */
  hold: Promise<void> | null = null;

  async load(): Promise<any> {
    return null;
  }

  async unload(): Promise<any> {
    return null;
  }

  async run(
    task: TaskName,
    request: ITaskRequest,
    callbacks: IStreamCallbacks = {}
  ): Promise<any> {
    this.calls.push({ task, request, signal: callbacks.signal });
    const aborted = () => {
      const error = new Error('aborted');
      error.name = 'AbortError';
      return error;
    };
    for (const [text, index] of this.tokens) {
      await Promise.resolve();
      if (callbacks.signal?.aborted) {
        throw aborted();
      }
      callbacks.onToken?.(text, index);
    }
    if (this.hold) {
      await this.hold;
    }
    if (callbacks.signal?.aborted) {
      throw aborted();
    }
    if (this.error) {
      throw this.error;
    }
    return this.result;
  }
}

function setup(kind: EditorKind | null = 'markdown-cell') {
  const galactica = new FakeGalactica();
  const provider = new GalacticaInlineProvider(
    galactica as unknown as IGalactica,
    () => kind
  );
  return { galactica, provider };
}

const automatic = {
  widget: new Widget(),
  triggerKind: InlineCompletionTriggerKind.Automatic
};

async function drain(
  provider: GalacticaInlineProvider,
  token: string
): Promise<IInlineCompletionItem[]> {
  const items: IInlineCompletionItem[] = [];
  for await (const { response } of provider.stream(token)) {
    items.push(response);
  }
  return items;
}

describe('enabledFor', () => {
  const settings = DEFAULT_SETTINGS.inlineCompletion;
  it('follows the per cell type settings', () => {
    expect(enabledFor('markdown-cell', settings)).toBe(true);
    expect(enabledFor('markdown-file', settings)).toBe(true);
    expect(enabledFor('code-cell', settings)).toBe(false);
    expect(enabledFor('code-cell', { ...settings, codeCells: true })).toBe(
      true
    );
    expect(enabledFor('raw-cell', settings)).toBe(false);
    expect(enabledFor(null, settings)).toBe(false);
  });
});

describe('provider settings', () => {
  it('leaves the switch and the debounce to the Inline Completer, with its defaults', () => {
    const { provider } = setup();
    expect(provider.schema.default).toEqual({
      enabled: true,
      debouncerDelay: 300,
      timeout: DEFAULT_SETTINGS.inlineCompletion.timeoutMs,
      autoFillInMiddle: true
    });
    expect(provider.providerSettings).toEqual(PROVIDER_DEFAULTS);
    expect('enabled' in DEFAULT_SETTINGS.inlineCompletion).toBe(false);
    expect('debounceMs' in DEFAULT_SETTINGS.inlineCompletion).toBe(false);
  });

  it('configure() stores the settings JupyterLab passes, defaults filled in', () => {
    const { provider } = setup();
    provider.configure({ enabled: true, debouncerDelay: 50, timeout: 900 });
    expect(provider.providerSettings).toEqual({
      enabled: true,
      debouncerDelay: 50,
      timeout: 900,
      autoFillInMiddle: true
    });
    provider.configure({ enabled: false, debouncerDelay: 0 });
    expect(provider.providerSettings.enabled).toBe(false);
    expect(provider.providerSettings.debouncerDelay).toBe(0);
    expect(provider.providerSettings.timeout).toBe(PROVIDER_DEFAULTS.timeout);
  });
});

describe('finishSuggestion', () => {
  it('closes a reference opened with [@ without a leading space', () => {
    const trigger = detectTrigger('Models [@');
    expect(
      finishSuggestion(
        ' Attention is all you need, Vaswani[END_REF]x',
        trigger,
        false,
        ']'
      )
    ).toBe('Attention is all you need, Vaswani]');
  });

  it('keeps GALACTICA markup after [START_REF]', () => {
    const trigger = detectTrigger('Models [START_REF]');
    expect(
      finishSuggestion(' A title, Smith[END_REF]', trigger, false, '[END_REF]')
    ).toBe(' A title, Smith[END_REF]');
  });

  it('does not double a typed space', () => {
    const trigger = detectTrigger('The transformer ');
    expect(finishSuggestion(' model works\n\nmore', trigger, true, '')).toBe(
      'model works'
    );
  });

  it('gives nothing for an empty reference', () => {
    const trigger = detectTrigger('Models [@');
    expect(finishSuggestion('[END_REF]', trigger, false, ']')).toBe('');
  });
});

describe('GalacticaInlineProvider', () => {
  it('streams prose, cut at the end of the paragraph, and stops the model there', async () => {
    const { galactica, provider } = setup();
    galactica.tokens = [
      [' and', 0],
      [' more text', 0],
      ['.\n\nNext', 0],
      [' paragraph', 0]
    ];
    const list = await provider.fetch(
      { text: 'Some text', offset: 9 },
      automatic
    );
    expect(list.items).toHaveLength(1);
    expect(list.items[0].isIncomplete).toBe(true);
    const items = await drain(provider, list.items[0].token!);
    expect(items.map(i => i.insertText)).toEqual([
      ' and',
      ' and more text',
      ' and more text.'
    ]);
    expect(items[items.length - 1].isIncomplete).toBe(false);
    expect(galactica.calls[0].task).toBe('complete');
    expect(galactica.calls[0].request.text).toBe('Some text');
    expect(galactica.calls[0].signal!.aborted).toBe(true);
  });

  it('sends the prompt without the typed trailing space', async () => {
    const { galactica, provider } = setup();
    galactica.tokens = [[' next', 0]];
    const list = await provider.fetch(
      { text: 'Some text ', offset: 10 },
      automatic
    );
    const items = await drain(provider, list.items[0].token!);
    expect(galactica.calls[0].request.text).toBe('Some text');
    expect(items[items.length - 1].insertText).toBe('next');
  });

  it('suggests several references after [@, closed by ]', async () => {
    const { galactica, provider } = setup();
    galactica.tokens = [
      [' Attention is all you need, Ashish Vaswani[END_REF]', 0],
      [' BERT, Jacob Devlin', 1],
      [' Attention is all you need, Ashish Vaswani', 2]
    ];
    galactica.result = {
      suggestions: [
        { text: 'Attention is all you need, Ashish Vaswani' },
        { text: 'BERT, Jacob Devlin' },
        { text: 'Attention is all you need, Ashish Vaswani' }
      ],
      truncated: false
    };
    const list = await provider.fetch(
      { text: 'Transformers [@', offset: 15 },
      automatic
    );
    // one slot per suggestion, each streamed
    expect(list.items).toHaveLength(3);
    expect(list.items.every(i => i.isIncomplete)).toBe(true);
    const streams = await Promise.all(
      list.items.map(i => drain(provider, i.token!))
    );
    // the greedy suggestion streams first, as fast as prose ...
    expect(galactica.calls[0].task).toBe('cite');
    expect(galactica.calls[0].request).toEqual({
      text: 'Transformers [START_REF]',
      n: 1
    });
    expect(streams[0][0]).toEqual(
      expect.objectContaining({
        insertText: 'Attention is all you need, Ashish Vaswani]',
        isIncomplete: true
      })
    );
    // ... then the alternatives, by beam search (one spare beam for a duplicate)
    expect(galactica.calls[1].request).toEqual({
      text: 'Transformers [START_REF]',
      n: 4
    });
    expect(streams.map(items => items[items.length - 1].insertText)).toEqual([
      'Attention is all you need, Ashish Vaswani]',
      'BERT, Jacob Devlin]',
      ''
    ]);
    expect(streams.every(items => !items[items.length - 1].isIncomplete)).toBe(
      true
    );
  });

  it('does not add ] when the editor closed the bracket already', async () => {
    const { galactica, provider } = setup();
    galactica.tokens = [[' A paper, Smith', 0]];
    galactica.result = {
      suggestions: [{ text: 'A paper, Smith' }],
      truncated: false
    };
    galactica.settings.citationCount = 1;
    const list = await provider.fetch(
      { text: 'See [@]', offset: 6 },
      automatic
    );
    const items = await drain(provider, list.items[0].token!);
    expect(items[items.length - 1].insertText).toBe('A paper, Smith');
    expect(galactica.calls).toHaveLength(1); // no alternatives asked for
  });

  it('aborts a request superseded by further typing', async () => {
    const { galactica, provider } = setup();
    let release: () => void = () => undefined;
    galactica.hold = new Promise(resolve => (release = resolve));
    const first = await provider.fetch({ text: 'One', offset: 3 }, automatic);
    const firstItems = drain(provider, first.items[0].token!);
    await Promise.resolve();
    const second = await provider.fetch(
      { text: 'One t', offset: 5 },
      automatic
    );
    expect(galactica.calls[0].signal!.aborted).toBe(true);
    expect(galactica.calls[1].signal!.aborted).toBe(false);
    release();
    const items = await firstItems;
    expect(items[items.length - 1].isIncomplete).toBe(false);
    galactica.hold = null;
    await drain(provider, second.items[0].token!);
  });

  it('drops the suggestion in flight when the user unloads the model, and starts none meanwhile', async () => {
    const { galactica, provider } = setup();
    let release: () => void = () => undefined;
    galactica.hold = new Promise(resolve => (release = resolve));
    galactica.tokens = [[' quarks', 0]];
    const list = await provider.fetch(
      { text: 'The proton is made of', offset: 21 },
      automatic
    );
    const streamed = drain(provider, list.items[0].token!);
    await new Promise(resolve => setTimeout(resolve, 0));
    galactica.unloading = true;
    galactica.unloadStarted.emit();
    expect(galactica.calls[0].signal!.aborted).toBe(true);
    const items = await streamed;
    // what had streamed is taken back: the last word is an empty suggestion
    expect(items.map(item => item.insertText)).toEqual([' quarks', '']);
    expect(items[items.length - 1].isIncomplete).toBe(false);
    release();
    galactica.hold = null;
    for (const triggerKind of [
      InlineCompletionTriggerKind.Automatic,
      InlineCompletionTriggerKind.Invoke
    ]) {
      const during = await provider.fetch(
        { text: 'The proton is made of quarks', offset: 28 },
        { ...automatic, triggerKind }
      );
      expect(during.items).toEqual([]);
    }
    expect(galactica.calls).toHaveLength(1);
  });

  it('does not debounce itself: every fetch reaches the model, only the last runs on', async () => {
    const { galactica, provider } = setup();
    const configured = { debouncerDelay: 5000 };
    provider.configure(configured); // JupyterLab waits this long, not the provider
    let release: () => void = () => undefined;
    galactica.hold = new Promise(resolve => (release = resolve));
    galactica.tokens = [[' x', 0]];
    const lists = [
      await provider.fetch({ text: 'a', offset: 1 }, automatic),
      await provider.fetch({ text: 'ab', offset: 2 }, automatic),
      await provider.fetch({ text: 'abc', offset: 3 }, automatic)
    ];
    expect(lists.map(list => list.items.length)).toEqual([1, 1, 1]);
    expect(galactica.calls.map(c => c.request.text)).toEqual([
      'a',
      'ab',
      'abc'
    ]);
    expect(galactica.calls.map(c => c.signal!.aborted)).toEqual([
      true,
      true,
      false
    ]);
    release();
    galactica.hold = null;
    for (const list of lists) {
      await drain(provider, list.items[0].token!);
    }
  });

  it('shows an error inline instead of a pop-up', async () => {
    const { galactica, provider } = setup();
    galactica.error = new Error('the model server failed: boom');
    const list = await provider.fetch({ text: 'Text', offset: 4 }, automatic);
    const items = await drain(provider, list.items[0].token!);
    expect(items[items.length - 1].error?.message).toBe(
      'the model server failed: boom'
    );
  });

  it('stays quiet where it is off, mid-line, or while the model is not ready', async () => {
    const code = setup('code-cell');
    expect(
      (await code.provider.fetch({ text: '# a', offset: 3 }, automatic)).items
    ).toEqual([]);

    const { galactica, provider } = setup();
    expect(
      (await provider.fetch({ text: 'Some text here', offset: 4 }, automatic))
        .items
    ).toEqual([]);
    galactica.status = { ready: false };
    expect(
      (await provider.fetch({ text: 'Some text', offset: 9 }, automatic)).items
    ).toEqual([]);
    expect(galactica.calls).toEqual([]);
  });

  it('completes comments in code cells when enabled', async () => {
    const { galactica, provider } = setup('code-cell');
    galactica.settings.inlineCompletion.codeCells = true;
    galactica.tokens = [[' the loss\nx = 1', 0]];
    expect(
      (await provider.fetch({ text: 'x = 1', offset: 5 }, automatic)).items
    ).toEqual([]);
    const list = await provider.fetch(
      { text: '# compute', offset: 9 },
      automatic
    );
    const items = await drain(provider, list.items[0].token!);
    expect(items[items.length - 1].insertText).toBe(' the loss');
  });
});
