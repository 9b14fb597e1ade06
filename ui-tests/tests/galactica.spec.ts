/**
 * GALACTICA in a real browser: the sidebar, notebook commands, inline completion.
 *
 * The server runs the real agent on a random-weight `tiny` GALACTICA checkpoint (see
 * jupyter_server_test_config.py). Its text is meaningless, so these tests check what the
 * interface does with whatever the model writes: where it goes, that what was shown is
 * what gets inserted, that the original text is left alone.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

const SCREENSHOTS = 'test-results/screenshots';
/** Generous: the tiny model is quick, but the machine may be busy. */
const MODEL_TIMEOUT = 60000;

test.describe.configure({ timeout: 180000 });

async function openSidebar(page: IJupyterLabPageFixture): Promise<void> {
  await page.sidebar.openTab('galactica-ext-sidebar');
  await expect(page.locator('#galactica-ext-sidebar')).toBeVisible();
  // the first test also waits for the agent, started with the server, to load the model
  await expect(
    page.locator('#galactica-ext-sidebar .jp-galactica-status')
  ).toHaveAttribute('data-state', 'ready', { timeout: 150000 });
}

/**
 * A notebook whose first cell is a markdown cell holding `source`, in edit mode with the
 * cursor at the end.
 */
async function markdownNotebook(
  page: IJupyterLabPageFixture,
  name: string,
  source: string
): Promise<void> {
  await page.notebook.createNew(name);
  await page.notebook.setCell(0, 'markdown', source);
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.press('Control+End');
}

async function cellSources(page: IJupyterLabPageFixture): Promise<string[]> {
  return page.evaluate(() => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.model.sharedModel.cells.map((c: any) => c.getSource());
  });
}

async function cellTypes(page: IJupyterLabPageFixture): Promise<string[]> {
  return page.evaluate(() => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.model.sharedModel.cells.map((c: any) => c.cell_type);
  });
}

/**
 * The ghost text once its suggestion has finished streaming (the text the user sees, as
 * the ghost text widget lays it out: lines past the first are folded away).
 */
async function finishedGhostText(
  page: IJupyterLabPageFixture
): Promise<string> {
  const ghost = page.locator('.jp-GhostText');
  await expect(ghost).toHaveCount(1, { timeout: MODEL_TIMEOUT });
  await expect(page.locator('.jp-GhostText-streamingIndicator')).toHaveCount(
    0,
    {
      timeout: MODEL_TIMEOUT
    }
  );
  const read = () =>
    ghost.evaluate(node => {
      const copy = node.cloneNode(true) as HTMLElement;
      copy
        .querySelectorAll('.jp-GhostText-expandHidden')
        .forEach(marker => marker.remove());
      return copy.textContent ?? '';
    });
  await expect
    .poll(async () => (await read()).trim().length)
    .toBeGreaterThan(0);
  return read();
}

/** The notification toast whose text contains `text`. */
function toast(page: IJupyterLabPageFixture, text: string) {
  return page.locator('.Toastify__toast').filter({ hasText: text });
}

/** Set the current notebook's cells (markdown sources and metadata) in one go. */
async function setCells(
  page: IJupyterLabPageFixture,
  cells: { source: string; metadata?: Record<string, unknown> }[]
): Promise<void> {
  await page.evaluate(cells => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    const shared = panel.content.model.sharedModel;
    shared.transact(() => {
      shared.deleteCellRange(0, shared.cells.length);
      shared.insertCells(
        0,
        cells.map(c => ({
          cell_type: 'markdown',
          source: c.source,
          metadata: c.metadata ?? {}
        }))
      );
    });
  }, cells);
}

/** Open "Cite here" at the end of cell `index`; its dialog, once suggestions are listed. */
async function openCiteHere(page: IJupyterLabPageFixture, index = 0) {
  await page.notebook.enterCellEditingMode(index);
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Alt+g');
  await page.keyboard.press('c');
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.jp-galactica-choice').first()).toBeVisible({
    timeout: MODEL_TIMEOUT
  });
  return dialog;
}

/** Whitespace aside: folded lines of ghost text lose their line breaks in the DOM. */
function squeeze(text: string): string {
  return text.replace(/\s+/g, '');
}

test.describe('GALACTICA', () => {
  test('the sidebar shows the model ready', async ({ page }) => {
    await page.notebook.createNew('status.ipynb');
    await openSidebar(page);
    const served = await (await page.request.get('galactica/status')).json();
    expect(served.state).toBe('ready');
    expect(served.backend).toBe('local');
    const status = page.locator('#galactica-ext-sidebar .jp-galactica-status');
    await expect(status.locator('.jp-galactica-model')).toHaveText(
      served.model
    );
    await expect(status.locator('.jp-galactica-state-label')).toHaveText(
      'ready'
    );
    await expect(status.locator('.jp-galactica-facts')).toContainText('cpu');
    await expect(status.locator('.jp-galactica-facts')).toContainText(
      'float32'
    );
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-ready.png` });
  });

  test('"Summarise cell" adds a TL;DR cell below; Ctrl+Z removes only it', async ({
    page
  }) => {
    const text = 'Transformers replace recurrence with attention.';
    await markdownNotebook(page, 'summary.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    // the user's own last edit, which a plain Ctrl+Z in the cell would undo
    await page.keyboard.type(' Mine.');
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('s');
    await expect
      .poll(() => cellSources(page), { timeout: MODEL_TIMEOUT })
      .toHaveLength(2);
    const sources = await cellSources(page);
    expect(sources[0]).toBe(`${text} Mine.`); // the original is never touched
    expect(sources[1]).toMatch(/^\*\*TL;DR:\*\* \S/);
    expect(await cellTypes(page)).toEqual(['markdown', 'markdown']);
    await expect(toast(page, 'TL;DR inserted')).toBeVisible();
    await page.screenshot({ path: `${SCREENSHOTS}/summarise-cell.png` });

    // the first key the user reaches for, Ctrl+Z in the cell, removes the TL;DR only
    await page.keyboard.press('Control+z');
    await expect.poll(() => cellSources(page)).toEqual([`${text} Mine.`]);
    // and the next one is the user's own undo again (how much of their typing it takes
    // back is CodeMirror's grouping, which depends on typing speed: at least " Mine.")
    await page.keyboard.press('Control+z');
    await expect
      .poll(async () => {
        const after = await cellSources(page);
        return after.length === 1 && text.startsWith(after[0]);
      })
      .toBe(true);
  });

  test("the notification's Undo removes the TL;DR; `z` in command mode too", async ({
    page
  }) => {
    const text = 'Attention weighs every token against every other.';
    await markdownNotebook(page, 'summary-undo.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('s');
    await expect
      .poll(() => cellSources(page), { timeout: MODEL_TIMEOUT })
      .toHaveLength(2);
    await toast(page, 'TL;DR inserted')
      .getByRole('button', { name: 'Undo' })
      .click();
    await expect.poll(() => cellSources(page)).toEqual([text]);

    // again, then `z` in command mode: one notebook undo step removes it
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('s');
    await expect
      .poll(() => cellSources(page), { timeout: MODEL_TIMEOUT })
      .toHaveLength(2);
    await page.keyboard.press('Escape');
    await page.keyboard.press('z');
    await expect.poll(() => cellSources(page)).toEqual([text]);
  });

  test('typing in a markdown cell shows ghost text and Tab accepts it', async ({
    page
  }) => {
    await markdownNotebook(page, 'ghost.ipynb', '');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    const typed = 'The transformer architecture';
    await page.keyboard.type(typed, { delay: 20 });
    const shown = await finishedGhostText(page);
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-text.png` });
    await page.keyboard.press('Tab');
    // the cell grows by what was shown
    await expect
      .poll(async () => squeeze((await cellSources(page))[0]))
      .toBe(squeeze(typed + shown));
    const source = (await cellSources(page))[0];
    expect(source.startsWith(typed)).toBe(true);
    expect(source.length).toBeGreaterThan(typed.length);
  });

  test('after [@ the ghost text is a reference', async ({ page }) => {
    await markdownNotebook(page, 'ref-trigger.ipynb', '');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    const typed = 'Attention models [@';
    await page.keyboard.type(typed, { delay: 20 });
    const shown = await finishedGhostText(page);
    expect(shown.trimEnd().endsWith(']')).toBe(true); // the reference is closed
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-reference.png` });
    await page.keyboard.press('Tab');
    await expect
      .poll(async () => squeeze((await cellSources(page))[0]))
      .toBe(squeeze(typed + shown));
  });

  test('inside $$ the ghost text is LaTeX', async ({ page }) => {
    await markdownNotebook(page, 'latex.ipynb', '');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    const typed = 'Mass and energy:\n\n$$';
    await page.keyboard.type(typed, { delay: 20 });
    const shown = await finishedGhostText(page);
    expect(shown).not.toContain('$$'); // it stops where the equation ends
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-latex.png` });
  });

  test('"Cite here" adds a reference and the References cell', async ({
    page
  }) => {
    const text = 'Self-attention is all a translation model needs';
    await markdownNotebook(page, 'cite.ipynb', text);
    await openSidebar(page);

    /** Run "Cite here" at the end of the first cell; the chosen suggestion's link. */
    const citeHere = async (): Promise<string> => {
      const dialog = await openCiteHere(page);
      await expect(dialog).toContainText('check that the work exists');
      // a list of wrapped, readable choices: none overflows sideways
      const choices = dialog.locator('.jp-galactica-choice');
      for (let i = 0; i < (await choices.count()); i++) {
        const fits = await choices
          .nth(i)
          .evaluate(node => node.scrollWidth <= node.clientWidth + 1);
        expect(fits).toBe(true);
      }
      await expect(
        choices.first().locator('input[type="radio"]')
      ).toBeChecked();
      const href = await choices.first().locator('a').getAttribute('href');
      expect(href).toContain('q=');
      return href!;
    };

    const first = await citeHere();
    await page.screenshot({ path: `${SCREENSHOTS}/cite-choose.png` });
    const dialog = page.locator('.jp-Dialog');
    await dialog.getByRole('button', { name: 'Cite' }).click();
    await expect(dialog).toHaveCount(0);
    await expect
      .poll(() => cellSources(page), { timeout: 10000 })
      .toHaveLength(2);
    let sources = await cellSources(page);
    expect(sources[0]).toBe(`${text} [[1]](#References)`);
    expect(sources[1]).toMatch(/^## References\n\n1\. \S/);
    // the entry is the chosen work (its "verify" link searches for its exact text)
    expect(sources[1]).toContain(`(${first})`);

    // cite again after more text: a new work gets the next number, the same work keeps
    // its own; either way one References cell lists each work once
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await page.keyboard.type('. Again');
    const second = await citeHere();
    await dialog.getByRole('button', { name: 'Cite' }).click();
    const number = second === first ? 1 : 2;
    await expect
      .poll(async () => (await cellSources(page))[0], { timeout: 10000 })
      .toBe(`${text} [[1]](#References). Again [[${number}]](#References)`);
    sources = await cellSources(page);
    expect(sources.length).toBe(2);
    const entries = sources[1].split('\n').filter(line => /^\d+\. /.test(line));
    expect(entries.length).toBe(number);
    expect(entries[number - 1]).toContain(`(${second})`);
    await page.notebook.runCell(1, true);
    // rendered as plain markdown: a numbered list of the works
    await expect(
      page
        .locator('.jp-Notebook .jp-Cell')
        .nth(1)
        .locator('.jp-RenderedMarkdown ol > li')
    ).toHaveCount(number);
    await page.screenshot({ path: `${SCREENSHOTS}/cite-references.png` });
  });

  test('the sidebar previews an equation and inserts it', async ({ page }) => {
    const text = 'the energy of a body at rest';
    await markdownNotebook(page, 'equation.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+a');
    const sidebar = page.locator('#galactica-ext-sidebar');
    await sidebar.locator('.jp-galactica-task-equation').click();
    const result = sidebar.locator('.jp-galactica-equation');
    await expect(result.locator('code')).toHaveText(/\S/, {
      timeout: MODEL_TIMEOUT
    });
    const latex = await result.locator('code').textContent();
    // typeset by the app's LaTeX typesetter (MathJax)
    await expect(
      result.locator('.jp-galactica-equation-preview mjx-container')
    ).toBeVisible({ timeout: 20000 });
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-equation.png` });
    await sidebar.locator('.jp-galactica-insert').click();
    await expect
      .poll(async () => (await cellSources(page))[0])
      .toBe(`${text}\n\n$$\n${latex}\n$$\n`);
  });

  test('the sidebar lists citations to choose from', async ({ page }) => {
    const text = 'Pre-training deep transformers';
    await markdownNotebook(page, 'sidebar-cite.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    const sidebar = page.locator('#galactica-ext-sidebar');
    await sidebar.locator('.jp-galactica-task-cite').click();
    const options = sidebar.locator('.jp-galactica-citations li');
    await expect(options.first()).toBeVisible({ timeout: MODEL_TIMEOUT });
    const count = await options.count();
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(3); // the citationCount setting
    const option = options.nth(count - 1);
    await option.click();
    await expect(option).toHaveAttribute('aria-selected', 'true');
    const verify = await option.locator('a').getAttribute('href');
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-citations.png` });
    await sidebar.locator('.jp-galactica-insert').click();
    await expect.poll(async () => (await cellSources(page)).length).toBe(2);
    const sources = await cellSources(page);
    expect(sources[0]).toBe(`${text} [[1]](#References)`);
    expect(sources[1]).toMatch(/^## References\n\n1\. \S/);
    expect(sources[1]).toContain(`(${verify})`); // the chosen one
  });

  test('"Equation from selection" inserts $$...$$ after it', async ({
    page
  }) => {
    const text = 'the energy of a body at rest';
    await markdownNotebook(page, 'equation-command.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('e');
    await expect
      .poll(async () => (await cellSources(page))[0], {
        timeout: MODEL_TIMEOUT
      })
      .toMatch(/^the energy of a body at rest\n\n\$\$\n\S.*\n\$\$\n$/s);
    expect((await cellSources(page)).length).toBe(1);
  });

  test('the cell context menu offers the GALACTICA commands', async ({
    page
  }) => {
    await markdownNotebook(page, 'menu.ipynb', 'Some text');
    await page.notebook.leaveCellEditingMode(0);
    await page
      .locator('.jp-Notebook .jp-Cell')
      .first()
      .click({ button: 'right' });
    const menu = page.locator('.lm-Menu');
    for (const label of [
      'Summarise Cell',
      'Equation from Selection',
      'Cite Here'
    ]) {
      await expect(menu.getByText(label, { exact: true })).toBeVisible();
    }
    await page.screenshot({ path: `${SCREENSHOTS}/context-menu.png` });
    await page.keyboard.press('Escape');
  });

  test('"Cite here" never rewrites a cell of the user headed References, and lands where asked', async ({
    page
  }) => {
    await page.notebook.createNew('cite-anchor.ipynb');
    const claim = 'Attention replaces recurrence in translation models';
    const users =
      '# References\n\n- my own notes\n- [a link](https://example.org)';
    await setCells(page, [{ source: claim }, { source: users }]);
    await openSidebar(page);
    const dialog = await openCiteHere(page, 0);
    const href = await dialog
      .locator('.jp-galactica-choice a')
      .first()
      .getAttribute('href');
    // while the user chooses, the text changes above the cursor and a new selection is made
    // (a collaborator's edit, then the user's own selection of the first word)
    await page.evaluate(() => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      panel.content.model.sharedModel
        .getCell(0)
        .updateSource(0, 0, 'Since 2017, ');
      const editor = panel.content.widgets[0].editor;
      editor.setSelection({
        start: { line: 0, column: 0 },
        end: { line: 0, column: 5 }
      });
    });
    await dialog.getByRole('button', { name: 'Cite' }).click();
    await expect
      .poll(() => cellSources(page), { timeout: 10000 })
      .toHaveLength(3);
    const sources = await cellSources(page);
    // after the sentence it was asked for, nothing replaced
    expect(sources[0]).toBe(`Since 2017, ${claim} [[1]](#References)`);
    expect(sources[1]).toBe(users); // the user's cell, untouched and in place
    expect(sources[2]).toMatch(/^## References\n\n1\. \S/);
    expect(sources[2]).toContain(`(${href})`);
    const metadata = await page.evaluate(() => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      return panel.content.model.sharedModel.cells.map((c: any) =>
        c.getMetadata()
      );
    });
    expect(metadata[1].galactica).toBeUndefined();
    expect(metadata[2].galactica.role).toBe('references');
  });

  test('references are numbered in reading order, renumbered by an earlier citation', async ({
    page
  }) => {
    await page.notebook.createNew('cite-order.ipynb');
    const known = {
      text: 'An invented work for this test, Nobody',
      title: 'An invented work for this test',
      author: 'Nobody'
    };
    await setCells(page, [
      { source: 'Deep networks learn representations' },
      { source: 'As shown before [[1]](#References).' },
      {
        source: '## References\n\n1. An invented work for this test, Nobody',
        metadata: { galactica: { role: 'references', references: [known] } }
      }
    ]);
    await openSidebar(page);
    const dialog = await openCiteHere(page, 0);
    const href = await dialog
      .locator('.jp-galactica-choice a')
      .first()
      .getAttribute('href');
    await dialog.getByRole('button', { name: 'Cite' }).click();
    await expect
      .poll(async () => (await cellSources(page))[0], { timeout: 10000 })
      .toBe('Deep networks learn representations [[1]](#References)');
    const sources = await cellSources(page);
    // the work cited before keeps its entry under its new number
    expect(sources[1]).toBe('As shown before [[2]](#References).');
    const entries = sources[2].split('\n').filter(line => /^\d+\. /.test(line));
    expect(entries).toHaveLength(2);
    expect(entries[0]).toContain(`(${href})`);
    expect(entries[1]).toMatch(/^2\. An invented work for this test, Nobody/);
    await page.notebook.runCell(2, true);
    await page.screenshot({
      path: `${SCREENSHOTS}/references-reading-order.png`
    });
  });

  test('the status bar shows the model; a click opens the sidebar', async ({
    page
  }) => {
    await page.notebook.createNew('statusbar.ipynb');
    const item = page.locator('.jp-galactica-statusItem');
    await expect(item).toHaveAttribute('data-state', 'ready', {
      timeout: 150000
    });
    const served = await (await page.request.get('galactica/status')).json();
    const name = served.model
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop();
    await expect(item).toHaveText(`GALACTICA: ${name}`);
    await item.click();
    await expect(page.locator('#galactica-ext-sidebar')).toBeVisible();
  });

  test('after an unload nothing loads the model until the user says so', async ({
    page
  }) => {
    await markdownNotebook(page, 'unload.ipynb', 'The proton is made of');
    await openSidebar(page);
    const status = async () =>
      (await (await page.request.get('galactica/status')).json()).state;
    const served = (await (await page.request.get('galactica/status')).json())
      .model;
    try {
      await page.evaluate(() =>
        (window as any).jupyterapp.commands.execute('galactica:unload-model')
      );
      await expect.poll(status, { timeout: 30000 }).toBe('stopped');
      const item = page.locator('.jp-galactica-statusItem');
      await expect(item).toHaveText('GALACTICA: unloaded');
      await expect(item).toHaveAttribute('title', /no ghost text/);

      // an explicit request: a notification says so, with a Load action
      await page.notebook.enterCellEditingMode(0);
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Alt+\\');
      // counted in the notification list, not as toasts (a toast closes on its own)
      const refusals = async () =>
        (await page.notifications).filter(n =>
          n.message.startsWith('No GALACTICA model is loaded')
        ).length;
      await expect.poll(refusals).toBe(1);
      await expect(
        toast(page, 'No GALACTICA model is loaded')
          .first()
          .getByRole('button', { name: 'Load' })
      ).toBeVisible();
      // a notebook command: the same, and no cell is added (its keys are exercised by
      // the Summarise tests above)
      await page.evaluate(() =>
        (window as any).jupyterapp.commands.execute('galactica:summarise-cell')
      );
      await expect.poll(refusals).toBe(2);
      // typing: no ghost text. A suggestion asked for while the model was loaded (as
      // the cell was typed) may have been shown: typing past it removes it, and
      // JupyterLab leaves two empty spacers in its place until the editor's next update;
      // one still streaming when the unload started was emptied. Counted: text one sees.
      await page.keyboard.type(' quarks and', { delay: 20 });
      await page.waitForTimeout(1500); // longer than the debounce: nothing may come
      const shownGhostText = () =>
        page
          .locator(
            '.jp-GhostText:not(.jp-GhostText-letterSpacer):not(.jp-GhostText-lineSpacer)'
          )
          .evaluateAll(
            nodes => nodes.filter(node => node.textContent?.trim()).length
          );
      expect(await shownGhostText()).toBe(0);
      expect(await status()).toBe('stopped');
      expect((await cellSources(page)).length).toBe(1);
      // the intent is kept where a reload of the page finds it
      expect(
        await page.evaluate(() =>
          window.localStorage.getItem('galactica-ext:unloaded-by-user')
        )
      ).toBe('1');

      // the user loads it again
      await page.evaluate(() =>
        (window as any).jupyterapp.commands.execute('galactica:load-model')
      );
      await expect.poll(status, { timeout: 150000 }).toBe('ready');
      const again = await (await page.request.get('galactica/status')).json();
      expect(again.model).toBe(served); // the same model, not the server's default
    } finally {
      // leave the shared server as the other tests expect it
      if ((await status()) !== 'ready') {
        await page.request.post('galactica/model', { data: { model: served } });
        await expect.poll(status, { timeout: 150000 }).toBe('ready');
      }
    }
  });

  test('after [@ with a library next to the notebook, the ghost text is a key, its title shown', async ({
    page
  }) => {
    await markdownNotebook(page, 'grounded.ipynb', '');
    const path: string = await page.evaluate(
      () => (window as any).jupyterapp.shell.currentWidget.context.path
    );
    const dir = path.includes('/')
      ? path.slice(0, path.lastIndexOf('/') + 1)
      : '';
    const bib = [
      '@article{vaswani2017attention, title={Attention Is All You Need},',
      '  author={Vaswani, Ashish and Shazeer, Noam}, year={2017}}',
      '@article{devlin2019bert, title={BERT: Pre-training of Deep Bidirectional Transformers},',
      '  author={Devlin, Jacob}, year={2019}}',
      '@article{hochreiter1997long, title={Long Short-Term Memory},',
      '  author={Hochreiter, Sepp and Schmidhuber, J{\\"u}rgen}, year={1997}}'
    ].join('\n');
    const put = await page.request.put(`api/contents/${dir}refs.bib`, {
      data: { type: 'file', format: 'text', content: bib }
    });
    expect(put.ok()).toBe(true);
    const titles: Record<string, string> = {
      vaswani2017attention: 'Attention Is All You Need',
      devlin2019bert: 'BERT: Pre-training of Deep Bidirectional Transformers',
      hochreiter1997long: 'Long Short-Term Memory'
    };
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.type('Recurrent networks remember [@', { delay: 20 });
    const shown = squeeze(await finishedGhostText(page));
    const key = Object.keys(titles).find(k => `${k}]` === shown);
    expect(key).toBeDefined(); // one of the library's keys, closed
    const hint = page.locator('.jp-galactica-ghostHint');
    await expect(hint).toContainText(titles[key!]);
    await expect(hint).toHaveAttribute('data-verified', 'true');
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-library-key.png` });

    // typing part of a key filters: only keys starting with it
    await page.keyboard.type('hoch', { delay: 20 });
    await expect
      .poll(async () => squeeze(await finishedGhostText(page)), {
        timeout: MODEL_TIMEOUT
      })
      .toBe('reiter1997long]');
    await expect(hint).toContainText('Long Short-Term Memory');
    await page.keyboard.press('Tab');
    await expect
      .poll(async () => (await cellSources(page))[0])
      .toBe('Recurrent networks remember [@hochreiter1997long]');
  });
});
