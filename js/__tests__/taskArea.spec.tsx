import { Clipboard } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';
import * as React from 'react';

import { IEditorContext } from '../editor';
import {
  canInsert,
  copyText,
  ResultView,
  runSidebarTask,
  SidebarResult
} from '../panel/results';
import { TaskArea, taskInput, taskRequest } from '../panel/taskArea';
import { ITaskHandle, useTask } from '../panel/useTask';
import { DEFAULT_SETTINGS } from '../settings';
import { act, click, deferred, IMounted, mount, setValue } from './dom';
import { ScriptedGalactica } from './galactica';

const trans = nullTranslator.load('galactica_ext');

/** What Copy sent to the system clipboard (jsdom has none: Galata checks the real one). */
let clipboard: string | null = null;
beforeAll(() => {
  jest
    .spyOn(Clipboard, 'copyToSystem')
    .mockImplementation(data => void (clipboard = String(data)));
});
afterAll(() => jest.restoreAllMocks());

/** An editor snapshot: only its text and selection are read by these functions. */
function context(text: string, start: number, end = start): IEditorContext {
  const snapshot: Partial<IEditorContext> = {
    kind: 'markdown-file',
    notebook: null,
    cell: null,
    text,
    start,
    end
  };
  return snapshot as IEditorContext;
}

describe('taskInput', () => {
  const text = 'Attention is all you need. Transformers';
  it('reads the question for Ask, else the selection', () => {
    expect(taskInput('ask', context(text, 0, 9), '  Why? ', 100)).toBe('Why?');
    expect(taskInput('ask', context(text, 0, 9), ' ', 100)).toBe('Attention');
    expect(taskInput('ask', null, '', 100)).toBe('');
  });

  it('cites the selection, else the text before the cursor', () => {
    expect(taskInput('cite', context(text, 27, 39), '', 100)).toBe(
      'Transformers'
    );
    expect(taskInput('cite', context(text, 26), '', 100)).toBe(
      'Attention is all you need.'
    );
  });

  it('works on the selection, else the whole text, for the other tasks', () => {
    expect(taskInput('equation', context(text, 0, 9), '', 100)).toBe(
      'Attention'
    );
    expect(taskInput('summarise', context(text, 5), '', 100)).toBe(text);
    expect(taskInput('summarise', null, '', 100)).toBe('');
  });
});

describe('taskRequest', () => {
  const settings = { ...DEFAULT_SETTINGS, maxTokens: 64, temperature: 0.7 };
  it('asks Cite for the set number of suggestions and nothing else', () => {
    expect(taskRequest('cite', 'x', { ...settings, citationCount: 5 })).toEqual(
      { text: 'x', n: 5 }
    );
  });
  it('sends the temperature with Ask only', () => {
    expect(taskRequest('ask', 'x', settings)).toEqual({
      text: 'x',
      max_tokens: 64,
      temperature: 0.7
    });
    expect(taskRequest('equation', 'x', settings)).toEqual({
      text: 'x',
      max_tokens: 64
    });
  });
});

describe('results', () => {
  const cite: SidebarResult = {
    task: 'cite',
    truncated: false,
    suggestions: [
      {
        text: 'Attention is all you need, Vaswani',
        title: 'Attention is all you need',
        author: 'Vaswani'
      },
      { text: 'BERT, Devlin', title: 'BERT', author: 'Devlin' }
    ]
  };
  const equation: SidebarResult = {
    task: 'equation',
    latex: 'E = mc^2',
    truncated: false
  };
  const answer: SidebarResult = { task: 'ask', text: ' ', truncated: true };

  it('copies the chosen reference, the equation as markdown, the text', () => {
    expect(copyText(cite, 1)).toBe('BERT, Devlin');
    expect(copyText(equation, 0)).toBe('$$\nE = mc^2\n$$');
    expect(copyText({ ...answer, text: 'Yes.' }, 0)).toBe('Yes.');
  });

  it('has nothing to insert without a suggestion or text', () => {
    expect(canInsert(cite, 1)).toBe(true);
    expect(canInsert({ ...cite, suggestions: [] }, 0)).toBe(false);
    expect(canInsert(equation, 0)).toBe(true);
    expect(canInsert(answer, 0)).toBe(false);
  });

  it('tags a run result with its task', async () => {
    const galactica = new ScriptedGalactica();
    const running = runSidebarTask(galactica, 'equation', { text: 'x' }, {});
    galactica.last.resolve({ latex: 'x^2', truncated: false });
    expect(await running).toEqual({
      task: 'equation',
      latex: 'x^2',
      truncated: false
    });
    expect(galactica.last.task).toBe('equation');
  });

  it('lists citations to choose from, each with a link to check it', async () => {
    const chosen: number[] = [];
    const view = await mount(
      <ResultView
        result={cite}
        chosen={0}
        onChoose={i => chosen.push(i)}
        typesetter={null}
        trans={trans}
      />
    );
    const items = view.container.querySelectorAll('li[role="option"]');
    expect(items).toHaveLength(2);
    expect(items[0].getAttribute('aria-selected')).toBe('true');
    expect(items[1].textContent).toContain('BERT, Devlin');
    expect(items[1].querySelector('a')!.href).toContain(
      encodeURIComponent('BERT, Devlin')
    );
    await click(items[1]);
    expect(chosen).toContain(1);
    await view.unmount();
  });

  it('shows an equation as source and as a preview', async () => {
    const view = await mount(
      <ResultView
        result={equation}
        chosen={0}
        onChoose={() => undefined}
        typesetter={null}
        trans={trans}
      />
    );
    expect(view.container.querySelector('code')!.textContent).toBe('E = mc^2');
    expect(
      view.container.querySelector('.jp-galactica-equation-preview')!
        .textContent
    ).toBe('$$E = mc^2$$');
    await view.unmount();
  });
});

/** A component that exposes the hook's handle to the test. */
function Harness(props: { onHandle: (h: ITaskHandle<string>) => void }) {
  const handle = useTask<string>();
  props.onHandle(handle);
  return <div className="state">{JSON.stringify(handle.state)}</div>;
}

describe('useTask', () => {
  let handle: ITaskHandle<string>;
  let view: IMounted;
  beforeEach(async () => {
    view = await mount(<Harness onHandle={h => (handle = h)} />);
  });
  afterEach(() => view.unmount());

  it('streams the first choice, then keeps the result', async () => {
    const done = deferred<string>();
    let send: (text: string, index: number) => void = () => undefined;
    let finished: Promise<void> = Promise.resolve();
    await act(() => {
      finished = handle.start(callbacks => {
        send = callbacks.onToken!;
        return done.promise;
      });
    });
    expect(handle.state.phase).toBe('running');
    await act(() => {
      send('Hello', 0);
      send('other choice', 1);
      send(' world', 0);
    });
    expect(handle.state.streamed).toBe('Hello world');
    await act(async () => {
      done.resolve('Hello world.');
      await finished;
    });
    expect(handle.state).toMatchObject({
      phase: 'done',
      result: 'Hello world.',
      error: null
    });
  });

  it('drops what a superseded run sends late, and stops the old one', async () => {
    const first = deferred<string>();
    let firstSignal: AbortSignal | undefined;
    let firstToken: (text: string, index: number) => void = () => undefined;
    await act(() => {
      void handle.start(callbacks => {
        firstSignal = callbacks.signal;
        firstToken = callbacks.onToken!;
        return first.promise;
      });
    });
    const second = deferred<string>();
    await act(() => void handle.start(() => second.promise));
    expect(firstSignal!.aborted).toBe(true);
    await act(async () => {
      firstToken('late', 0);
      first.resolve('old');
      await first.promise;
    });
    expect(handle.state).toMatchObject({ phase: 'running', streamed: '' });
    await act(async () => {
      second.resolve('new');
      await second.promise;
    });
    expect(handle.state.result).toBe('new');
  });

  it('tells a stop from a failure', async () => {
    await act(
      () =>
        void handle.start(
          callbacks =>
            new Promise((_, reject) =>
              callbacks.signal!.addEventListener('abort', () => {
                const error = new Error('aborted');
                error.name = 'AbortError';
                reject(error);
              })
            )
        )
    );
    await act(() => handle.stop());
    expect(handle.state).toMatchObject({ phase: 'stopped', error: null });
    await act(() =>
      handle.start(() => Promise.reject(new Error('the model server failed')))
    );
    expect(handle.state).toMatchObject({
      phase: 'failed',
      error: 'the model server failed'
    });
  });
});

describe('TaskArea', () => {
  let galactica: ScriptedGalactica;
  let view: IMounted;
  const $ = <T extends Element = HTMLElement>(selector: string) =>
    view.container.querySelector<T>(selector);

  beforeEach(async () => {
    galactica = new ScriptedGalactica({ maxTokens: 50, temperature: 0.2 });
    view = await mount(
      <TaskArea
        galactica={galactica}
        currentWidget={() => null}
        typesetter={null}
        trans={trans}
      />
    );
  });
  afterEach(() => view.unmount());

  it('asks a question, streams the answer, shows it with the caveat and copies it', async () => {
    await setValue(
      $<HTMLInputElement>('.jp-galactica-question'),
      'What is a transformer?'
    );
    await click($('.jp-galactica-task-ask'));
    expect(galactica.last.task).toBe('ask');
    expect(galactica.last.request).toEqual({
      text: 'What is a transformer?',
      max_tokens: 50,
      temperature: 0.2
    });
    expect($<HTMLButtonElement>('.jp-galactica-task-cite')!.disabled).toBe(
      true
    );
    expect($('.jp-galactica-stop')).not.toBeNull();
    await act(() => galactica.last.callbacks.onToken!('A model', 0));
    expect($('.jp-galactica-stream')!.textContent).toBe('A model');
    expect($('.jp-galactica-caveat')).toBeNull();

    await act(async () =>
      galactica.last.resolve({
        text: 'A model with attention.',
        truncated: true
      })
    );
    expect($('.jp-galactica-stream')).toBeNull();
    expect($('.jp-galactica-stop')).toBeNull();
    expect($('.jp-galactica-text')!.textContent).toBe(
      'A model with attention.'
    );
    expect(view.container.textContent).toContain('cut to fit');
    expect($('.jp-galactica-caveat')!.textContent).toContain(
      'GALACTICA can make things up'
    );
    expect($<HTMLButtonElement>('.jp-galactica-task-cite')!.disabled).toBe(
      false
    );

    await click($('.jp-galactica-copy'));
    expect(clipboard).toBe('A model with attention.');
    expect($('.jp-galactica-copy')!.textContent).toBe('Copied');
  });

  it('says what to type when the question is empty, and runs nothing', async () => {
    await click($('.jp-galactica-task-ask'));
    expect(galactica.runs).toHaveLength(0);
    expect($('.jp-galactica-error')!.textContent).toBe(
      'Type a question (or select one in a cell).'
    );
  });

  it('needs an editor for the other tasks', async () => {
    await click($('.jp-galactica-task-cite'));
    expect(galactica.runs).toHaveLength(0);
    expect($('.jp-galactica-result')!.getAttribute('data-task')).toBe('cite');
    expect($('.jp-galactica-error')!.textContent).toContain('Open a notebook');
  });

  it('stops a run on Stop and shows the server error of a failed one', async () => {
    await setValue($<HTMLInputElement>('.jp-galactica-question'), 'Why?');
    await click($('.jp-galactica-task-ask'));
    const signal = galactica.last.callbacks.signal!;
    await click($('.jp-galactica-stop'));
    expect(signal.aborted).toBe(true);
    expect($('.jp-galactica-error')!.textContent).toBe('Stopped.');

    await click($('.jp-galactica-task-ask'));
    await act(() =>
      galactica.last.reject(new Error('no model is loaded: load one'))
    );
    expect($('.jp-galactica-error')!.textContent).toBe(
      'no model is loaded: load one'
    );
    expect($('.jp-galactica-insert')).toBeNull();
  });

  it('asks for the cursor when there is nowhere to insert', async () => {
    await setValue($<HTMLInputElement>('.jp-galactica-question'), 'Why?');
    await click($('.jp-galactica-task-ask'));
    await act(() =>
      galactica.last.resolve({ text: 'Because.', truncated: false })
    );
    await click($('.jp-galactica-insert'));
    expect(view.container.textContent).toContain(
      'Put the cursor where the result goes.'
    );
  });
});
