/**
 * What the text before the cursor asks for: a reference, LaTeX, or prose.
 *
 * Pure functions, so that they can be tested without JupyterLab.
 */

/**
 * GALACTICA's own citation markers.
 */
export const START_REF = '[START_REF]';
export const END_REF = '[END_REF]';

/**
 * The friendlier citation trigger: `[@` opens a reference, `]` closes it,
 * as in Pandoc's `[@key]` citations.
 */
export const AT_TRIGGER = '[@';

/**
 * What kind of completion the cursor position calls for.
 */
export type TriggerKind = 'reference' | 'latex' | 'text' | 'comment' | 'none';

/**
 * The result of trigger detection.
 */
export interface ITrigger {
  /**
   * The kind of completion.
   */
  kind: TriggerKind;
  /**
   * The prompt to send to the model (GALACTICA's markup).
   */
  prompt: string;
  /**
   * Where a suggestion ends (the first of these is cut off, with what follows).
   */
  stops: string[];
  /**
   * Text appended to a finished suggestion, e.g. the closing `]` of `[@`.
   */
  closer: string;
  /**
   * The marker that opened the span (`[START_REF]`, `[@`, `$$`, `\[`, `$`), if any.
   */
  opener?: string;
}

/**
 * Where the cursor is.
 */
export interface ITriggerOptions {
  /**
   * Whether the text is code (then only comments and docstrings are completed).
   */
  code?: boolean;
}

/**
 * The index just past the last unclosed `open` in `text` (no `close` after it), or -1.
 */
export function openSpan(text: string, open: string, close: string): number {
  const at = text.lastIndexOf(open);
  if (at === -1) {
    return -1;
  }
  const after = at + open.length;
  return text.indexOf(close, after) === -1 ? after : -1;
}

/**
 * Whether the cursor is inside display math opened by `$$` (an odd number of `$$`).
 */
function insideDoubleDollar(text: string): number {
  let count = 0;
  let last = -1;
  const re = /(?<!\\)\$\$/g;
  let match: RegExpExecArray | null;
  while ((match = re.exec(text)) !== null) {
    count++;
    last = match.index;
  }
  return count % 2 === 1 ? last + 2 : -1;
}

/**
 * Whether the cursor is inside inline math `$...` on the current line (an odd number of
 * single, unescaped `$` on the line, `$$` excluded).
 */
function insideInlineDollar(line: string): number {
  const withoutDisplay = line.replace(/\$\$/g, '  ');
  let count = 0;
  let last = -1;
  for (let i = 0; i < withoutDisplay.length; i++) {
    if (withoutDisplay[i] === '$' && withoutDisplay[i - 1] !== '\\') {
      count++;
      last = i;
    }
  }
  return count % 2 === 1 ? last + 1 : -1;
}

/**
 * Whether the cursor is in a comment or a docstring of Python-like code.
 */
export function inCommentOrDocstring(code: string): boolean {
  const line = code.slice(code.lastIndexOf('\n') + 1);
  // a `#` that is not inside a string on this line
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === '\\') {
        i++;
      } else if (ch === quote) {
        quote = null;
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '#') {
      return true;
    }
  }
  const triple = (code.match(/"""|'''/g) ?? []).length;
  return triple % 2 === 1;
}

/**
 * Decide what to complete at the end of `before` (the text before the cursor).
 *
 * - after `[START_REF]` or `[@` without a closing marker: a reference
 *   (`Title, First author`), stopped at `[END_REF]`, `]` or a newline;
 * - inside `$$ ... $$`, `\[ ... \]` or `$ ... $`: LaTeX, stopped at the closing delimiter;
 * - in code: only in a comment or docstring, stopped at the end of the line;
 * - otherwise prose, stopped at a blank line.
 */
export function detectTrigger(
  before: string,
  options: ITriggerOptions = {}
): ITrigger {
  if (options.code) {
    if (!inCommentOrDocstring(before)) {
      return { kind: 'none', prompt: '', stops: [], closer: '' };
    }
    return { kind: 'comment', prompt: before, stops: ['\n'], closer: '' };
  }

  const galacticaRef = openSpan(before, START_REF, END_REF);
  const atRef = openSpan(before, AT_TRIGGER, ']');
  if (galacticaRef !== -1 || atRef !== -1) {
    // the innermost (latest) opener wins
    if (galacticaRef >= atRef) {
      return {
        kind: 'reference',
        prompt: before,
        stops: [END_REF, '\n'],
        closer: END_REF,
        opener: START_REF
      };
    }
    const typed = before.slice(atRef);
    if (/[\]\n]/.test(typed)) {
      return { kind: 'text', prompt: before, stops: ['\n\n'], closer: '' };
    }
    const head = before.slice(0, atRef - AT_TRIGGER.length).replace(/\s+$/, '');
    return {
      kind: 'reference',
      prompt: `${head} ${START_REF}${typed}`,
      stops: [END_REF, ']', '\n'],
      closer: ']',
      opener: AT_TRIGGER
    };
  }

  const bracket = openSpan(before, '\\[', '\\]');
  if (bracket !== -1) {
    return {
      kind: 'latex',
      prompt: before,
      stops: ['\\]', '$$', '\n\n'],
      closer: '',
      opener: '\\['
    };
  }
  const dollars = insideDoubleDollar(before);
  if (dollars !== -1) {
    // GALACTICA learned display math as \[ ... \]: ask in its own markup
    return {
      kind: 'latex',
      prompt: before.slice(0, dollars - 2) + '\\[' + before.slice(dollars),
      stops: ['$$', '\\]', '\n\n'],
      closer: '',
      opener: '$$'
    };
  }
  const line = before.slice(before.lastIndexOf('\n') + 1);
  if (insideInlineDollar(line) !== -1) {
    return {
      kind: 'latex',
      prompt: before,
      stops: ['$', '\n'],
      closer: '',
      opener: '$'
    };
  }
  return { kind: 'text', prompt: before, stops: ['\n\n'], closer: '' };
}

/**
 * Cut a (possibly partial) suggestion at the first stop string.
 *
 * @returns the text to show and whether a stop was reached
 */
export function cutAtStops(
  text: string,
  stops: string[]
): { text: string; stopped: boolean } {
  let cut = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at !== -1 && (cut === -1 || at < cut)) {
      cut = at;
    }
  }
  return cut === -1
    ? { text, stopped: false }
    : { text: text.slice(0, cut), stopped: true };
}

/**
 * Whether the text after the cursor on its line allows a suggestion: nothing, or only
 * closing brackets and math delimiters that an editor may have auto-inserted.
 */
export function suffixAllowsCompletion(after: string): boolean {
  const rest = after.split('\n', 1)[0];
  return /^[\s\])}$]*$/.test(rest);
}

/**
 * The last `maxChars` characters of `text`, cut at a word boundary when possible.
 */
export function tailContext(text: string, maxChars: number): string {
  if (text.length <= maxChars) {
    return text;
  }
  const tail = text.slice(text.length - maxChars);
  const space = tail.search(/\s/);
  return space > 0 && space < 80 ? tail.slice(space + 1) : tail;
}
