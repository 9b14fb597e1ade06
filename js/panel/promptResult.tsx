/**
 * A prompt-library result, read through a tagged union by what the template's result holds
 * (text, list, table, equation, molecule, sequence): how it is shown and what is inserted.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { equationMarkdown } from '../actions';
import { IGalactica } from '../service';
import {
  IMoleculeDrawing,
  IPromptResult,
  IPromptTemplate,
  ISmilesCheck
} from '../tokens';
import { errorMessage } from './useTask';

/**
 * A template's result by kind.
 */
export type PromptOutcome =
  | { kind: 'text'; text: string }
  | { kind: 'sequence'; text: string; sequence: string }
  | { kind: 'list'; text: string; items: string[] }
  | {
      kind: 'table';
      text: string;
      name: string | null;
      properties: Record<string, string>;
    }
  | { kind: 'equation'; text: string; latex: string | null }
  | { kind: 'molecule'; text: string; smiles: string; check: ISmilesCheck };

/**
 * The outcome of a template's result (a kind the sidebar does not know reads as text).
 */
export function promptOutcome(
  template: IPromptTemplate,
  result: IPromptResult
): PromptOutcome {
  const text = result.text ?? '';
  switch (template.result) {
    case 'list':
      return { kind: 'list', text, items: result.items ?? [] };
    case 'table':
      return {
        kind: 'table',
        text,
        name: result.name ?? null,
        properties: result.properties ?? {}
      };
    case 'equation':
      return { kind: 'equation', text, latex: result.latex ?? null };
    case 'molecule':
      return {
        kind: 'molecule',
        text,
        smiles: result.smiles ?? text,
        check: result.check ?? { valid: null, error: null }
      };
    case 'sequence':
      return { kind: 'sequence', text, sequence: result.sequence ?? text };
    default:
      return { kind: 'text', text };
  }
}

/**
 * The markdown Insert writes (and Copy copies).
 */
export function outcomeMarkdown(outcome: PromptOutcome): string {
  switch (outcome.kind) {
    case 'list':
      return outcome.items.length
        ? outcome.items.map(item => `- ${item}`).join('\n')
        : outcome.text;
    case 'table': {
      const rows = Object.entries(outcome.properties);
      if (rows.length === 0) {
        return outcome.text;
      }
      return [
        outcome.name ? `**${outcome.name}**\n` : '',
        '| Property | Value |',
        '|---|---|',
        ...rows.map(([key, value]) => `| ${key} | ${value} |`)
      ]
        .filter(line => line !== '')
        .join('\n');
    }
    case 'equation':
      return outcome.latex ? equationMarkdown(outcome.latex) : outcome.text;
    case 'molecule':
      return `\`${outcome.smiles}\``;
    case 'sequence':
      return `\`${outcome.sequence}\``;
    case 'text':
      return outcome.text;
  }
}

/**
 * A molecule: its 2D structure when the server draws it, the SMILES, and whether it parses.
 */
export function MoleculeView(props: {
  galactica: Pick<IGalactica, 'drawMolecule'>;
  smiles: string;
  check: ISmilesCheck;
  rdkit: boolean;
  trans: TranslationBundle;
}): JSX.Element {
  const { smiles, trans } = props;
  const [drawing, setDrawing] = React.useState<IMoleculeDrawing | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  React.useEffect(() => {
    setDrawing(null);
    setError(null);
    if (!props.rdkit || !smiles || props.check.valid === false) {
      return;
    }
    let live = true;
    props.galactica.drawMolecule(smiles).then(
      drawn => live && setDrawing(drawn),
      reason => live && setError(errorMessage(reason))
    );
    return () => {
      live = false;
    };
  }, [smiles, props.rdkit, props.check.valid]);
  const check = drawing?.check ?? props.check;
  return (
    <div className="jp-galactica-molecule">
      {drawing?.svg && (
        <img
          className="jp-galactica-molecule-svg"
          alt={trans.__('2D structure of %1', smiles)}
          src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(drawing.svg)}`}
        />
      )}
      <code className="jp-galactica-smiles">{smiles || '-'}</code>
      {check.valid === true ? (
        <div className="jp-galactica-note jp-galactica-smiles-check">
          {trans.__(
            'Parses with RDKit: %1, canonical %2',
            check.formula ?? '?',
            check.canonical ?? '?'
          )}
        </div>
      ) : (
        <div
          className="jp-galactica-error jp-galactica-smiles-check"
          data-valid={String(check.valid)}
        >
          {check.error ??
            (smiles
              ? trans.__('The SMILES was not checked.')
              : trans.__('GALACTICA wrote no SMILES.'))}
        </div>
      )}
      {error && <div className="jp-galactica-error">{error}</div>}
    </div>
  );
}

/**
 * A prompt-library result as the sidebar shows it.
 */
export function PromptOutcomeView(props: {
  outcome: PromptOutcome;
  galactica: Pick<IGalactica, 'drawMolecule'>;
  rdkit: boolean;
  trans: TranslationBundle;
}): JSX.Element {
  const { outcome, trans } = props;
  switch (outcome.kind) {
    case 'molecule':
      return (
        <MoleculeView
          galactica={props.galactica}
          smiles={outcome.smiles}
          check={outcome.check}
          rdkit={props.rdkit}
          trans={trans}
        />
      );
    case 'list':
      return outcome.items.length ? (
        <ul className="jp-galactica-prompt-items">
          {outcome.items.map((item, i) => (
            <li key={i}>{item}</li>
          ))}
        </ul>
      ) : (
        <div className="jp-galactica-text">{outcome.text}</div>
      );
    case 'table': {
      const rows = Object.entries(outcome.properties);
      return (
        <div className="jp-galactica-prompt-table">
          {outcome.name && <strong>{outcome.name}</strong>}
          {rows.length ? (
            <table>
              <tbody>
                {rows.map(([key, value]) => (
                  <tr key={key}>
                    <th>{key}</th>
                    <td>{value}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div className="jp-galactica-text">{outcome.text}</div>
          )}
        </div>
      );
    }
    case 'equation':
      return (
        <div className="jp-galactica-equation">
          <code>{outcome.latex ?? outcome.text}</code>
        </div>
      );
    case 'sequence':
      return <code className="jp-galactica-sequence">{outcome.sequence}</code>;
    case 'text':
      return <div className="jp-galactica-text">{outcome.text}</div>;
  }
}
