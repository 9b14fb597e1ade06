import { ServerConnection } from '@jupyterlab/services';
import { nullTranslator } from '@jupyterlab/translation';
import * as React from 'react';

import {
  CitationChoices,
  LibraryCiteResult,
  runCite
} from '../panel/citations';
import { act, mount } from './dom';
import { ScriptedGalactica } from './galactica';

const trans = nullTranslator.load('galactica_ext');

const LIBRARY = {
  origin: 'beside',
  sources: ['paper/refs.bib'],
  size: 233,
  problems: [
    { source: 'paper/refs.bib', line: 12, key: 'bad', message: 'no title' }
  ]
};
const FOUND: LibraryCiteResult = {
  task: 'cite-library',
  grounded: true,
  truncated: false,
  library: LIBRARY,
  suggestions: [
    {
      key: 'vaswani2017attention',
      title: 'Attention Is All You Need',
      author: 'Vaswani',
      year: '2017',
      text: 'Attention Is All You Need, Vaswani',
      source: 'library',
      verified: true,
      insert: '[@vaswani2017attention]'
    },
    {
      key: null,
      title: 'Transformers at scale',
      author: 'Nobody',
      year: null,
      text: 'Transformers at scale, Nobody',
      source: 'model',
      verified: false,
      insert: '[Transformers at scale, Nobody]{.unverified}',
      search:
        'https://scholar.google.com/scholar?q=Transformers+at+scale+Nobody'
    }
  ]
};

/** The error requestAPI throws for an HTTP error answer. */
function httpError(status: number, message: string): Error {
  return new ServerConnection.ResponseError(
    new Response(JSON.stringify({ message }), { status }),
    message
  );
}

describe('runCite', () => {
  const request = { text: 'Self-attention', n: 3 };

  it("ranks the document's library when it has one", async () => {
    const galactica = new ScriptedGalactica();
    const { task, ...answer } = FOUND;
    galactica.nextCite = answer;
    const result = await runCite(galactica, request, 'paper/nb.ipynb', {});
    expect(task).toBe('cite-library');
    expect(result).toEqual(FOUND);
    expect(galactica.cites).toEqual([
      { text: 'Self-attention', path: 'paper/nb.ipynb', n: 3 }
    ]);
    expect(galactica.runs).toHaveLength(0);
  });

  it('gives free suggestions as before when there is no library', async () => {
    const galactica = new ScriptedGalactica();
    galactica.nextCite = {
      ...FOUND,
      library: null,
      grounded: false,
      suggestions: [FOUND.suggestions[1]]
    };
    const result = await runCite(galactica, request, 'nb.ipynb', {});
    expect(result).toEqual({
      task: 'cite',
      truncated: false,
      suggestions: [
        {
          text: 'Transformers at scale, Nobody',
          title: 'Transformers at scale',
          author: 'Nobody'
        }
      ]
    });
  });

  it('falls back to the streamed cite on a 404, and fails on other errors', async () => {
    const galactica = new ScriptedGalactica();
    galactica.nextCite = httpError(404, 'no notebook at nb.ipynb');
    const running = runCite(galactica, request, 'nb.ipynb', {});
    await act();
    expect(galactica.last.task).toBe('cite');
    galactica.last.resolve({ suggestions: [], truncated: false });
    expect(await running).toEqual({
      task: 'cite',
      suggestions: [],
      truncated: false
    });

    galactica.nextCite = httpError(503, 'no model is loaded');
    await expect(runCite(galactica, request, 'nb.ipynb', {})).rejects.toThrow(
      'no model is loaded'
    );
    // no document: GALACTICA's free suggestions, streamed
    void runCite(galactica, request, null, {});
    expect(galactica.cites).toHaveLength(2);
    expect(galactica.runs).toHaveLength(2);
  });
});

describe('CitationChoices', () => {
  it('shows library entries as such and the others as unverified', async () => {
    const view = await mount(
      <CitationChoices
        result={FOUND}
        chosen={0}
        onChoose={() => undefined}
        trans={trans}
      />
    );
    const items = view.container.querySelectorAll('li');
    expect(items[0].querySelector('.jp-galactica-badge')!.textContent).toBe(
      'library'
    );
    expect(items[0].textContent).toBe(
      'library vaswani2017attention Attention Is All You Need, Vaswani (2017)'
    );
    expect(items[0].querySelector('a')).toBeNull();
    expect(items[1].querySelector('.jp-galactica-badge')!.textContent).toBe(
      'unverified'
    );
    const search = items[1].querySelector('a')!;
    expect(search.textContent).toBe('search for it');
    expect(search.href).toBe(FOUND.suggestions[1].search);
    expect(
      view.container.querySelector('.jp-galactica-library-origin')!.textContent
    ).toBe(
      'Ranked by GALACTICA among the 233 entries of your library (paper/refs.bib). 1 problem(s) reading it.'
    );
    await view.unmount();
  });
});
