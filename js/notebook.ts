/**
 * Changes to notebooks: TL;DR cells, equations and the References cell, each one undo step.
 */
import { NotebookPanel } from '@jupyterlab/notebook';

import {
  ICellInfo,
  IReference,
  METADATA_KEY,
  planReferences,
  provisionalNumber
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
 * Make the next notebook change an undo step of its own (not merged with the user's last
 * change, nor with the next one).
 */
export function separateUndoStep(panel: NotebookPanel): void {
  (
    panel.content.model?.sharedModel as unknown as {
      undoManager?: { stopCapturing(): void };
    }
  )?.undoManager?.stopCapturing();
}

/**
 * Insert a markdown cell below cell `index` as one undo step of its own (other cells are
 * untouched).
 *
 * @returns the new cell's id
 */
export function insertMarkdownBelow(
  panel: NotebookPanel,
  index: number,
  source: string,
  metadata: Record<string, unknown> = {}
): string {
  const model = panel.content.model;
  if (!model) {
    throw new Error('the notebook has no model');
  }
  separateUndoStep(panel);
  let id = '';
  model.sharedModel.transact(() => {
    id = model.sharedModel
      .insertCell(index + 1, {
        cell_type: 'markdown',
        source,
        metadata: metadata as any
      })
      .getId();
  });
  separateUndoStep(panel);
  return id;
}

/**
 * Cite `ref` in the cell with id `cellId`, replacing `[start, end)`, and bring the References
 * cell at the end of the notebook up to date (works numbered in reading order), in one
 * undo step.
 *
 * @param write writes the citation for the work's number, returns the text to insert
 * @returns the work's number in the References list
 */
export function citeInNotebook(
  panel: NotebookPanel,
  cellId: string,
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
  const cellIndex = shared.cells.findIndex(c => c.getId() === cellId);
  if (cellIndex === -1) {
    throw new Error('the cell was deleted');
  }
  let number = 0;
  separateUndoStep(panel);
  shared.transact(() => {
    const provisional = provisionalNumber(cellInfos(panel), ref);
    shared.getCell(cellIndex).updateSource(start, end, write(provisional));
    const plan = planReferences(cellInfos(panel), ref, heading);
    number = plan.number;
    for (const edit of plan.edits) {
      shared.getCell(edit.cell).updateSource(edit.start, edit.end, edit.text);
    }
    writeReferencesCell(panel, plan);
  });
  separateUndoStep(panel);
  return number;
}

/**
 * How a References cell is to be written: inserted at the end (`index` -1) or updated
 * in place (and moved to the end when `move`), with our metadata.
 */
export interface IReferencesCellPlan {
  index: number;
  source: string;
  metadata: unknown;
  move?: boolean;
}

/**
 * Write a References cell as `plan` says; call it inside the caller's transaction, so the
 * citation and its References cell are one undo step.
 */
export function writeReferencesCell(
  panel: NotebookPanel,
  plan: IReferencesCellPlan
): void {
  const shared = panel.content.model!.sharedModel;
  const metadata = { [METADATA_KEY]: plan.metadata } as any;
  if (plan.index === -1) {
    shared.insertCell(shared.cells.length, {
      cell_type: 'markdown',
      source: plan.source,
      metadata
    });
    return;
  }
  const cell = shared.getCell(plan.index);
  if (cell.getSource() !== plan.source) {
    cell.setSource(plan.source);
  }
  cell.setMetadata({ ...cell.getMetadata(), ...metadata });
  if (plan.move) {
    shared.moveCell(plan.index, shared.cells.length - 1);
  }
}
