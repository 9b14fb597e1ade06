/**
 * The sidebar's prompt library: pick a GALACTICA template, fill its fields, see and edit the
 * filled prompt, run it streamed, and insert or copy the result.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { insertBelow } from '../actions';
import { getEditorContext } from '../editor';
import { IGalactica } from '../service';
import { IPromptCatalog, IPromptResult, IPromptTemplate } from '../tokens';
import {
  outcomeMarkdown,
  promptOutcome,
  PromptOutcomeView
} from './promptResult';
import { ResultActions, RunProgress } from './runView';
import { errorMessage, useTask } from './useTask';

/**
 * The values a template starts with: its examples.
 */
export function exampleValues(
  template: IPromptTemplate
): Record<string, string> {
  return Object.fromEntries(template.fields.map(f => [f.name, f.example]));
}

/**
 * The fields of a template as inputs (sequences on one line, text in a small area).
 */
function FieldInputs(props: {
  template: IPromptTemplate;
  values: Record<string, string>;
  onChange: (name: string, value: string) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { template, values, trans } = props;
  return (
    <>
      {template.fields.map(field => (
        <label key={field.name}>
          <span>
            {field.required
              ? field.label
              : trans.__('%1 (optional)', field.label)}
          </span>
          {field.kind === 'text' ? (
            <textarea
              className="jp-galactica-prompt-field"
              data-field={field.name}
              rows={2}
              value={values[field.name] ?? ''}
              onChange={e => props.onChange(field.name, e.target.value)}
            />
          ) : (
            <input
              className="jp-galactica-prompt-field"
              data-field={field.name}
              type="text"
              spellCheck={false}
              value={values[field.name] ?? ''}
              onChange={e => props.onChange(field.name, e.target.value)}
            />
          )}
        </label>
      ))}
    </>
  );
}

/**
 * The prompt library.
 */
export function PromptLibrary(props: {
  galactica: IGalactica;
  currentWidget: () => Widget | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { galactica, trans } = props;
  const [catalog, setCatalog] = React.useState<IPromptCatalog | null>(null);
  const [listError, setListError] = React.useState<string | null>(null);
  const [name, setName] = React.useState('');
  const [values, setValues] = React.useState<Record<string, string>>({});
  const [prompt, setPrompt] = React.useState<string | null>(null);
  const [fillError, setFillError] = React.useState<string | null>(null);
  const [note, setNote] = React.useState<string | null>(null);
  const { state, start, stop } = useTask<IPromptResult>();

  React.useEffect(() => {
    let live = true;
    galactica.prompts().then(
      found => {
        if (live) {
          setCatalog(found);
          if (found.templates.length) {
            choose(found.templates[0]);
          }
        }
      },
      reason => live && setListError(errorMessage(reason))
    );
    return () => {
      live = false;
    };
  }, []);

  const template = catalog?.templates.find(t => t.name === name) ?? null;
  const choose = (next: IPromptTemplate) => {
    setName(next.name);
    setValues(exampleValues(next));
    setPrompt(null);
    setFillError(null);
  };

  const fill = async () => {
    if (!template) {
      return;
    }
    setFillError(null);
    try {
      setPrompt(await galactica.fillPrompt(template.name, values));
    } catch (error) {
      setPrompt(null);
      setFillError(errorMessage(error));
    }
  };

  const run = () => {
    if (template && prompt !== null) {
      setNote(null);
      const runName = template.name;
      void start(callbacks =>
        galactica.runPrompt(runName, { prompt }, callbacks)
      );
    }
  };

  const outcome =
    template && state.result ? promptOutcome(template, state.result) : null;
  const insert = () => {
    const context = getEditorContext(props.currentWidget());
    if (!outcome || !context) {
      setNote(trans.__('Put the cursor where the result goes.'));
      return;
    }
    insertBelow(context, outcomeMarkdown(outcome));
  };

  const running = state.phase === 'running';
  return (
    <fieldset className="jp-galactica-prompts">
      <legend>{trans.__('Prompt library')}</legend>
      {listError && <div className="jp-galactica-error">{listError}</div>}
      {catalog && (
        <label>
          <span>{trans.__('Template')}</span>
          <select
            className="jp-galactica-prompt-select"
            value={name}
            onChange={e => {
              const next = catalog.templates.find(
                t => t.name === e.target.value
              );
              if (next) {
                choose(next);
              }
            }}
          >
            {catalog.templates.map(t => (
              <option key={t.name} value={t.name}>
                {t.title}
              </option>
            ))}
          </select>
        </label>
      )}
      {template && (
        <>
          <p className="jp-galactica-hint" title={template.source}>
            {template.description}
          </p>
          <FieldInputs
            template={template}
            values={values}
            onChange={(field, value) => {
              setValues(v => ({ ...v, [field]: value }));
              setPrompt(null);
            }}
            trans={trans}
          />
          <div className="jp-galactica-buttons">
            <button
              className="jp-mod-styled jp-galactica-prompt-fill"
              disabled={running}
              onClick={() => void fill()}
            >
              {trans.__('Fill in the template')}
            </button>
          </div>
          {fillError && (
            <div className="jp-galactica-error" role="alert">
              {fillError}
            </div>
          )}
        </>
      )}
      {template && prompt !== null && (
        <>
          <label>
            <span>{trans.__('Prompt (edit it before running)')}</span>
            <textarea
              className="jp-galactica-prompt-text"
              rows={4}
              spellCheck={false}
              value={prompt}
              onChange={e => setPrompt(e.target.value)}
            />
          </label>
          <div className="jp-galactica-buttons">
            <button
              className="jp-mod-styled jp-mod-accept jp-galactica-prompt-run"
              disabled={running || !prompt.trim()}
              onClick={run}
            >
              {trans.__('Run')}
            </button>
            {running && (
              <button
                className="jp-mod-styled jp-mod-warn jp-galactica-stop"
                onClick={stop}
              >
                {trans.__('Stop')}
              </button>
            )}
          </div>
        </>
      )}
      {state.phase !== 'idle' && template && (
        <div className="jp-galactica-result" data-template={template.name}>
          <RunProgress state={state} trans={trans} />
          {outcome && (
            <PromptOutcomeView
              outcome={outcome}
              galactica={galactica}
              rdkit={catalog?.rdkit ?? false}
              trans={trans}
            />
          )}
          {note && <div className="jp-galactica-error">{note}</div>}
          {outcome && (
            <ResultActions
              onInsert={insert}
              canInsert={true}
              copyText={() => outcomeMarkdown(outcome)}
              notice={catalog?.notice}
              trans={trans}
            />
          )}
        </div>
      )}
    </fieldset>
  );
}
