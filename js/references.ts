/**
 * Bookkeeping of the works cited in a notebook and of its References cell.
 *
 * Pure functions over plain data, so that they can be tested without JupyterLab. The
 * References cell is ordinary markdown (a heading and a numbered list), so the notebook
 * renders the same anywhere; the list is also kept in the cell's metadata under
 * `galactica.references` so that numbers stay stable.
 */

/**
 * One cited work.
 */
export interface IReference {
  /**
   * The work as GALACTICA writes it: `Title, First author`.
   */
  text: string;
  /**
   * The title.
   */
  title: string;
  /**
   * The first author, if known.
   */
  author: string | null;
}

/**
 * How a citation is written at the cursor.
 */
export type CitationFormat = 'numbered' | 'galactica' | 'author-title';

/**
 * The metadata key of the References cell.
 */
export const METADATA_KEY = 'galactica';

/**
 * The metadata of the References cell.
 */
export interface IReferencesMetadata {
  /**
   * Marks the cell as the References cell.
   */
  references: IReference[];
}

/**
 * A key that identifies a work whatever its spacing or case.
 */
export function referenceKey(ref: Pick<IReference, 'text'>): string {
  return ref.text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/**
 * Split `Title, First author` into its parts, as the server's parser does.
 */
export function parseReference(raw: string): IReference {
  const text = raw
    .replace(/\[END_REF\][\s\S]*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
  const comma = text.lastIndexOf(', ');
  if (comma === -1) {
    return { text, title: text, author: null };
  }
  const author = text.slice(comma + 2).trim();
  if (!author || author.split(' ').length > 4) {
    return { text, title: text, author: null };
  }
  return { text, title: text.slice(0, comma).trim(), author };
}

/**
 * Add a work to the list unless it is there already.
 *
 * @returns the new list and the 1-based number of the work in it
 */
export function addReference(
  refs: readonly IReference[],
  ref: IReference
): { references: IReference[]; number: number; added: boolean } {
  const key = referenceKey(ref);
  const at = refs.findIndex(r => referenceKey(r) === key);
  if (at !== -1) {
    return { references: [...refs], number: at + 1, added: false };
  }
  return {
    references: [...refs, ref],
    number: refs.length + 1,
    added: true
  };
}

/**
 * Every work cited in GALACTICA's markup (`[START_REF] Title, Author[END_REF]`) or with the
 * `[@Title, Author]` trigger in a text, in order of appearance.
 */
export function extractCitations(source: string): IReference[] {
  const found: IReference[] = [];
  const re = /\[START_REF\]([\s\S]*?)\[END_REF\]|\[@([^\]\n]+)\]/g;
  let match: RegExpExecArray | null;
  while ((match = re.exec(source)) !== null) {
    const body = (match[1] ?? match[2] ?? '').trim();
    if (body) {
      found.push(parseReference(body));
    }
  }
  return found;
}

/**
 * Merge the works cited in `sources` into `refs`, keeping the existing numbers.
 */
export function collectReferences(
  refs: readonly IReference[],
  sources: readonly string[]
): IReference[] {
  let merged = [...refs];
  for (const source of sources) {
    for (const ref of extractCitations(source)) {
      merged = addReference(merged, ref).references;
    }
  }
  return merged;
}

/**
 * A search link that lets the reader check that a suggested work exists.
 */
export function verifyUrl(ref: IReference): string {
  return `https://scholar.google.com/scholar?q=${encodeURIComponent(ref.text)}`;
}

/**
 * Escape the characters that would turn a title into markdown markup.
 */
function escapeMarkdown(text: string): string {
  return text.replace(/([\\`*_[\]<>])/g, '\\$1');
}

/**
 * The markdown of the References cell.
 */
export function renderReferences(
  refs: readonly IReference[],
  heading = 'References'
): string {
  const lines = [`## ${heading}`, ''];
  refs.forEach((ref, i) => {
    const title = escapeMarkdown(ref.title);
    const author = ref.author ? `, ${escapeMarkdown(ref.author)}` : '';
    lines.push(`${i + 1}. ${title}${author} ([verify](${verifyUrl(ref)}))`);
  });
  lines.push(
    '',
    '<small>Suggested by GALACTICA: check that each work exists before you rely on it.</small>'
  );
  return lines.join('\n');
}

/**
 * Read the works back from a References cell's markdown (when its metadata was lost).
 */
export function parseReferencesMarkdown(source: string): IReference[] {
  const refs: IReference[] = [];
  for (const line of source.split('\n')) {
    const match = /^\s*\d+\.\s+(.*?)(?:\s+\(\[verify\]\([^)]*\)\))?\s*$/.exec(
      line
    );
    if (match) {
      refs.push(parseReference(match[1].replace(/\\(.)/g, '$1')));
    }
  }
  return refs;
}

/**
 * Whether a cell (its metadata and source) is the References cell.
 */
export function isReferencesCell(
  metadata: Record<string, unknown> | undefined,
  source: string,
  heading = 'References'
): boolean {
  const meta = metadata?.[METADATA_KEY] as
    Partial<IReferencesMetadata> | undefined;
  if (meta && Array.isArray(meta.references)) {
    return true;
  }
  return new RegExp(`^#{1,6}\\s+${escapeRegExp(heading)}\\s*$`, 'm').test(
    source.split('\n', 1)[0] ?? ''
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The citation written at the cursor for the work numbered `number`.
 */
export function formatCitation(
  ref: IReference,
  number: number,
  format: CitationFormat
): string {
  switch (format) {
    case 'galactica':
      return `[START_REF] ${ref.text}[END_REF]`;
    case 'author-title':
      return ref.author
        ? `(${ref.author}, *${ref.title}*)`
        : `(*${ref.title}*)`;
    case 'numbered':
    default:
      return `[[${number}]](#References)`;
  }
}

/**
 * A plain description of a notebook cell, enough for the bookkeeping.
 */
export interface ICellInfo {
  /**
   * The cell type.
   */
  type: string;
  /**
   * The cell's source.
   */
  source: string;
  /**
   * The cell's metadata.
   */
  metadata?: Record<string, unknown>;
}

/**
 * What to do to a notebook so that its References cell lists `refs`.
 */
export interface IReferencesPlan {
  /**
   * Index of the existing References cell, or -1 when one must be added at the end.
   */
  index: number;
  /**
   * Whether the existing References cell must move to the end.
   */
  move: boolean;
  /**
   * The cell's new source.
   */
  source: string;
  /**
   * The cell's new metadata value under `galactica`.
   */
  metadata: IReferencesMetadata;
}

/**
 * Plan the References cell for a notebook after citing `cited` (if given).
 *
 * The works are those already in the References cell, then every work cited in the
 * notebook's markup, then the new one; numbers never change once given.
 */
export function planReferences(
  cells: readonly ICellInfo[],
  cited: IReference | null,
  heading = 'References'
): IReferencesPlan & { number: number } {
  const index = cells.findIndex(
    c =>
      c.type === 'markdown' && isReferencesCell(c.metadata, c.source, heading)
  );
  let refs: IReference[] = [];
  if (index !== -1) {
    const meta = cells[index].metadata?.[METADATA_KEY] as
      Partial<IReferencesMetadata> | undefined;
    refs = Array.isArray(meta?.references)
      ? [...meta!.references]
      : parseReferencesMarkdown(cells[index].source);
  }
  refs = collectReferences(
    refs,
    cells
      .filter((c, i) => i !== index && c.type === 'markdown')
      .map(c => c.source)
  );
  let number = 0;
  if (cited) {
    const result = addReference(refs, cited);
    refs = result.references;
    number = result.number;
  }
  return {
    index,
    move: index !== -1 && index !== cells.length - 1,
    source: renderReferences(refs, heading),
    metadata: { references: refs },
    number
  };
}
