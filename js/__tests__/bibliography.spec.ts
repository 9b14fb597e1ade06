/**
 * The References cell of a notebook that cites its library: what it holds, when it is
 * ours, how a citation being inserted counts, and the settings.
 */
import { Widget } from '@lumino/widgets';

import {
  bibName,
  findBibliographyCell,
  ICell,
  IFormattedReference,
  isBibliographyCell,
  notebookCitedKeys,
  planBibliography,
  renderBibliography
} from '../citations/bibliography';
import {
  cellsAfterInsert,
  citationSettings,
  LibraryChoices
} from '../citations/citeHere';

// what the server's CSL processor (citeproc-py, harvard-cite-them-right, markdown) gave for
// the two entries of ui-tests/tests/cite-library.spec.ts's refs.bib
const FORMATTED: IFormattedReference[] = [
  {
    key: 'he2016resnet',
    text: 'He, K. and Zhang, X. (2016) “Deep Residual Learning for Image Recognition”.'
  },
  {
    key: 'vaswani2017attention',
    text: 'Vaswani, A., Shazeer, N. and Parmar, N. (2017) “Attention Is All You Need”.'
  }
];
const STYLE = 'harvard-cite-them-right';

const ours = (source: string, keys: string[]): ICell => ({
  type: 'markdown',
  source,
  metadata: { galactica: { role: 'bibliography', keys, style: STYLE } }
});

describe('renderBibliography', () => {
  it('lists each formatted reference under the heading, with an anchor', () => {
    expect(renderBibliography(FORMATTED, 'Bibliography')).toBe(
      [
        '## Bibliography',
        '',
        '<a id="ref-he2016resnet"></a>He, K. and Zhang, X. (2016) “Deep Residual Learning for Image Recognition”.',
        '',
        '<a id="ref-vaswani2017attention"></a>Vaswani, A., Shazeer, N. and Parmar, N. (2017) “Attention Is All You Need”.'
      ].join('\n')
    );
  });

  it('says so when nothing is cited', () => {
    expect(renderBibliography([])).toBe(
      '## References\n\n*No entry of the library is cited yet.*'
    );
  });

  it('keeps anchors to safe ids', () => {
    expect(renderBibliography([{ key: 'a b"c', text: 'X.' }])).toContain(
      '<a id="ref-a-b-c"></a>X.'
    );
  });
});

describe('the References cell', () => {
  it('is ours only by its metadata', () => {
    expect(isBibliographyCell(ours('## References', []))).toBe(true);
    expect(
      isBibliographyCell({ type: 'markdown', source: '## References' })
    ).toBe(false);
    // the numbered References cell of free suggestions is another cell
    expect(
      isBibliographyCell({
        type: 'markdown',
        source: '## References',
        metadata: { galactica: { role: 'references', references: [] } }
      })
    ).toBe(false);
    expect(isBibliographyCell({ ...ours('x', []), type: 'raw' })).toBe(false);
  });

  it('is added at the end when there is none', () => {
    const cells: ICell[] = [
      { type: 'markdown', source: 'Attention [@vaswani2017attention].' }
    ];
    const plan = planBibliography(cells, FORMATTED.slice(1), STYLE);
    expect(plan.index).toBe(-1);
    expect(plan.unchanged).toBe(false);
    expect(plan.metadata).toEqual({
      role: 'bibliography',
      keys: ['vaswani2017attention'],
      style: STYLE
    });
    expect(plan.source).toContain('(2017) “Attention Is All You Need”.');
  });

  it('is updated in place, and left alone when it already says the same', () => {
    const current = renderBibliography(FORMATTED);
    const cells: ICell[] = [
      { type: 'markdown', source: 'Text' },
      ours(
        current,
        FORMATTED.map(r => r.key)
      ),
      { type: 'code', source: 'x = 1' }
    ];
    expect(findBibliographyCell(cells)).toBe(1);
    const same = planBibliography(cells, FORMATTED, STYLE);
    expect(same.index).toBe(1);
    expect(same.unchanged).toBe(true);
    const fewer = planBibliography(cells, FORMATTED.slice(0, 1), STYLE);
    expect(fewer.unchanged).toBe(false);
    expect(fewer.source).not.toContain('Vaswani');
    const restyled = planBibliography(cells, FORMATTED, 'other-style');
    expect(restyled.unchanged).toBe(false);
  });

  it('does not count the keys its own text holds', () => {
    const cells: ICell[] = [
      { type: 'markdown', source: 'See [@he2016resnet].' },
      ours('## References\n\nmail: @vaswani2017attention', [])
    ];
    expect(notebookCitedKeys(cells)).toEqual(['he2016resnet']);
  });
});

describe('cellsAfterInsert', () => {
  it('counts the citation being inserted, in reading order', () => {
    const cells: ICell[] = [
      {
        type: 'markdown',
        source: 'First claim. Second claim [@he2016resnet].'
      },
      { type: 'markdown', source: 'Later.' }
    ];
    const after = cellsAfterInsert(
      cells,
      ['c1', 'c2'],
      'c1',
      12,
      12,
      ' [@vaswani2017attention]'
    );
    expect(after[0].source).toBe(
      'First claim. [@vaswani2017attention] Second claim [@he2016resnet].'
    );
    expect(after[1]).toBe(cells[1]);
    expect(notebookCitedKeys(after)).toEqual([
      'vaswani2017attention',
      'he2016resnet'
    ]);
    expect(cells[0].source).toBe('First claim. Second claim [@he2016resnet].');
  });
});

describe('citationSettings', () => {
  it('fills in the defaults', () => {
    expect(citationSettings({})).toEqual({
      libraryCitationFormat: 'pandoc',
      libraryReferences: true,
      citationStyle: '',
      referencesHeading: 'References',
      citationCount: 3
    });
  });

  it('reads the settings, refusing an unknown format', () => {
    expect(
      citationSettings({
        libraryCitationFormat: 'myst',
        libraryReferences: false,
        citationCount: 5
      })
    ).toMatchObject({
      libraryCitationFormat: 'myst',
      libraryReferences: false,
      citationCount: 5
    });
    expect(
      citationSettings({ libraryCitationFormat: 'numbered' })
        .libraryCitationFormat
    ).toBe('pandoc');
  });
});

describe('LibraryChoices', () => {
  it('shows each entry ranked: badge, key, title, author, year; unverified with a search', () => {
    const body = new LibraryChoices({
      grounded: false,
      truncated: false,
      library: {
        origin: 'beside',
        sources: ['refs.bib'],
        size: 2,
        problems: []
      },
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
          title: 'A Made Up Work',
          author: 'Nobody',
          year: null,
          text: 'A Made Up Work, Nobody',
          source: 'model',
          verified: false,
          insert: '[A Made Up Work, Nobody]{.unverified}',
          search: 'https://scholar.google.com/scholar?q=A+Made+Up+Work+Nobody'
        }
      ]
    });
    Widget.attach(body, document.body);
    const items = body.node.querySelectorAll('li');
    expect(items).toHaveLength(2);
    expect(items[0].textContent).toBe(
      'library vaswani2017attention Attention Is All You Need, Vaswani (2017)'
    );
    expect(items[0].querySelector('a')).toBeNull();
    expect(items[1].querySelector('.jp-mod-unverified')?.textContent).toBe(
      'unverified'
    );
    expect(items[1].querySelector('a')?.getAttribute('href')).toContain(
      'scholar.google.com'
    );
    expect(body.getValue()).toBe(0);
    (items[1].querySelector('input') as HTMLInputElement).click();
    expect(body.getValue()).toBe(1);
    body.dispose();
  });
});

describe('bibName', () => {
  it('names the .bib after the notebook', () => {
    expect(bibName('papers/draft.ipynb')).toBe('draft.bib');
    expect(bibName('notes')).toBe('notes.bib');
  });
});
