import {
  addReference,
  collectReferences,
  extractCitations,
  formatCitation,
  ICellInfo,
  isReferencesCell,
  parseReference,
  parseReferencesMarkdown,
  IReference,
  ITextEdit,
  planReferences,
  provisionalNumber,
  referenceKey,
  renderReferences
} from '../references';

const attention = parseReference('Attention is all you need, Ashish Vaswani');
const bert = parseReference(
  'BERT: Pre-training of Deep Bidirectional Transformers, Jacob Devlin'
);

describe('parseReference', () => {
  it('splits title and first author', () => {
    expect(attention).toEqual({
      text: 'Attention is all you need, Ashish Vaswani',
      title: 'Attention is all you need',
      author: 'Ashish Vaswani'
    });
  });

  it('keeps a title without author whole', () => {
    expect(parseReference('Deep learning')).toEqual({
      text: 'Deep learning',
      title: 'Deep learning',
      author: null
    });
  });

  it('does not take a long clause for an author', () => {
    const ref = parseReference('Learning, the hard way of doing it all');
    expect(ref.author).toBeNull();
  });

  it('drops [END_REF] and what follows', () => {
    expect(parseReference(' A paper,  Smith[END_REF] tail').text).toBe(
      'A paper, Smith'
    );
  });
});

describe('addReference', () => {
  it('numbers new works from 1', () => {
    const first = addReference([], attention);
    expect(first.number).toBe(1);
    expect(first.added).toBe(true);
    const second = addReference(first.references, bert);
    expect(second.number).toBe(2);
    expect(second.references).toHaveLength(2);
  });

  it('reuses the number of a work cited before, whatever its spacing or case', () => {
    const refs = [attention, bert];
    const again = addReference(
      refs,
      parseReference('attention  is all you need,  Ashish Vaswani')
    );
    expect(again.number).toBe(1);
    expect(again.added).toBe(false);
    expect(again.references).toHaveLength(2);
  });

  it('does not mutate its input', () => {
    const refs = [attention];
    addReference(refs, bert);
    expect(refs).toHaveLength(1);
  });
});

describe('extractCitations', () => {
  it('finds GALACTICA markup and [@...] citations in order', () => {
    const found = extractCitations(
      'As in [START_REF] Attention is all you need, Ashish Vaswani[END_REF] and [@BERT, Jacob Devlin].'
    );
    expect(found.map(r => r.title)).toEqual([
      'Attention is all you need',
      'BERT'
    ]);
  });

  it('ignores open markers', () => {
    expect(extractCitations('typing [START_REF] Atten')).toEqual([]);
    expect(extractCitations('typing [@Atten')).toEqual([]);
  });
});

describe('collectReferences', () => {
  it('keeps existing numbers and appends new works', () => {
    const refs = collectReferences(
      [bert],
      [
        '[START_REF] Attention is all you need, Ashish Vaswani[END_REF]',
        '[@BERT: Pre-training of Deep Bidirectional Transformers, Jacob Devlin]'
      ]
    );
    expect(refs.map(referenceKey)).toEqual([
      referenceKey(bert),
      referenceKey(attention)
    ]);
  });
});

describe('renderReferences and parseReferencesMarkdown', () => {
  it('renders a heading, a numbered list and a warning', () => {
    const md = renderReferences([attention, bert]);
    const lines = md.split('\n');
    expect(lines[0]).toBe('## References');
    expect(lines[2]).toMatch(/^1\. Attention is all you need, Ashish Vaswani/);
    expect(lines[3]).toMatch(/^2\. BERT: Pre-training/);
    expect(md).toContain('scholar.google.com');
    expect(md).toMatch(/check that each work exists/);
  });

  it('escapes markdown in titles', () => {
    const md = renderReferences([parseReference('The *star* [x], Smith')]);
    expect(md).toContain('The \\*star\\* \\[x\\], Smith');
  });

  it('reads its own markdown back', () => {
    const refs = [attention, bert, parseReference('The *star* [x], Smith')];
    expect(parseReferencesMarkdown(renderReferences(refs))).toEqual(refs);
  });
});

describe('isReferencesCell', () => {
  it('knows our cell by its metadata only', () => {
    expect(isReferencesCell({ galactica: { role: 'references' } })).toBe(true);
    expect(isReferencesCell({ galactica: { references: [] } })).toBe(true);
    expect(isReferencesCell({})).toBe(false);
    expect(isReferencesCell({ galactica: { tldr: true } })).toBe(false);
    expect(isReferencesCell(undefined)).toBe(false);
  });
});

describe('formatCitation', () => {
  it('writes each format', () => {
    expect(formatCitation(attention, 3, 'numbered')).toBe('[[3]](#References)');
    expect(formatCitation(attention, 3, 'galactica')).toBe(
      '[START_REF] Attention is all you need, Ashish Vaswani[END_REF]'
    );
    expect(formatCitation(attention, 3, 'author-title')).toBe(
      '(Ashish Vaswani, *Attention is all you need*)'
    );
    expect(formatCitation(parseReference('Untitled'), 1, 'author-title')).toBe(
      '(*Untitled*)'
    );
  });
});

describe('planReferences', () => {
  const md = (
    source: string,
    metadata?: Record<string, unknown>
  ): ICellInfo => ({
    type: 'markdown',
    source,
    metadata
  });
  const ours = (refs: IReference[]) =>
    md(renderReferences(refs), {
      galactica: { role: 'references', references: refs }
    });
  const cite = (n: number) => `[[${n}]](#References)`;
  /** Apply a plan's edits to the cells' sources. */
  const apply = (cells: ICellInfo[], edits: ITextEdit[]) => {
    const sources = cells.map(c => c.source);
    for (const e of edits) {
      sources[e.cell] =
        sources[e.cell].slice(0, e.start) +
        e.text +
        sources[e.cell].slice(e.end);
    }
    return sources;
  };

  it('adds a References cell at the end of a notebook without one', () => {
    const cells = [md('# Title'), md(`Text ${cite(1)}`)];
    expect(provisionalNumber(cells, attention)).toBe(1);
    const plan = planReferences(cells, attention);
    expect(plan.index).toBe(-1);
    expect(plan.number).toBe(1);
    expect(plan.metadata).toEqual({
      role: 'references',
      references: [attention]
    });
    expect(plan.source).toContain('1. Attention is all you need');
    expect(plan.edits).toEqual([]);
  });

  it('never takes a cell of the user with a References heading for ours', () => {
    const users = md('# References\n\n- my own notes\n- [a link](http://x)');
    const cells = [md(`Text ${cite(1)}`), users];
    const plan = planReferences(cells, attention);
    expect(plan.index).toBe(-1); // a new cell of ours is added; the user's stays
    expect(plan.edits.every(e => e.cell !== 1)).toBe(true);
  });

  it('keeps numbers when works are cited in order', () => {
    const cells = [md(`A ${cite(1)}. B ${cite(2)}`), ours([bert])];
    expect(provisionalNumber(cells, attention)).toBe(2);
    const plan = planReferences(cells, attention);
    expect(plan.index).toBe(1);
    expect(plan.move).toBe(false);
    expect(plan.number).toBe(2);
    expect(plan.metadata.references).toEqual([bert, attention]);
    expect(plan.edits).toEqual([]);
  });

  it('renumbers in reading order when a work is cited earlier', () => {
    // bert was [1]; attention, cited now before it with the provisional number 2,
    // becomes [1] and bert [2], each citation keeping its work
    const cells = [
      md(`Intro ${cite(2)}.`),
      md(`Later ${cite(1)} and again ${cite(1)}.`),
      ours([bert])
    ];
    const plan = planReferences(cells, attention);
    expect(plan.number).toBe(1);
    expect(plan.metadata.references).toEqual([attention, bert]);
    expect(apply(cells, plan.edits).slice(0, 2)).toEqual([
      `Intro ${cite(1)}.`,
      `Later ${cite(2)} and again ${cite(2)}.`
    ]);
    expect(plan.source).toMatch(/1\. Attention[\s\S]*2\. BERT/);
  });

  it('gives a work cited twice one number', () => {
    const refsCell = ours([attention, bert]);
    const cells = [refsCell, md(`Text ${cite(2)} ${cite(1)}`)];
    expect(provisionalNumber(cells, bert)).toBe(2);
    const plan = planReferences(cells, bert);
    expect(plan.number).toBe(1); // first in reading order now
    expect(plan.metadata.references).toEqual([bert, attention]);
    expect(plan.move).toBe(true);
    expect(apply(cells, plan.edits)[1]).toBe(`Text ${cite(1)} ${cite(2)}`);
  });

  it('keeps works no longer cited at the end of the list', () => {
    const plan = planReferences(
      [md(`Only ${cite(2)}`), ours([attention, bert])],
      null
    );
    expect(plan.metadata.references).toEqual([bert, attention]);
    expect(plan.number).toBe(0);
  });

  it('lists works cited in markup in markdown cells, not code', () => {
    const plan = planReferences(
      [
        md(
          'See [START_REF] Attention is all you need, Ashish Vaswani[END_REF].'
        ),
        { type: 'code', source: 'x = "[@BERT, Jacob Devlin]"' }
      ],
      null
    );
    expect(plan.metadata.references).toEqual([attention]);
    expect(plan.number).toBe(0);
  });
});
