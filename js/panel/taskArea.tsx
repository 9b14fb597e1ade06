/**
 * The sidebar's task area: runs a task on the selection or the active cell, streams it,
 * shows the result and offers Insert and Copy.
 */
import { ILatexTypesetter } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { taskText } from '../actions';
import {
  getEditorContext,
  IEditorContext,
  refreshContext,
  selectedText,
  textBeforeCursor
} from '../editor';
import { IGalactica } from '../service';
import { IGalacticaSettings } from '../settings';
import { ITaskRequest } from '../tokens';
import { documentPath } from '../citations/citeHere';
import {
  canInsert,
  copyText,
  insertResult,
  ResultView,
  runSidebarTask,
  SidebarResult,
  SidebarTask,
  taskLabel
} from './results';
import { ResultActions, RunProgress } from './runView';
import { errorMessage, ITaskRunState, useTask } from './useTask';

/**
 * The text a sidebar task works on: for Ask the question (else the selection); for Cite the
 * selection, else the text before the cursor; for the others the selection, else the cell.
 */
export function taskInput(
  task: SidebarTask,
  context: IEditorContext | null,
  question: string,
  contextChars: number
): string {
  if (task === 'ask') {
    return question.trim() || (context ? selectedText(context) : '');
  }
  if (!context) {
    return '';
  }
  if (task === 'cite') {
    return (
      selectedText(context) ||
      textBeforeCursor({ ...context, end: context.start }, contextChars)
    );
  }
  return taskText(context);
}

/**
 * The request a sidebar task sends, from the settings.
 */
export function taskRequest(
  task: SidebarTask,
  text: string,
  settings: IGalacticaSettings
): ITaskRequest {
  if (task === 'cite') {
    return { text, n: settings.citationCount };
  }
  return {
    text,
    max_tokens: settings.maxTokens,
    ...(task === 'ask' ? { temperature: settings.temperature } : {})
  };
}

/**
 * A run's result block: its header with Stop, the streamed text, the error, the result
 * and its buttons.
 */
export function TaskResultBlock(props: {
  label: string;
  task: string;
  state: ITaskRunState<SidebarResult>;
  chosen: number;
  onChoose: (index: number) => void;
  onStop: () => void;
  onInsert: () => void;
  note: string | null;
  typesetter: ILatexTypesetter | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { state, trans } = props;
  const { result } = state;
  const running = state.phase === 'running';
  return (
    <div className="jp-galactica-result" data-task={props.task}>
      <div className="jp-galactica-result-header">
        <strong>{props.label}</strong>
        {running && (
          <button
            className="jp-mod-styled jp-mod-warn jp-galactica-stop"
            onClick={props.onStop}
          >
            {trans.__('Stop')}
          </button>
        )}
      </div>
      <RunProgress state={state} trans={trans} />
      {props.note && <div className="jp-galactica-error">{props.note}</div>}
      {result && (
        <ResultView
          result={result}
          chosen={props.chosen}
          onChoose={props.onChoose}
          typesetter={props.typesetter}
          trans={trans}
        />
      )}
      {result?.truncated && (
        <div className="jp-galactica-note">
          {trans.__(
            "The start of the text was cut to fit the model's context."
          )}
        </div>
      )}
      {result && (
        <ResultActions
          onInsert={props.onInsert}
          canInsert={canInsert(result, props.chosen)}
          copyText={() => copyText(result, props.chosen)}
          trans={trans}
        />
      )}
    </div>
  );
}

/**
 * The task area.
 */
export function TaskArea(props: {
  galactica: IGalactica;
  currentWidget: () => Widget | null;
  typesetter: ILatexTypesetter | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { galactica, trans } = props;
  const { state, start, stop, fail } = useTask<SidebarResult>();
  const [task, setTask] = React.useState<SidebarTask | null>(null);
  const [context, setContext] = React.useState<IEditorContext | null>(null);
  const [path, setPath] = React.useState<string | null>(null);
  const [question, setQuestion] = React.useState('');
  const [chosen, setChosen] = React.useState(0);
  const [note, setNote] = React.useState<string | null>(null);

  const run = (next: SidebarTask) => {
    const here = getEditorContext(props.currentWidget());
    const text = taskInput(
      next,
      here,
      question,
      galactica.settings.inlineCompletion.contextChars
    );
    setTask(next);
    setContext(here);
    setChosen(0);
    setNote(null);
    if (!text.trim()) {
      fail(
        next === 'ask'
          ? trans.__('Type a question (or select one in a cell).')
          : trans.__(
              'Open a notebook or markdown file and put the cursor in the text to work on.'
            )
      );
      return;
    }
    const request = taskRequest(next, text, galactica.settings);
    const where = documentPath(props.currentWidget());
    setPath(where);
    void start(callbacks =>
      runSidebarTask(galactica, next, request, callbacks, where)
    );
  };

  const insert = () => {
    if (!state.result) {
      return;
    }
    const target = context
      ? refreshContext(context)
      : getEditorContext(props.currentWidget());
    if (!target) {
      setNote(trans.__('Put the cursor where the result goes.'));
      return;
    }
    setNote(null);
    void Promise.resolve(
      insertResult(galactica, target, state.result, chosen, path)
    ).catch(reason => setNote(errorMessage(reason)));
  };

  const running = state.phase === 'running';
  return (
    <fieldset className="jp-galactica-tasks">
      <legend>{trans.__('Tasks')}</legend>
      <p className="jp-galactica-hint">
        {trans.__(
          'On the selection, or else the active cell. Cite suggests references for the text before the cursor.'
        )}
      </p>
      <div className="jp-galactica-buttons">
        {(['cite', 'equation', 'summarise'] as const).map(name => (
          <button
            key={name}
            className={`jp-mod-styled jp-galactica-task-${name}`}
            disabled={running}
            onClick={() => run(name)}
          >
            {taskLabel(name, trans)}
          </button>
        ))}
      </div>
      <div className="jp-galactica-ask">
        <input
          className="jp-galactica-question"
          type="text"
          placeholder={trans.__('Ask a question...')}
          value={question}
          onChange={e => setQuestion(e.target.value)}
          onKeyDown={e => {
            if (e.key === 'Enter' && !running) {
              run('ask');
            }
          }}
        />
        <button
          className="jp-mod-styled jp-galactica-task-ask"
          disabled={running}
          onClick={() => run('ask')}
        >
          {trans.__('Ask')}
        </button>
      </div>
      {task && state.phase !== 'idle' && (
        <TaskResultBlock
          label={taskLabel(task, trans)}
          task={task}
          state={state}
          chosen={chosen}
          onChoose={setChosen}
          onStop={stop}
          onInsert={insert}
          note={note}
          typesetter={props.typesetter}
          trans={trans}
        />
      )}
    </fieldset>
  );
}
