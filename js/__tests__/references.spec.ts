import {
  addReference,
  collectReferences,
  extractCitations,
  formatCitation,
  ICellInfo,
  isReferencesCell,
  parseReference,
  parseReferencesMarkdown,
  planReferences,
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
  it('knows the cell by its metadata or heading', () => {
    expect(
      isReferencesCell({ galactica: { references: [] } }, 'anything')
    ).toBe(true);
    expect(isReferencesCell({}, '## References\n\n1. x')).toBe(true);
    expect(isReferencesCell({}, '# Bibliography', 'Bibliography')).toBe(true);
    expect(isReferencesCell({}, 'Some text\n## References')).toBe(false);
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

  it('adds a References cell at the end of a notebook without one', () => {
    const plan = planReferences([md('# Title'), md('Text')], attention);
    expect(plan.index).toBe(-1);
    expect(plan.number).toBe(1);
    expect(plan.metadata.references).toEqual([attention]);
    expect(plan.source).toContain('1. Attention is all you need');
  });

  it('updates the existing cell and keeps numbers', () => {
    const refsCell = md(renderReferences([bert]), {
      galactica: { references: [bert] }
    });
    const plan = planReferences([md('Text'), refsCell], attention);
    expect(plan.index).toBe(1);
    expect(plan.move).toBe(false);
    expect(plan.number).toBe(2);
    expect(plan.metadata.references).toEqual([bert, attention]);
  });

  it('gives a work cited twice one number', () => {
    const refsCell = md('', { galactica: { references: [attention, bert] } });
    const plan = planReferences([refsCell, md('Text')], bert);
    expect(plan.number).toBe(2);
    expect(plan.metadata.references).toHaveLength(2);
    expect(plan.move).toBe(true);
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

  it('recovers the list from markdown when the metadata was lost', () => {
    const plan = planReferences(
      [md(renderReferences([attention, bert]))],
      parseReference('New work, Doe')
    );
    expect(plan.index).toBe(0);
    expect(plan.number).toBe(3);
  });
});
