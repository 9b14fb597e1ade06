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
async function finishedGhostText(page: IJupyterLabPageFixture): Promise<string> {
  const ghost = page.locator('.jp-GhostText');
  await expect(ghost).toHaveCount(1, { timeout: MODEL_TIMEOUT });
  await expect(page.locator('.jp-GhostText-streamingIndicator')).toHaveCount(0, {
    timeout: MODEL_TIMEOUT
  });
  const read = () =>
    ghost.evaluate(node => {
      const copy = node.cloneNode(true) as HTMLElement;
      copy
        .querySelectorAll('.jp-GhostText-expandHidden')
        .forEach(marker => marker.remove());
      return copy.textContent ?? '';
    });
  await expect.poll(async () => (await read()).trim().length).toBeGreaterThan(0);
  return read();
}

/** The References cell's identity of a work: case, spacing and punctuation aside. */
function workKey(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
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
    await expect(status.locator('.jp-galactica-model')).toHaveText(served.model);
    await expect(status.locator('.jp-galactica-state-label')).toHaveText('ready');
    await expect(status.locator('.jp-galactica-facts')).toContainText('cpu');
    await expect(status.locator('.jp-galactica-facts')).toContainText('float32');
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-ready.png` });
  });

  test('"Summarise cell" adds a TL;DR cell below, undoable', async ({ page }) => {
    const text = 'Transformers replace recurrence with attention.';
    await markdownNotebook(page, 'summary.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('s');
    await expect
      .poll(() => cellSources(page), { timeout: MODEL_TIMEOUT })
      .toHaveLength(2);
    const sources = await cellSources(page);
    expect(sources[0]).toBe(text); // the original is never touched
    expect(sources[1]).toMatch(/^\*\*TL;DR:\*\* \S/);
    expect(await cellTypes(page)).toEqual(['markdown', 'markdown']);
    await page.screenshot({ path: `${SCREENSHOTS}/summarise-cell.png` });

    // one undo step removes the summary and leaves the cell as it was
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

  test('"Cite here" adds a reference and the References cell', async ({ page }) => {
    const text = 'Self-attention is all a translation model needs';
    await markdownNotebook(page, 'cite.ipynb', text);
    await openSidebar(page);

    /** Run "Cite here" at the end of the first cell; the chosen suggestion's text. */
    const citeHere = async (): Promise<string> => {
      await page.notebook.enterCellEditingMode(0);
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Alt+g');
      await page.keyboard.press('c');
      const dialog = page.locator('.jp-Dialog');
      await expect(dialog).toBeVisible({ timeout: MODEL_TIMEOUT });
      await expect(dialog).toContainText('check that the work exists');
      const chosen = (await dialog.locator('select').inputValue()).replace(
        /^\d+\. /,
        ''
      );
      expect(chosen.trim().length).toBeGreaterThan(0);
      return chosen;
    };

    const first = await citeHere();
    await page.screenshot({ path: `${SCREENSHOTS}/cite-choose.png` });
    const dialog = page.locator('.jp-Dialog');
    await dialog.getByRole('button', { name: 'Cite' }).click();
    await expect(dialog).toHaveCount(0);
    await expect.poll(() => cellSources(page), { timeout: 10000 }).toHaveLength(2);
    let sources = await cellSources(page);
    expect(sources[0]).toBe(`${text} [[1]](#References)`);
    expect(sources[1]).toMatch(/^## References\n\n1\. \S/);
    // the entry is the chosen work (its "verify" link searches for its exact text)
    expect(sources[1]).toContain(`q=${encodeURIComponent(first)})`);

    // cite again after more text: a new work gets the next number, the same work keeps
    // its own; either way one References cell lists each work once
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await page.keyboard.type('. Again');
    const second = await citeHere();
    await dialog.getByRole('button', { name: 'Cite' }).click();
    const number = workKey(second) === workKey(first) ? 1 : 2;
    await expect
      .poll(async () => (await cellSources(page))[0], { timeout: 10000 })
      .toBe(`${text} [[1]](#References). Again [[${number}]](#References)`);
    sources = await cellSources(page);
    expect(sources.length).toBe(2);
    const entries = sources[1].split('\n').filter(line => /^\d+\. /.test(line));
    expect(entries.length).toBe(number);
    expect(entries[number - 1]).toContain(`q=${encodeURIComponent(second)})`);
    await page.notebook.runCell(1, true);
    // rendered as plain markdown: a numbered list of the works
    await expect(
      page.locator('.jp-Notebook .jp-Cell').nth(1).locator('.jp-RenderedMarkdown ol > li')
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
    await expect(result.locator('code')).toHaveText(/\S/, { timeout: MODEL_TIMEOUT });
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

  test('"Equation from selection" inserts $$...$$ after it', async ({ page }) => {
    const text = 'the energy of a body at rest';
    await markdownNotebook(page, 'equation-command.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('e');
    await expect
      .poll(async () => (await cellSources(page))[0], { timeout: MODEL_TIMEOUT })
      .toMatch(/^the energy of a body at rest\n\n\$\$\n\S.*\n\$\$\n$/s);
    expect((await cellSources(page)).length).toBe(1);
  });

  test('the cell context menu offers the GALACTICA commands', async ({ page }) => {
    await markdownNotebook(page, 'menu.ipynb', 'Some text');
    await page.notebook.leaveCellEditingMode(0);
    await page.locator('.jp-Notebook .jp-Cell').first().click({ button: 'right' });
    const menu = page.locator('.lm-Menu');
    for (const label of ['Summarise Cell', 'Equation from Selection', 'Cite Here']) {
      await expect(menu.getByText(label, { exact: true })).toBeVisible();
    }
    await page.screenshot({ path: `${SCREENSHOTS}/context-menu.png` });
    await page.keyboard.press('Escape');
  });
});
