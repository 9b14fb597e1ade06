/**
 * The sidebar tasks' results: how each is shown, copied and inserted, read through the
 * tagged union {@link SidebarResult} (switch on `task`, no casts).
 */
import { ILatexTypesetter } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  equationMarkdown,
  insertBelow,
  insertCitation,
  insertEquation,
  insertSummary
} from '../actions';
import { IStreamCallbacks } from '../api';
import { IEditorContext } from '../editor';
import { IGalactica } from '../service';
import { ITaskRequest, TaskResult } from '../tokens';
import { insertLibraryChoice } from '../citations/citeHere';
import { CitationChoices, LibraryCiteResult, runCite } from './citations';

/**
 * The tasks the sidebar's buttons run.
 */
export type SidebarTask = 'cite' | 'equation' | 'summarise' | 'ask';

/**
 * A result of one of the sidebar's tasks.
 */
export type SidebarResult = TaskResult<SidebarTask> | LibraryCiteResult;

/**
 * The sidebar tasks' labels, translated.
 */
export function taskLabel(task: SidebarTask, trans: TranslationBundle): string {
  switch (task) {
    case 'cite':
      return trans.__('Cite');
    case 'equation':
      return trans.__('Equation');
    case 'summarise':
      return trans.__('Summarise');
    case 'ask':
      return trans.__('Ask');
  }
}

/**
 * Whether a result has something to insert.
 */
export function canInsert(result: SidebarResult, chosen: number): boolean {
  switch (result.task) {
    case 'cite':
    case 'cite-library':
      return result.suggestions[chosen] !== undefined;
    case 'equation':
      return result.latex.trim() !== '';
    case 'summarise':
    case 'ask':
      return result.text.trim() !== '';
  }
}

/**
 * What Copy puts on the clipboard: the chosen reference, the equation's markdown, the text.
 */
export function copyText(result: SidebarResult, chosen: number): string {
  switch (result.task) {
    case 'cite':
      return result.suggestions[chosen]?.text ?? '';
    case 'cite-library':
      return result.suggestions[chosen]?.insert ?? '';
    case 'equation':
      return equationMarkdown(result.latex);
    case 'summarise':
    case 'ask':
      return result.text;
  }
}

/**
 * Insert a result where the task's text came from: a citation at the cursor (a library
 * entry of the document at `path` as Cite here writes it), an equation after the selection,
 * a TL;DR cell or an answer below.
 */
export function insertResult(
  galactica: IGalactica,
  context: IEditorContext,
  result: SidebarResult,
  chosen: number,
  path: string | null = null
): void | Promise<unknown> {
  switch (result.task) {
    case 'cite': {
      const suggestion = result.suggestions[chosen];
      if (suggestion) {
        insertCitation(galactica, context, suggestion);
      }
      return;
    }
    case 'cite-library': {
      // written in the notebook's citation format, the References cell kept, as Cite here does
      const suggestion = result.suggestions[chosen];
      if (suggestion && path) {
        return insertLibraryChoice(galactica, context, path, suggestion);
      }
      return;
    }
    case 'equation':
      insertEquation(context, result.latex);
      return;
    case 'summarise':
      insertSummary(context, result.text);
      return;
    case 'ask':
      insertBelow(context, result.text);
      return;
  }
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
 * A result as the sidebar shows it.
 */
export function ResultView(props: {
  result: SidebarResult;
  chosen: number;
  onChoose: (index: number) => void;
  typesetter: ILatexTypesetter | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { result, trans } = props;
  switch (result.task) {
    case 'cite':
    case 'cite-library':
      return (
        <CitationChoices
          result={result}
          chosen={props.chosen}
          onChoose={props.onChoose}
          trans={trans}
        />
      );
    case 'equation':
      return (
        <div className="jp-galactica-equation">
          <code>{result.latex}</code>
          <EquationPreview latex={result.latex} typesetter={props.typesetter} />
        </div>
      );
    case 'summarise':
    case 'ask':
      return <div className="jp-galactica-text">{result.text}</div>;
  }
}

/**
 * Run one of the sidebar's tasks and tag its result with the task's name (Cite ranks the
 * library of the document at `path`, when it has one).
 */
export async function runSidebarTask(
  galactica: IGalactica,
  task: SidebarTask,
  request: ITaskRequest,
  callbacks: IStreamCallbacks,
  path: string | null = null
): Promise<SidebarResult> {
  switch (task) {
    case 'cite':
      return runCite(galactica, request, path, callbacks);
    case 'equation':
      return { task, ...(await galactica.run(task, request, callbacks)) };
    case 'summarise':
      return { task, ...(await galactica.run(task, request, callbacks)) };
    case 'ask':
      return { task, ...(await galactica.run(task, request, callbacks)) };
  }
}
