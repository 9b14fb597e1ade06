/**
 * Citations in the sidebar: entries of the document's library (key, title, first author,
 * year; a "library" badge) and free suggestions marked "unverified" with a "search for it"
 * link, and how the sidebar's Cite asks for them (a chosen entry is written as Cite here writes
 * it: js/citations/citeHere.ts).
 */
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IStreamCallbacks } from '../api';
import { verifyUrl } from '../references';
import { IGalactica } from '../service';
import {
  ICiteResult,
  ILibraryCiteResult,
  ILibrarySuggestion,
  ITaskRequest
} from '../tokens';

/**
 * Citations from the document's library: the cite result tagged as such.
 */
export type LibraryCiteResult = { task: 'cite-library' } & ILibraryCiteResult;

/**
 * Whether an error says the server has no such route or document (then the sidebar falls
 * back to GALACTICA's free citations).
 */
function isNotFound(error: unknown): boolean {
  return (
    error instanceof ServerConnection.ResponseError &&
    error.response.status === 404
  );
}

/**
 * Run the sidebar's Cite: ranked entries of the document's library when it has one, else
 * GALACTICA's free suggestions (streamed), unverified.
 */
export async function runCite(
  galactica: IGalactica,
  request: ITaskRequest,
  path: string | null,
  callbacks: IStreamCallbacks
): Promise<LibraryCiteResult | ({ task: 'cite' } & ICiteResult)> {
  if (path) {
    try {
      const found = await galactica.cite(
        { text: request.text, path, n: request.n },
        callbacks.signal
      );
      if (found.library && found.library.size > 0) {
        return { task: 'cite-library', ...found };
      }
      return {
        task: 'cite',
        truncated: found.truncated,
        suggestions: found.suggestions.map(s => ({
          text: s.text,
          title: s.title,
          author: s.author
        }))
      };
    } catch (error) {
      if (!isNotFound(error)) {
        throw error;
      }
    }
  }
  return { task: 'cite', ...(await galactica.run('cite', request, callbacks)) };
}

/**
 * A citation's badge: from the library, or unverified.
 */
export function Badge(props: {
  verified: boolean;
  trans: TranslationBundle;
}): JSX.Element {
  return props.verified ? (
    <span className="jp-galactica-badge jp-mod-library">
      {props.trans.__('library')}
    </span>
  ) : (
    <span className="jp-galactica-badge jp-mod-unverified">
      {props.trans.__('unverified')}
    </span>
  );
}

/**
 * One suggestion of a library cite.
 */
function LibraryEntry(props: {
  suggestion: ILibrarySuggestion;
  trans: TranslationBundle;
}): JSX.Element {
  const { suggestion: s, trans } = props;
  return (
    <span className="jp-galactica-citation-text">
      <Badge verified={s.verified} trans={trans} />{' '}
      {s.key && <code className="jp-galactica-citation-key">{s.key}</code>}{' '}
      <span className="jp-galactica-citation-title">{s.title}</span>
      {s.author && (
        <span className="jp-galactica-citation-author">, {s.author}</span>
      )}
      {s.year && (
        <span className="jp-galactica-citation-year"> ({s.year})</span>
      )}
    </span>
  );
}

/**
 * The suggestions of a cite to choose from: library entries or free ones (unverified, each
 * with a link to search for it).
 */
export function CitationChoices(props: {
  result: LibraryCiteResult | ICiteResult;
  chosen: number;
  onChoose: (index: number) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { result, trans } = props;
  const library =
    'task' in result && result.task === 'cite-library' ? result : null;
  const items = library
    ? library.suggestions.map(s => ({
        key: s.key ?? s.text,
        label: <LibraryEntry suggestion={s} trans={trans} />,
        search: s.verified ? null : (s.search ?? null)
      }))
    : result.suggestions.map(s => ({
        key: s.text,
        label: (
          <span className="jp-galactica-citation-text">
            <Badge verified={false} trans={trans} />{' '}
            <span className="jp-galactica-citation-title">{s.title}</span>
            {s.author && (
              <span className="jp-galactica-citation-author">, {s.author}</span>
            )}
          </span>
        ),
        search: verifyUrl(s)
      }));
  if (items.length === 0) {
    return (
      <div className="jp-galactica-note">
        {trans.__('No reference suggested.')}
      </div>
    );
  }
  return (
    <div className="jp-galactica-citations">
      {library?.library && (
        <div className="jp-galactica-note jp-galactica-library-origin">
          {trans.__(
            'Ranked by GALACTICA among the %1 entries of your library (%2).',
            library.library.size,
            library.library.sources.join(', ') || library.library.origin
          )}
          {library.library.problems.length > 0 &&
            ' ' +
              trans.__(
                '%1 problem(s) reading it.',
                library.library.problems.length
              )}
        </div>
      )}
      <ul role="listbox" aria-label={trans.__('Suggested references')}>
        {items.map((item, i) => (
          <li
            key={`${i}-${item.key}`}
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
              {item.label}
            </label>
            {item.search && (
              <a href={item.search} target="_blank" rel="noopener noreferrer">
                {trans.__('search for it')}
              </a>
            )}
          </li>
        ))}
      </ul>
      <div className="jp-galactica-note">
        {library
          ? trans.__(
              'Library entries are works you keep; an unverified suggestion may not exist: search for it before citing it.'
            )
          : trans.__(
              'Suggested by GALACTICA: citations can be invented, more often for rare works. Check that a work exists before citing it.'
            )}
      </div>
    </div>
  );
}
