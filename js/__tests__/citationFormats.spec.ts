/**
 * Library citations written in the notebook's format, the unverified span, and the keys a
 * text cites (the same as the server's galactica_ext/library/cited.py finds).
 */
import {
  citedKeys,
  citeKey,
  isCitationKey,
  keysInText,
  suggestionCitation,
  unverifiedSpan
} from '../citations/insert';

const vaswani = {
  key: 'vaswani2017attention',
  title: 'Attention Is All You Need',
  author: 'Vaswani',
  year: '2017',
  verified: true,
  source: 'library' as const
};

describe('citeKey', () => {
  it('writes Pandoc/MyST [@key] by default', () => {
    expect(citeKey('vaswani2017attention', 'pandoc')).toBe(
      '[@vaswani2017attention]'
    );
  });

  it('writes the MyST cite:p role', () => {
    expect(citeKey('vaswani2017attention', 'myst')).toBe(
      '{cite:p}`vaswani2017attention`'
    );
  });

  it("writes nbconvert's LaTeX-export cite element, label escaped", () => {
    expect(citeKey('he2016resnet', 'latex', 'He & Zhang 2016')).toBe(
      '<cite data-cite="he2016resnet">He &amp; Zhang 2016</cite>'
    );
    expect(citeKey('he2016resnet', 'latex')).toBe(
      '<cite data-cite="he2016resnet">he2016resnet</cite>'
    );
  });

  it('refuses what is not a key, saying what a key is', () => {
    expect(() => citeKey('two words', 'pandoc')).toThrow(/not a citation key/);
    expect(() => citeKey('a]b', 'myst')).toThrow(/no spaces, brackets/);
    expect(isCitationKey('Smith:2020-a.b/c')).toBe(true);
    expect(isCitationKey('')).toBe(false);
  });

  it('round-trips: every format is read back as its key', () => {
    for (const format of ['pandoc', 'myst', 'latex'] as const) {
      const text = `Transformers ${citeKey('c:3.x', format, 'X')} and ${citeKey(
        'vaswani2017attention',
        format
      )}.`;
      expect(keysInText(text)).toEqual(['c:3.x', 'vaswani2017attention']);
    }
  });
});

describe('unverifiedSpan', () => {
  it('is a Pandoc span with the title and surname', () => {
    expect(unverifiedSpan('Attention Is All You Need', 'Vaswani')).toBe(
      '[Attention Is All You Need, Vaswani]{.unverified}'
    );
    expect(unverifiedSpan('Only title')).toBe('[Only title]{.unverified}');
  });

  it('keeps one span: brackets become parentheses, spaces collapse', () => {
    expect(unverifiedSpan('A [bracketed]  title', 'Smith')).toBe(
      '[A (bracketed) title, Smith]{.unverified}'
    );
  });

  it('never looks like a key: an @ in it is escaped', () => {
    const span = unverifiedSpan('@fake2020 claims', 'Doe');
    expect(span).toBe('[\\@fake2020 claims, Doe]{.unverified}');
    expect(keysInText(span)).toEqual([]);
  });
});

describe('suggestionCitation', () => {
  it('writes a library entry in the chosen format', () => {
    expect(suggestionCitation(vaswani, 'pandoc')).toBe(
      '[@vaswani2017attention]'
    );
    expect(suggestionCitation(vaswani, 'myst')).toBe(
      '{cite:p}`vaswani2017attention`'
    );
    expect(suggestionCitation(vaswani, 'latex')).toBe(
      '<cite data-cite="vaswani2017attention">Vaswani 2017</cite>'
    );
  });

  it('writes a free suggestion as the unverified span in every format', () => {
    const free = {
      key: null,
      title: 'A Made Up Work',
      author: 'Nobody',
      year: null,
      verified: false,
      source: 'model' as const
    };
    for (const format of ['pandoc', 'myst', 'latex'] as const) {
      expect(suggestionCitation(free, format)).toBe(
        '[A Made Up Work, Nobody]{.unverified}'
      );
    }
  });

  it('never writes a key the library did not verify', () => {
    expect(suggestionCitation({ ...vaswani, verified: false }, 'pandoc')).toBe(
      '[Attention Is All You Need, Vaswani]{.unverified}'
    );
    expect(suggestionCitation({ ...vaswani, key: 'bad key' }, 'pandoc')).toBe(
      '[Attention Is All You Need, Vaswani]{.unverified}'
    );
  });
});

describe('keysInText', () => {
  // the expected lists are what galactica_ext.library.cited.keys_in_text returns
  it('reads Pandoc citations, grouped, with locators and in-text', () => {
    expect(
      keysInText(
        'As shown [@vaswani2017attention; see @he2016resnet, p. 3] and @devlin2019bert.'
      )
    ).toEqual(['vaswani2017attention', 'he2016resnet', 'devlin2019bert']);
    expect(keysInText('[-@suppressed2020] and email foo@bar.org.')).toEqual([
      'suppressed2020'
    ]);
  });

  it('does not take e-mail addresses or unverified spans for keys', () => {
    expect(keysInText('Mail me at user@example.com or @{odd key}.')).toEqual(
      []
    );
    expect(
      keysInText('[Attention Is All You Need, Vaswani]{.unverified}')
    ).toEqual([]);
  });

  it('reads MyST roles, cite elements and LaTeX, in text order', () => {
    expect(
      keysInText(
        'MyST {cite:p}`a2020,b2021` and {cite:t}`c:3` then <cite data-cite="d-4">D 4</cite> and \\citep[p. 2]{e5,f6}.'
      )
    ).toEqual(['a2020', 'b2021', 'c:3', 'd-4', 'e5', 'f6']);
  });
});

describe('citedKeys', () => {
  it('gives each key once, first use first, from markdown and raw cells only', () => {
    expect(
      citedKeys([
        { type: 'markdown', source: 'Intro [@b2021] and [@a2020].' },
        { type: 'code', source: "print('@c2022 [@c2022]')" },
        { type: 'raw', source: '\\cite{d2023,b2021}' },
        { type: 'markdown', source: 'Again [@a2020].' }
      ])
    ).toEqual(['b2021', 'a2020', 'd2023']);
  });
});
