/**
 * The References cell of a notebook that cites its library, and the export of the cited
 * entries as a `.bib`.
 *
 * The entries are formatted on the server by a real CSL processor (citeproc-py, `POST
 * /galactica/library/format`), never by hand here. The cell is ours only by its metadata
 * (`galactica.role` is `bibliography`, with the keys it lists); it is a different cell from
 * the numbered References list of free suggestions (`galactica.role` is `references`).
 */
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from '../api';
import { citedKeys } from './insert';

/**
 * The metadata key of our cells.
 */
export const METADATA_KEY = 'galactica';

/**
 * The `role` of the library's References cell.
 */
export const BIBLIOGRAPHY_ROLE = 'bibliography';

/**
 * The most keys one request may name (as the server's MAX_KEYS).
 */
export const MAX_KEYS = 5000;

/**
 * One reference as the CSL processor wrote it.
 */
export interface IFormattedReference {
  key: string;
  /**
   * The formatted reference (Markdown: values escaped, titles in italics as the style says).
   */
  text: string;
}

/**
 * The answer of `POST /galactica/library/format`.
 */
export interface IFormatResult {
  references: IFormattedReference[];
  /**
   * Keys asked for that the library does not hold.
   */
  missing: string[];
  /**
   * The CSL style used.
   */
  style: string;
  origin: string;
  sources: string[];
  size: number;
  problems: { source: string; line: number | null; message: string }[];
}

/**
 * The answer of `POST /galactica/library/export`.
 */
export interface IExportResult {
  /**
   * The `.bib` written, relative to the Jupyter root.
   */
  path: string;
  written: string[];
  missing: string[];
}

/**
 * The metadata of the library's References cell.
 */
export interface IBibliographyMetadata {
  role: typeof BIBLIOGRAPHY_ROLE;
  /**
   * The keys listed, in the style's order.
   */
  keys: string[];
  /**
   * The CSL style they were formatted in.
   */
  style: string;
}

/**
 * A plain notebook cell.
 */
export interface ICell {
  type: string;
  source: string;
  metadata?: Record<string, unknown>;
}

/**
 * Whether a cell is the library's References cell (by its metadata only).
 */
export function isBibliographyCell(cell: ICell): boolean {
  const meta = cell.metadata?.[METADATA_KEY] as
    Partial<IBibliographyMetadata> | undefined;
  return (
    cell.type === 'markdown' &&
    !!meta &&
    typeof meta === 'object' &&
    meta.role === BIBLIOGRAPHY_ROLE
  );
}

/**
 * Index of the library's References cell, or -1.
 */
export function findBibliographyCell(cells: readonly ICell[]): number {
  return cells.findIndex(isBibliographyCell);
}

/**
 * The keys the notebook cites, first use first, outside its References cell (at most
 * {@link MAX_KEYS}).
 */
export function notebookCitedKeys(cells: readonly ICell[]): string[] {
  return citedKeys(cells.filter(c => !isBibliographyCell(c))).slice(
    0,
    MAX_KEYS
  );
}

/**
 * The Markdown of the References cell: a heading, then each reference as the style wrote
 * it, each with an anchor `ref-KEY` that a link can point to.
 */
export function renderBibliography(
  references: readonly IFormattedReference[],
  heading = 'References'
): string {
  const lines = [`## ${heading}`, ''];
  if (references.length === 0) {
    lines.push('*No entry of the library is cited yet.*');
  }
  for (const ref of references) {
    const id = `ref-${ref.key.replace(/[^\w:.-]/g, '-')}`;
    lines.push(`<a id="${id}"></a>${ref.text}`, '');
  }
  return lines.join('\n').trimEnd();
}

/**
 * What to do to the notebook's cells so that its References cell lists `references`.
 */
export interface IBibliographyPlan {
  /**
   * The cell to update, or -1 to add one at the end.
   */
  index: number;
  source: string;
  metadata: IBibliographyMetadata;
  /**
   * Whether the cell already says exactly this (nothing to do).
   */
  unchanged: boolean;
}

/**
 * Plan the References cell for the formatted `references`.
 */
export function planBibliography(
  cells: readonly ICell[],
  references: readonly IFormattedReference[],
  style: string,
  heading = 'References'
): IBibliographyPlan {
  const index = findBibliographyCell(cells);
  const source = renderBibliography(references, heading);
  const metadata: IBibliographyMetadata = {
    role: BIBLIOGRAPHY_ROLE,
    keys: references.map(r => r.key),
    style
  };
  const old = index === -1 ? null : cells[index];
  const oldMeta = old?.metadata?.[METADATA_KEY] as
    Partial<IBibliographyMetadata> | undefined;
  const unchanged =
    !!old &&
    old.source === source &&
    JSON.stringify(oldMeta?.keys) === JSON.stringify(metadata.keys) &&
    oldMeta?.style === style;
  return { index, source, metadata, unchanged };
}

/**
 * Format the library entries `keys` of the notebook at `path` with the server's CSL
 * processor, as Markdown.
 */
export function formatReferences(
  path: string,
  keys: readonly string[],
  style?: string,
  settings?: ServerConnection.ISettings
): Promise<IFormatResult> {
  const body: Record<string, unknown> = {
    path,
    keys: [...keys],
    format: 'markdown'
  };
  if (style) {
    body.style = style;
  }
  return requestAPI<IFormatResult>(
    'library/format',
    { method: 'POST', body: JSON.stringify(body) },
    settings
  );
}

/**
 * Write the library entries `keys` as a `.bib` next to the notebook at `path` (named after
 * the notebook unless `filename` is given). Without `overwrite` an existing file is an
 * error with status 409 ({@link isExists}).
 */
export function exportBib(
  path: string,
  keys: readonly string[],
  options: { filename?: string; overwrite?: boolean } = {},
  settings?: ServerConnection.ISettings
): Promise<IExportResult> {
  return requestAPI<IExportResult>(
    'library/export',
    {
      method: 'POST',
      body: JSON.stringify({ path, keys: [...keys], ...options })
    },
    settings
  );
}

/**
 * Whether an error is the server's "that file exists" answer.
 */
export function isExists(error: unknown): boolean {
  return (
    error instanceof ServerConnection.ResponseError &&
    error.response.status === 409
  );
}

/**
 * The `.bib` named after a notebook: `paper.ipynb` gives `paper.bib`.
 */
export function bibName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return `${dot > 0 ? base.slice(0, dot) : base}.bib`;
}

/**
 * How many entries the library of the notebook at `path` holds (0 when it has none); null
 * when the server cannot say (no library endpoint, the document is not saved, a path it
 * refuses, no connection: the caller's free flow then reports what it meets).
 */
export async function librarySize(
  path: string,
  settings?: ServerConnection.ISettings
): Promise<number | null> {
  try {
    const found = await requestAPI<{ size?: number; entries?: unknown[] }>(
      `library?path=${encodeURIComponent(path)}`,
      {},
      settings
    );
    return found.size ?? found.entries?.length ?? 0;
  } catch (error) {
    console.warn('galactica-ext: cannot read the library of', path, error);
    return null;
  }
}
