/**
 * The GALACTICA sidebar: model status and picker, and a task area over the active cell.
 */
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { ILatexTypesetter } from '@jupyterlab/rendermime';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import {
  equationMarkdown,
  insertBelow,
  insertCitation,
  insertEquation,
  insertSummary,
  taskText
} from './actions';
import {
  getEditorContext,
  IEditorContext,
  refreshContext,
  selectedText,
  textBeforeCursor
} from './editor';
import { trans } from './i18n';
import { galacticaIcon } from './icons';
import { verifyUrl } from './references';
import { IGalactica } from './service';
import {
  ICiteResult,
  IEquationResult,
  IModelStatus,
  ITextResult
} from './tokens';

/**
 * The five GALACTICA sizes.
 */
export const SIZES = ['125m', '1.3b', '6.7b', '30b', '120b'];

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
        {error
          ? trans().__('Cannot reach the server: %1', error)
          : trans().__('Reading the status...')}
      </div>
    );
  }
  const progress = status.progress;
  return (
    <div className="jp-galactica-status" data-state={status.state}>
      <div className="jp-galactica-status-state">
        <span className="jp-galactica-dot" />
        <span className="jp-galactica-state-label">
          {trans().__(status.state)}
        </span>
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
        <dt>{trans().__('Model')}</dt>
        <dd className="jp-galactica-model" title={status.model}>
          {status.model}
        </dd>
        <dt>{trans().__('Backend')}</dt>
        <dd title={status.url ?? ''}>
          {status.backend}
          {status.url ? ` (${status.url})` : ''}
        </dd>
        <dt>{trans().__('Device')}</dt>
        <dd>{status.device ?? '-'}</dd>
        <dt>{trans().__('Dtype')}</dt>
        <dd>{status.dtype ?? '-'}</dd>
        <dt>{trans().__('Memory')}</dt>
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
 * The model picker: a size, a hub id or local directory, or a remote server.
 */
export function ModelPicker(props: {
  galactica: IGalactica;
  status: IModelStatus | null;
  onError: (message: string) => void;
}): JSX.Element {
  const { galactica, status } = props;
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

  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await fn();
    } catch (error) {
      props.onError((error as Error).message ?? String(error));
    } finally {
      setBusy(false);
    }
  };
  const load = () =>
    act(() =>
      choice === 'remote'
        ? galactica.load({ url })
        : galactica.load({
            model: choice === 'custom' ? custom : choice,
            dtype,
            ...(status?.backend === 'remote' ? { url: '' } : {})
          })
    );
  const loaded = status && status.state !== 'stopped';
  return (
    <fieldset className="jp-galactica-picker">
      <legend>{trans().__('Model')}</legend>
      <label>
        <span>{trans().__('Size or source')}</span>
        <select
          className="jp-galactica-model-select"
          value={choice}
          onChange={e => {
            touched.current = true;
            setChoice(e.target.value);
          }}
        >
          {SIZES.map(size => (
            <option key={size} value={size}>
              {`galactica-${size}`}
            </option>
          ))}
          <option value="custom">
            {trans().__('Hub id or local directory...')}
          </option>
          <option value="remote">
            {trans().__('Remote server (OpenAI-compatible)...')}
          </option>
        </select>
      </label>
      {choice === 'custom' && (
        <label>
          <span>{trans().__('Hub id or directory')}</span>
          <input
            className="jp-galactica-model-custom"
            type="text"
            placeholder={trans().__(
              'facebook/galactica-1.3b or /path/to/model'
            )}
            value={custom}
            onChange={e => {
              touched.current = true;
              setCustom(e.target.value);
            }}
          />
        </label>
      )}
      {choice === 'remote' && (
        <label>
          <span>{trans().__('Server URL')}</span>
          <input
            className="jp-galactica-model-url"
            type="url"
            placeholder={trans().__('http://host:8000/v1')}
            value={url}
            onChange={e => setUrl(e.target.value)}
          />
        </label>
      )}
      {choice !== 'remote' && (
        <label>
          <span>{trans().__('Dtype')}</span>
          <select value={dtype} onChange={e => setDtype(e.target.value)}>
            {['auto', 'float32', 'bfloat16', 'float16'].map(d => (
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
          disabled={
            busy ||
            (choice === 'custom' && !custom.trim()) ||
            (choice === 'remote' && !url.trim())
          }
          onClick={() => void load()}
        >
          {trans().__('Load')}
        </button>
        <button
          className="jp-mod-styled jp-galactica-unload"
          disabled={busy || !loaded}
          onClick={() => void act(() => galactica.unload())}
        >
          {trans().__('Unload')}
        </button>
      </div>
    </fieldset>
  );
}

/**
 * An equation rendered by the app's LaTeX typesetter.
 */
export function EquationPreview(props: {
  latex: string;
  typesetter: ILatexTypesetter | null;
}): JSX.Element {
  const ref = React.useRef<HTMLDivElement>(null);
  React.useEffect(() => {
    const node = ref.current;
    if (!node) {
      return;
    }
    node.textContent = `$$${props.latex}$$`;
    if (props.typesetter) {
      void Promise.resolve(props.typesetter.typeset(node)).catch(() => {
        /* the source stays visible */
      });
    }
  }, [props.latex, props.typesetter]);
  return <div className="jp-galactica-equation-preview" ref={ref} />;
}

/**
 * Labels of the sidebar's tasks.
 */
const TASK_LABELS: Record<string, string> = {
  cite: 'Cite',
  equation: 'Equation',
  summarise: 'Summarise',
  ask: 'Ask'
};

type SidebarTask = 'cite' | 'equation' | 'summarise' | 'ask';

interface ITaskState {
  task: SidebarTask;
  running: boolean;
  streamed: string;
  result: ICiteResult | IEquationResult | ITextResult | null;
  error: string | null;
  context: IEditorContext | null;
}

/**
 * The task area: runs a task on the selection or the active cell, streams it, and offers
 * Insert and Copy.
 */
export function TaskArea(props: {
  galactica: IGalactica;
  currentWidget: () => Widget | null;
  typesetter: ILatexTypesetter | null;
}): JSX.Element {
  const { galactica } = props;
  const [state, setState] = React.useState<ITaskState | null>(null);
  const [question, setQuestion] = React.useState('');
  const [chosen, setChosen] = React.useState(0);
  const controller = React.useRef<AbortController | null>(null);

  const run = async (task: SidebarTask) => {
    const context = getEditorContext(props.currentWidget());
    let text = '';
    if (task === 'ask') {
      text = question.trim() || (context ? selectedText(context) : '');
    } else if (context) {
      text =
        task === 'cite'
          ? selectedText(context) ||
            textBeforeCursor(
              { ...context, end: context.start },
              galactica.settings.inlineCompletion.contextChars
            )
          : taskText(context);
    }
    if (!text.trim()) {
      setState({
        task,
        running: false,
        streamed: '',
        result: null,
        context,
        error:
          task === 'ask'
            ? trans().__('Type a question (or select one in a cell).')
            : trans().__(
                'Open a notebook or markdown file and put the cursor in the text to work on.'
              )
      });
      return;
    }
    controller.current?.abort();
    const abort = new AbortController();
    controller.current = abort;
    setChosen(0);
    setState({
      task,
      running: true,
      streamed: '',
      result: null,
      error: null,
      context
    });
    const settings = galactica.settings;
    try {
      const result = await galactica.run(
        task,
        task === 'cite'
          ? { text, n: settings.citationCount }
          : {
              text,
              max_tokens: settings.maxTokens,
              ...(task === 'ask' ? { temperature: settings.temperature } : {})
            },
        {
          signal: abort.signal,
          onToken: (token, index) => {
            if (index === 0) {
              setState(s => (s ? { ...s, streamed: s.streamed + token } : s));
            }
          }
        }
      );
      setState(s => (s ? { ...s, running: false, result } : s));
    } catch (error) {
      const aborted = (error as Error).name === 'AbortError';
      setState(s =>
        s
          ? {
              ...s,
              running: false,
              error: aborted
                ? trans().__('Stopped.')
                : ((error as Error).message ?? String(error))
            }
          : s
      );
    }
  };

  const target = () =>
    state?.context
      ? refreshContext(state.context)
      : getEditorContext(props.currentWidget());

  const insert = () => {
    if (!state?.result) {
      return;
    }
    const context = target();
    if (!context) {
      setState({
        ...state,
        error: trans().__('Put the cursor where the result goes.')
      });
      return;
    }
    switch (state.task) {
      case 'cite': {
        const suggestion = (state.result as ICiteResult).suggestions[chosen];
        if (suggestion) {
          insertCitation(galactica, context, suggestion);
        }
        break;
      }
      case 'equation':
        insertEquation(context, (state.result as IEquationResult).latex);
        break;
      case 'summarise':
        insertSummary(context, (state.result as ITextResult).text);
        break;
      case 'ask':
        insertBelow(context, (state.result as ITextResult).text);
        break;
    }
  };

  const copy = () => {
    if (!state?.result) {
      return;
    }
    switch (state.task) {
      case 'cite': {
        const suggestion = (state.result as ICiteResult).suggestions[chosen];
        Clipboard.copyToSystem(suggestion?.text ?? '');
        break;
      }
      case 'equation':
        Clipboard.copyToSystem(
          equationMarkdown((state.result as IEquationResult).latex)
        );
        break;
      default:
        Clipboard.copyToSystem((state.result as ITextResult).text);
    }
  };

  const result = state?.result;
  return (
    <fieldset className="jp-galactica-tasks">
      <legend>{trans().__('Tasks')}</legend>
      <p className="jp-galactica-hint">
        {trans().__(
          'On the selection, or else the active cell. Cite suggests references for the text before the cursor.'
        )}
      </p>
      <div className="jp-galactica-buttons">
        {(['cite', 'equation', 'summarise'] as SidebarTask[]).map(task => (
          <button
            key={task}
            className={`jp-mod-styled jp-galactica-task-${task}`}
            disabled={state?.running}
            onClick={() => void run(task)}
          >
            {trans().__(TASK_LABELS[task])}
          </button>
        ))}
      </div>
      <div className="jp-galactica-ask">
        <input
          className="jp-galactica-question"
          type="text"
          placeholder={trans().__('Ask a question...')}
          value={question}
          onChange={e => setQuestion(e.target.value)}
          onKeyDown={e => {
            if (e.key === 'Enter') {
              void run('ask');
            }
          }}
        />
        <button
          className="jp-mod-styled jp-galactica-task-ask"
          disabled={state?.running}
          onClick={() => void run('ask')}
        >
          {trans().__('Ask')}
        </button>
      </div>
      {state && (
        <div className="jp-galactica-result" data-task={state.task}>
          <div className="jp-galactica-result-header">
            <strong>{trans().__(TASK_LABELS[state.task])}</strong>
            {state.running && (
              <button
                className="jp-mod-styled jp-mod-warn jp-galactica-stop"
                onClick={() => controller.current?.abort()}
              >
                {trans().__('Stop')}
              </button>
            )}
          </div>
          {state.running && (
            <pre className="jp-galactica-stream">{state.streamed || '...'}</pre>
          )}
          {state.error && (
            <div className="jp-galactica-error">{state.error}</div>
          )}
          {result && state.task === 'cite' && (
            <CitationList
              result={result as ICiteResult}
              chosen={chosen}
              onChoose={setChosen}
            />
          )}
          {result && state.task === 'equation' && (
            <div className="jp-galactica-equation">
              <code>{(result as IEquationResult).latex}</code>
              <EquationPreview
                latex={(result as IEquationResult).latex}
                typesetter={props.typesetter}
              />
            </div>
          )}
          {result && (state.task === 'summarise' || state.task === 'ask') && (
            <div className="jp-galactica-text">
              {(result as ITextResult).text}
            </div>
          )}
          {result && result.truncated && (
            <div className="jp-galactica-note">
              {trans().__(
                "The start of the text was cut to fit the model's context."
              )}
            </div>
          )}
          {result && (
            <div className="jp-galactica-buttons">
              <button
                className="jp-mod-styled jp-mod-accept jp-galactica-insert"
                onClick={insert}
                disabled={
                  state.task === 'cite' &&
                  (result as ICiteResult).suggestions.length === 0
                }
              >
                {trans().__('Insert')}
              </button>
              <button
                className="jp-mod-styled jp-galactica-copy"
                onClick={copy}
              >
                {trans().__('Copy')}
              </button>
            </div>
          )}
        </div>
      )}
    </fieldset>
  );
}

/**
 * Reference suggestions to choose from, with a warning and a link to check each.
 */
export function CitationList(props: {
  result: ICiteResult;
  chosen: number;
  onChoose: (index: number) => void;
}): JSX.Element {
  const { suggestions } = props.result;
  if (suggestions.length === 0) {
    return (
      <div className="jp-galactica-note">
        {trans().__('No reference suggested.')}
      </div>
    );
  }
  return (
    <div className="jp-galactica-citations">
      <ul role="listbox" aria-label={trans().__('Suggested references')}>
        {suggestions.map((s, i) => (
          <li
            key={i}
            role="option"
            aria-selected={i === props.chosen}
            className={i === props.chosen ? 'jp-mod-selected' : ''}
            onClick={() => props.onChoose(i)}
          >
            <label>
              <input
                type="radio"
                name="galactica-citation"
                checked={i === props.chosen}
                onChange={() => props.onChoose(i)}
              />
              <span className="jp-galactica-citation-text">
                <span className="jp-galactica-citation-title">{s.title}</span>
                {s.author && (
                  <span className="jp-galactica-citation-author">
                    , {s.author}
                  </span>
                )}
              </span>
            </label>
            <a href={verifyUrl(s)} target="_blank" rel="noopener noreferrer">
              {trans().__('verify')}
            </a>
          </li>
        ))}
      </ul>
      <div className="jp-galactica-note">
        {trans().__(
          'Suggested by GALACTICA: citations can be invented, more often for rare works. Check that a work exists before citing it.'
        )}
      </div>
    </div>
  );
}

/**
 * The GALACTICA panel of the left sidebar.
 */
export class GalacticaPanel extends ReactWidget {
  /**
   * Create the panel.
   *
   * @param galactica the GALACTICA service
   * @param currentWidget the main area's current widget (where tasks apply)
   * @param typesetter the app's LaTeX typesetter, for equation previews
   */
  constructor(
    readonly galactica: IGalactica,
    private readonly _currentWidget: () => Widget | null,
    private readonly _typesetter: ILatexTypesetter | null
  ) {
    super();
    this.id = 'galactica-ext-sidebar';
    this.addClass('jp-galactica-panel');
    this.title.icon = galacticaIcon;
    this.title.caption = trans().__('GALACTICA');
  }

  protected render(): JSX.Element {
    const status = this.galactica.status;
    return (
      <div className="jp-galactica-body">
        <header className="jp-galactica-header">
          {trans().__('GALACTICA')}
        </header>
        <UseSignal signal={status.changed}>
          {() => (
            <>
              <StatusView status={status.status} error={status.error} />
              <ModelPicker
                galactica={this.galactica}
                status={status.status}
                onError={message => this._showError(message)}
              />
            </>
          )}
        </UseSignal>
        <TaskArea
          galactica={this.galactica}
          currentWidget={this._currentWidget}
          typesetter={this._typesetter}
        />
      </div>
    );
  }

  private _showError(message: string): void {
    Notification.error(trans().__('GALACTICA: %1', message), {
      autoClose: 5000
    });
  }
}
