import {
  cutAtStops,
  detectTrigger,
  inCommentOrDocstring,
  openSpan,
  suffixAllowsCompletion,
  tailContext
} from '../completer/triggers';

describe('detectTrigger', () => {
  it('completes prose by default, stopping at a blank line', () => {
    const t = detectTrigger('The transformer architecture');
    expect(t.kind).toBe('text');
    expect(t.prompt).toBe('The transformer architecture');
    expect(t.stops).toEqual(['\n\n']);
  });

  it('suggests a reference after an open [START_REF]', () => {
    const t = detectTrigger('Attention is all we need [START_REF]');
    expect(t.kind).toBe('reference');
    expect(t.prompt).toBe('Attention is all we need [START_REF]');
    expect(t.stops).toContain('[END_REF]');
    expect(t.closer).toBe('[END_REF]');
  });

  it('keeps what was typed after [START_REF] in the prompt', () => {
    const t = detectTrigger('as shown by [START_REF] Attention is');
    expect(t.kind).toBe('reference');
    expect(t.prompt.endsWith('[START_REF] Attention is')).toBe(true);
  });

  it('does not suggest a reference once [END_REF] closed it', () => {
    const t = detectTrigger('see [START_REF] A paper, Smith[END_REF] and more');
    expect(t.kind).toBe('text');
  });

  it('turns the friendlier [@ trigger into GALACTICA markup', () => {
    const t = detectTrigger('Transformers [@');
    expect(t.kind).toBe('reference');
    expect(t.prompt).toBe('Transformers [START_REF]');
    expect(t.closer).toBe(']');
    expect(t.opener).toBe('[@');
    expect(t.stops).toEqual(expect.arrayContaining([']', '[END_REF]']));
  });

  it('keeps the typed start of a reference after [@', () => {
    const t = detectTrigger('Transformers [@Attention');
    expect(t.prompt).toBe('Transformers [START_REF]Attention');
  });

  it('ignores a closed [@...] citation', () => {
    expect(detectTrigger('see [@Attention, Vaswani] for').kind).toBe('text');
  });

  it('prefers the latest opener', () => {
    const t = detectTrigger('[START_REF] A, B[END_REF] then [@');
    expect(t.opener).toBe('[@');
  });

  it('completes LaTeX inside $$ and asks in \\[ markup', () => {
    const t = detectTrigger('The Schrodinger equation:\n\n$$ i\\hbar');
    expect(t.kind).toBe('latex');
    expect(t.opener).toBe('$$');
    expect(t.prompt).toBe('The Schrodinger equation:\n\n\\[ i\\hbar');
    expect(t.stops[0]).toBe('$$');
  });

  it('does not treat closed $$ math as open', () => {
    expect(detectTrigger('$$ x^2 $$ and then').kind).toBe('text');
  });

  it('completes LaTeX inside \\[ ... ', () => {
    const t = detectTrigger('Energy: \\[ E = ');
    expect(t.kind).toBe('latex');
    expect(t.opener).toBe('\\[');
    expect(t.stops[0]).toBe('\\]');
  });

  it('completes inline math on the current line', () => {
    const t = detectTrigger('where $\\alpha');
    expect(t.kind).toBe('latex');
    expect(t.opener).toBe('$');
    expect(detectTrigger('where $\\alpha$ is').kind).toBe('text');
  });

  it('ignores escaped dollars', () => {
    expect(detectTrigger('costs \\$5 and').kind).toBe('text');
  });

  it('completes code only in comments and docstrings', () => {
    expect(detectTrigger('x = 1', { code: true }).kind).toBe('none');
    const comment = detectTrigger('x = 1  # the', { code: true });
    expect(comment.kind).toBe('comment');
    expect(comment.stops).toEqual(['\n']);
    expect(detectTrigger('def f():\n    """Compute', { code: true }).kind).toBe(
      'comment'
    );
    expect(detectTrigger('s = "#not a comment', { code: true }).kind).toBe(
      'none'
    );
  });
});

describe('helpers', () => {
  it('finds an open span', () => {
    expect(openSpan('a [START_REF] b', '[START_REF]', '[END_REF]')).toBe(13);
    expect(
      openSpan('a [START_REF] b[END_REF]', '[START_REF]', '[END_REF]')
    ).toBe(-1);
    expect(openSpan('nothing', '[', ']')).toBe(-1);
  });

  it('detects comments and docstrings', () => {
    expect(inCommentOrDocstring('# hello')).toBe(true);
    expect(inCommentOrDocstring("print('#')")).toBe(false);
    expect(inCommentOrDocstring('"""doc"""\nx = 1')).toBe(false);
  });

  it('cuts at the first stop', () => {
    expect(cutAtStops('Title, Author[END_REF] more', ['[END_REF]'])).toEqual({
      text: 'Title, Author',
      stopped: true
    });
    expect(cutAtStops('E = mc^2 \\] text $$', ['$$', '\\]'])).toEqual({
      text: 'E = mc^2 ',
      stopped: true
    });
    expect(cutAtStops('partial', ['\n\n'])).toEqual({
      text: 'partial',
      stopped: false
    });
  });

  it('allows completion before auto-closed brackets only', () => {
    expect(suffixAllowsCompletion('')).toBe(true);
    expect(suffixAllowsCompletion(']')).toBe(true);
    expect(suffixAllowsCompletion(' $$\nmore text')).toBe(true);
    expect(suffixAllowsCompletion(' and more')).toBe(false);
  });

  it('keeps the tail of long contexts at a word boundary', () => {
    expect(tailContext('short', 10)).toBe('short');
    expect(tailContext('one two three four', 12)).toBe('three four');
  });
});
