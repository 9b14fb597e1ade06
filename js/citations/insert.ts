/**
 * How a citation of a library entry is written in a notebook: Pandoc/MyST `[@key]`, the
 * MyST role {cite:p}`key`, or nbconvert's LaTeX-export `<cite data-cite="key">`; a free
 * suggestion no library entry matched is the Pandoc span `[Title, Surname]{.unverified}`,
 * never anything that looks like a key. Pure functions, mirrored by the server's
 * `galactica_ext/library/cited.py` (which keys a text cites) and `matching.py` (the span).
 */
import { ILibrarySuggestion } from '../tokens';

/**
 * The citation syntaxes a notebook may use.
 */
export type LibraryCitationFormat = 'pandoc' | 'myst' | 'latex';

/**
 * Every format, the default first.
 */
export const LIBRARY_CITATION_FORMATS: readonly LibraryCitationFormat[] = [
  'pandoc',
  'myst',
  'latex'
];

/**
 * Escape text for HTML content or an attribute value.
 */
function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/**
 * The citation of the library entry `key` in `format`.
 *
 * @param label the visible text of a LaTeX-export citation (nbconvert ignores it), e.g.
 *   `Vaswani 2017`; the key when not given
 */
export function citeKey(
  key: string,
  format: LibraryCitationFormat,
  label?: string
): string {
  if (!isCitationKey(key)) {
    throw new Error(
      `not a citation key: ${JSON.stringify(key)} (a key has no spaces, brackets, braces or quotes)`
    );
  }
  switch (format) {
    case 'myst':
      return `{cite:p}\`${key}\``;
    case 'latex':
      return `<cite data-cite="${escapeHtml(key)}">${escapeHtml(label || key)}</cite>`;
    case 'pandoc':
    default:
      return `[@${key}]`;
  }
}

/**
 * Whether a string can be written as a key in every format (what BibTeX keys are).
 */
export function isCitationKey(key: string): boolean {
  return /^[^\s[\]{}()"'`<>,;@#%\\]+$/.test(key);
}

/**
 * The Pandoc span of a work not found in the library: `[Title, Surname]{.unverified}`
 * (square brackets inside become parentheses, so the span stays one span; an `@` is
 * escaped, `\@`, so that nothing in it reads as a Pandoc citation key).
 */
export function unverifiedSpan(title: string, author?: string | null): string {
  const text = (author ? `${title}, ${author}` : title)
    .replace(/\[/g, '(')
    .replace(/\]/g, ')')
    .replace(/@/g, '\\@')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');
  return `[${text}]{.unverified}`;
}

/**
 * What to insert for a suggestion of `POST /galactica/cite`: a library entry in the
 * notebook's format, anything else as the unverified span.
 */
export function suggestionCitation(
  suggestion: Pick<
    ILibrarySuggestion,
    'key' | 'title' | 'author' | 'year' | 'verified' | 'source'
  >,
  format: LibraryCitationFormat
): string {
  if (
    suggestion.verified &&
    suggestion.source === 'library' &&
    suggestion.key &&
    isCitationKey(suggestion.key)
  ) {
    const label = [suggestion.author, suggestion.year]
      .filter(Boolean)
      .join(' ');
    return citeKey(suggestion.key, format, label || undefined);
  }
  return unverifiedSpan(suggestion.title, suggestion.author);
}

/**
 * A citation written in Pandoc's syntax: `[@a]`, `[see @a, p. 3; @b]`, `@key`, `@{key}`.
 */
const PANDOC =
  /(?<![\w@\\])-?@(?:\{([^}\s]+)\}|(\w(?:[\w:.#$%&+?<>~/-]*\w)?))/gu;
/**
 * MyST roles: {cite}`a,b`, {cite:p}`key`, {cite:t}`key`.
 */
const MYST = /\{cite(?::[a-z]+)?\}`([^`]+)`/g;
/**
 * nbconvert's LaTeX-export citation.
 */
const HTML = /<cite\s[^>]*data-cite=["']([^"']+)["']/g;
/**
 * LaTeX `\cite{a,b}`, `\citep[p. 3]{a}`.
 */
const LATEX = /\\cite[a-z]*\*?(?:\[[^\]]*\])*\{([^}]+)\}/g;

/**
 * Every citation key written in `text`, in order (repeats kept), in any of the formats.
 */
export function keysInText(text: string): string[] {
  const found: [number, string][] = [];
  const each = (pattern: RegExp, take: (match: RegExpExecArray) => void) => {
    const re = new RegExp(pattern.source, pattern.flags);
    let match: RegExpExecArray | null;
    while ((match = re.exec(text)) !== null) {
      take(match);
    }
  };
  each(PANDOC, match => found.push([match.index, match[1] ?? match[2]]));
  for (const pattern of [MYST, HTML, LATEX]) {
    each(pattern, match => {
      for (const key of match[1].split(',')) {
        if (key.trim()) {
          found.push([match.index, key.trim()]);
        }
      }
    });
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, key]) => key);
}

/**
 * The distinct keys cited in the markdown and raw cells of a notebook, first use first.
 */
export function citedKeys(
  cells: readonly { type: string; source: string }[]
): string[] {
  const keys = new Set<string>();
  for (const cell of cells) {
    if (cell.type === 'markdown' || cell.type === 'raw') {
      keysInText(cell.source).forEach(key => keys.add(key));
    }
  }
  return [...keys];
}
