/**
 * Bookkeeping of the works cited in a notebook and of its References cell.
 *
 * Pure functions over plain data, so that they can be tested without JupyterLab. The
 * References cell is ordinary markdown (a heading and a numbered list), so the notebook
 * renders the same anywhere; the cell is ours only by its metadata (`galactica.role` is
 * `references`, with the list under `galactica.references`), never by its heading.
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
   * Marks the cell as our References cell.
   */
  role: typeof REFERENCES_ROLE;
  /**
   * The works, numbered from 1 in this order.
   */
  references: IReference[];
}

/**
 * The `role` of our References cell in its `galactica` metadata.
 */
export const REFERENCES_ROLE = 'references';

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
 * Whether a cell is our References cell: only our own metadata says so (a user's cell with a
 * "References" heading is the user's, never rewritten).
 */
export function isReferencesCell(
  metadata: Record<string, unknown> | undefined
): boolean {
  const meta = metadata?.[METADATA_KEY] as
    Partial<IReferencesMetadata> | undefined;
  return (
    !!meta &&
    typeof meta === 'object' &&
    (meta.role === REFERENCES_ROLE || Array.isArray(meta.references))
  );
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
 * A citation in the `numbered` format: `[[3]](#References)`.
 */
const CITATION =
  /\[\[(\d+)\]\]\(#References\)|\[START_REF\]([\s\S]*?)\[END_REF\]|\[@([^\]\n]+)\]/g;

/**
 * A replacement of `[start, end)` in a cell's source.
 */
export interface ITextEdit {
  /**
   * The cell's index.
   */
  cell: number;
  start: number;
  end: number;
  /**
   * The new text.
   */
  text: string;
}

/**
 * What to do to a notebook so that its References cell lists the works in reading order.
 */
export interface IReferencesPlan {
  /**
   * Index of our References cell, or -1 when one must be added at the end.
   */
  index: number;
  /**
   * Whether our References cell must move to the end.
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
  /**
   * The cited work's number (0 when none was cited).
   */
  number: number;
  /**
   * Numbered citations to rewrite (renumbered), within a cell last first.
   */
  edits: ITextEdit[];
}

/**
 * Index of our References cell (by its metadata), or -1.
 */
export function findReferencesCell(cells: readonly ICellInfo[]): number {
  return cells.findIndex(
    c => c.type === 'markdown' && isReferencesCell(c.metadata)
  );
}

/**
 * The works listed in our References cell's metadata, in their numbers' order.
 */
export function listedReferences(cells: readonly ICellInfo[]): IReference[] {
  const index = findReferencesCell(cells);
  const meta = cells[index]?.metadata?.[METADATA_KEY] as
    Partial<IReferencesMetadata> | undefined;
  return Array.isArray(meta?.references) ? [...meta!.references] : [];
}

/**
 * The number a work gets before the notebook is renumbered: its number in the list, or
 * the next one.
 */
export function provisionalNumber(
  cells: readonly ICellInfo[],
  ref: IReference
): number {
  return addReference(listedReferences(cells), ref).number;
}

/**
 * Plan the References cell after citing `cited` (already written in the cells with its
 * {@link provisionalNumber}, if given).
 *
 * The works are numbered in reading order, as LaTeX and Pandoc do: by their first citation
 * in the markdown cells from the top; each numbered citation keeps its work (a citation
 * written earlier than the others renumbers them). Works listed but no longer cited stay
 * at the end of the list.
 */
export function planReferences(
  cells: readonly ICellInfo[],
  cited: IReference | null,
  heading = 'References'
): IReferencesPlan {
  const index = findReferencesCell(cells);
  let listed = listedReferences(cells);
  if (cited) {
    listed = addReference(listed, cited).references;
  }
  const order: IReference[] = [];
  const seen = new Set<string>();
  const note = (ref: IReference) => {
    const key = referenceKey(ref);
    if (!seen.has(key)) {
      seen.add(key);
      order.push(ref);
    }
  };
  const numbered: {
    cell: number;
    start: number;
    end: number;
    ref: IReference;
  }[] = [];
  cells.forEach((cell, i) => {
    if (i === index || cell.type !== 'markdown') {
      return;
    }
    const re = new RegExp(CITATION.source, 'g');
    let match: RegExpExecArray | null;
    while ((match = re.exec(cell.source)) !== null) {
      if (match[1] !== undefined) {
        const ref = listed[Number(match[1]) - 1];
        if (ref) {
          note(ref);
          const start = match.index!;
          numbered.push({ cell: i, start, end: start + match[0].length, ref });
        }
      } else {
        const body = (match[2] ?? match[3] ?? '').trim();
        if (body) {
          note(parseReference(body));
        }
      }
    }
  });
  for (const ref of listed) {
    note(ref);
  }
  const numberOf = new Map(order.map((ref, i) => [referenceKey(ref), i + 1]));
  const edits: ITextEdit[] = [];
  for (const { cell, start, end, ref } of numbered) {
    const text = `[[${numberOf.get(referenceKey(ref))}]](#References)`;
    if (cells[cell].source.slice(start, end) !== text) {
      edits.push({ cell, start, end, text });
    }
  }
  edits.sort((a, b) => a.cell - b.cell || b.start - a.start);
  return {
    index,
    move: index !== -1 && index !== cells.length - 1,
    source: renderReferences(order, heading),
    metadata: { role: REFERENCES_ROLE, references: order },
    number: cited ? (numberOf.get(referenceKey(cited)) ?? 0) : 0,
    edits
  };
}
