import { nullTranslator } from '@jupyterlab/translation';
import * as React from 'react';

import { outcomeMarkdown, promptOutcome } from '../panel/promptResult';
import { PromptLibrary } from '../panel/prompts';
import { IPromptTemplate } from '../tokens';
import { act, click, IMounted, mount, setValue } from './dom';
import { ScriptedGalactica } from './galactica';

const trans = nullTranslator.load('galactica_ext');

/** Two templates as the server lists them (galactica_ext.prompts.catalog()). */
const ENTITIES: IPromptTemplate = {
  name: 'entities',
  title: 'Entity extraction',
  description: 'The scientific entities an abstract mentions.',
  form: '{abstract}\n\nWhat scientific entities are mentioned in the abstract above?\n\n',
  fields: [
    {
      name: 'abstract',
      label: 'Abstract',
      kind: 'text',
      required: true,
      example: ''
    }
  ],
  source: 'galai README.md',
  max_tokens: 96,
  result: 'list'
};
const MOLECULE: IPromptTemplate = {
  name: 'molecule',
  title: 'Generate a molecule',
  description: 'A new molecule as isomeric SMILES.',
  form: '[START_I_SMILES]{prefix}',
  fields: [
    {
      name: 'prefix',
      label: 'Start of the SMILES',
      kind: 'smiles',
      required: false,
      example: 'CC'
    }
  ],
  source: 'galai docs/PROMPTBOOK.md',
  max_tokens: 200,
  result: 'molecule'
};
const NOTICE =
  'GALACTICA can make things up (citations, numbers, molecules): check what it writes.';

describe('promptOutcome', () => {
  it('reads a result by what its template holds', () => {
    const list = promptOutcome(ENTITIES, {
      text: 'A: MATH, LaTeX',
      items: ['MATH', 'LaTeX'],
      truncated: false
    });
    expect(list).toEqual({
      kind: 'list',
      text: 'A: MATH, LaTeX',
      items: ['MATH', 'LaTeX']
    });
    expect(outcomeMarkdown(list)).toBe('- MATH\n- LaTeX');
    const molecule = promptOutcome(MOLECULE, {
      text: 'CCO',
      smiles: 'CCO',
      check: { valid: false, error: 'does not parse' },
      truncated: false
    });
    expect(molecule.kind).toBe('molecule');
    expect(outcomeMarkdown(molecule)).toBe('`CCO`');
    const table = promptOutcome(
      { ...MOLECULE, result: 'table' },
      {
        text: '...',
        name: 'ethanol',
        properties: { 'Molecular Weight': '46.07' },
        truncated: false
      }
    );
    expect(outcomeMarkdown(table)).toBe(
      '**ethanol**\n\n| Property | Value |\n|---|---|\n| Molecular Weight | 46.07 |'
    );
    // a kind the sidebar does not know is shown as text
    expect(
      promptOutcome(
        { ...ENTITIES, result: 'poem' },
        { text: 'x', truncated: false }
      )
    ).toEqual({ kind: 'text', text: 'x' });
  });
});

describe('PromptLibrary', () => {
  let galactica: ScriptedGalactica;
  let view: IMounted;
  const $ = <T extends Element = HTMLElement>(selector: string) =>
    view.container.querySelector<T>(selector);

  beforeEach(async () => {
    galactica = new ScriptedGalactica();
    galactica.catalog = {
      templates: [ENTITIES, MOLECULE],
      rdkit: true,
      notice: NOTICE
    };
    view = await mount(
      <PromptLibrary
        galactica={galactica}
        currentWidget={() => null}
        trans={trans}
      />
    );
  });
  afterEach(() => view.unmount());

  it('fills a template, runs the edited prompt streamed, and shows the result', async () => {
    const options = view.container.querySelectorAll(
      '.jp-galactica-prompt-select option'
    );
    expect(Array.from(options).map(o => o.textContent)).toEqual([
      'Entity extraction',
      'Generate a molecule'
    ]);
    expect($('.jp-galactica-prompt-text')).toBeNull(); // not filled yet
    await setValue(
      $<HTMLTextAreaElement & HTMLInputElement>('[data-field="abstract"]'),
      'We solve MATH with LaTeX.'
    );
    await click($('.jp-galactica-prompt-fill'));
    expect(galactica.fills).toEqual([
      { name: 'entities', values: { abstract: 'We solve MATH with LaTeX.' } }
    ]);
    const prompt = $<HTMLTextAreaElement>('.jp-galactica-prompt-text')!;
    expect(prompt.value).toBe(
      'We solve MATH with LaTeX.\n\nWhat scientific entities are mentioned in the abstract above?\n\n'
    );
    await setValue(
      prompt as HTMLTextAreaElement & HTMLInputElement,
      'Edited.\n\nWhat scientific entities are mentioned in the abstract above?\n\n'
    );
    await click($('.jp-galactica-prompt-run'));
    expect(galactica.last.task).toBe('prompt:entities');
    expect(galactica.last.request).toEqual({
      prompt:
        'Edited.\n\nWhat scientific entities are mentioned in the abstract above?\n\n'
    });
    await act(() => galactica.last.callbacks.onToken!('A: MATH', 0));
    expect($('.jp-galactica-stream')!.textContent).toBe('A: MATH');
    await act(() =>
      galactica.last.resolve({
        text: 'A: MATH, LaTeX',
        items: ['MATH', 'LaTeX'],
        truncated: false,
        template: 'entities'
      })
    );
    const items = view.container.querySelectorAll(
      '.jp-galactica-prompt-items li'
    );
    expect(Array.from(items).map(li => li.textContent)).toEqual([
      'MATH',
      'LaTeX'
    ]);
    expect($('.jp-galactica-caveat')!.textContent).toBe(NOTICE);
    await click($('.jp-galactica-insert'));
    expect(view.container.textContent).toContain(
      'Put the cursor where the result goes.'
    );
  });

  it('shows a refused fill whole, and editing a field asks for a new fill', async () => {
    await click($('.jp-galactica-prompt-fill'));
    expect($('.jp-galactica-prompt-text')).not.toBeNull();
    await setValue(
      $<HTMLSelectElement>('.jp-galactica-prompt-select'),
      'molecule'
    );
    expect($<HTMLInputElement>('[data-field="prefix"]')!.value).toBe('CC');
    expect($('.jp-galactica-prompt-text')).toBeNull();
    galactica.catalog = { ...galactica.catalog, templates: [ENTITIES] };
    await click($('.jp-galactica-prompt-fill'));
    expect($('[role="alert"]')!.textContent).toBe(
      "unknown prompt template 'molecule'"
    );
  });

  async function runMolecule(smiles: string, valid: boolean): Promise<void> {
    await setValue(
      $<HTMLSelectElement>('.jp-galactica-prompt-select'),
      'molecule'
    );
    await click($('.jp-galactica-prompt-fill'));
    expect($<HTMLTextAreaElement>('.jp-galactica-prompt-text')!.value).toBe(
      '[START_I_SMILES]CC'
    );
    await click($('.jp-galactica-prompt-run'));
    await act(() =>
      galactica.last.resolve({
        text: smiles,
        smiles,
        check: valid
          ? { valid: true, canonical: 'CCO', formula: 'C2H6O', error: null }
          : {
              valid: false,
              error: `GALACTICA's SMILES does not parse: '${smiles}' is not valid SMILES syntax`
            },
        truncated: false
      })
    );
  }

  it('draws a molecule that parses, beside its SMILES', async () => {
    galactica.drawings.CCO = {
      smiles: 'CCO',
      check: { valid: true, canonical: 'CCO', formula: 'C2H6O', error: null },
      svg: '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg>'
    };
    await runMolecule('CCO', true);
    const image = $<HTMLImageElement>('.jp-galactica-molecule-svg')!;
    expect(decodeURIComponent(image.src)).toContain('<path d="M0 0"/>');
    expect($('.jp-galactica-smiles')!.textContent).toBe('CCO');
    expect($('.jp-galactica-smiles-check')!.textContent).toBe(
      'Parses with RDKit: C2H6O, canonical CCO'
    );
  });

  it("says when GALACTICA's SMILES does not parse, and draws nothing", async () => {
    await runMolecule('CC(C', false);
    expect($('.jp-galactica-molecule-svg')).toBeNull();
    expect($('.jp-galactica-smiles')!.textContent).toBe('CC(C');
    expect($('.jp-galactica-smiles-check')!.textContent).toContain(
      'does not parse'
    );
  });
});
