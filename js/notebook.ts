/**
 * Changes to notebooks: TL;DR cells, equations and the References cell, each one undo step.
 */
import { NotebookPanel } from '@jupyterlab/notebook';

import {
  ICellInfo,
  IReference,
  METADATA_KEY,
  planReferences
} from './references';

/**
 * Plain descriptions of a notebook's cells.
 */
export function cellInfos(panel: NotebookPanel): ICellInfo[] {
  const cells = panel.content.model?.sharedModel.cells ?? [];
  return cells.map(cell => ({
    type: cell.cell_type,
    source: cell.getSource(),
    metadata: cell.getMetadata() as Record<string, unknown>
  }));
}

/**
 * Insert a markdown cell below cell `index` (one undo step; other cells are untouched).
 *
 * @returns the new cell's index
 */
export function insertMarkdownBelow(
  panel: NotebookPanel,
  index: number,
  source: string,
  metadata: Record<string, unknown> = {}
): number {
  const model = panel.content.model;
  if (!model) {
    throw new Error('the notebook has no model');
  }
  const at = index + 1;
  model.sharedModel.transact(() => {
    model.sharedModel.insertCell(at, {
      cell_type: 'markdown',
      source,
      metadata: metadata as any
    });
  });
  return at;
}

/**
 * Cite `ref` in cell `cellIndex` at `offset`, and bring the References cell at the end of
 * the notebook up to date, in one undo step.
 *
 * @param write writes the citation for the work's number, returns the text to insert
 * @returns the work's number in the References list
 */
export function citeInNotebook(
  panel: NotebookPanel,
  cellIndex: number,
  start: number,
  end: number,
  ref: IReference,
  write: (number: number) => string,
  heading: string
): number {
  const model = panel.content.model;
  if (!model) {
    throw new Error('the notebook has no model');
  }
  const shared = model.sharedModel;
  const plan = planReferences(cellInfos(panel), ref, heading);
  shared.transact(() => {
    const cell = shared.getCell(cellIndex);
    cell.updateSource(start, end, write(plan.number));
    const metadata = { [METADATA_KEY]: plan.metadata } as any;
    if (plan.index === -1) {
      shared.insertCell(shared.cells.length, {
        cell_type: 'markdown',
        source: plan.source,
        metadata
      });
    } else {
      const refs = shared.getCell(plan.index);
      refs.setSource(plan.source);
      refs.setMetadata({ ...refs.getMetadata(), ...metadata });
      if (plan.move) {
        shared.moveCell(plan.index, shared.cells.length - 1);
      }
    }
  });
  return plan.number;
}
