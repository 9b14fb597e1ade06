/**
 * GALACTICA in a real browser: the sidebar, notebook commands, inline completion.
 *
 * The server's model is a scripted OpenAI-compatible server (see
 * jupyter_server_test_config.py), so that the answers are known.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

const SCREENSHOTS = 'test-results/screenshots';

async function openSidebar(page: IJupyterLabPageFixture): Promise<void> {
  await page.sidebar.openTab('galactica-ext-sidebar');
  await expect(page.locator('#galactica-ext-sidebar')).toBeVisible();
  await expect(
    page.locator('#galactica-ext-sidebar .jp-galactica-status')
  ).toHaveAttribute('data-state', 'ready', { timeout: 30000 });
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

test.describe('GALACTICA', () => {
  test('the sidebar shows the model ready', async ({ page }) => {
    await page.notebook.createNew('status.ipynb');
    await openSidebar(page);
    const status = page.locator('#galactica-ext-sidebar .jp-galactica-status');
    await expect(status.locator('.jp-galactica-model')).toHaveText(
      'fake-galactica'
    );
    await expect(status.locator('.jp-galactica-state-label')).toHaveText('ready');
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-ready.png` });
  });

  test('"Summarise cell" adds a TL;DR cell below, undoable', async ({ page }) => {
    const text = 'Transformers replace recurrence with attention.';
    await markdownNotebook(page, 'summary.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('s');
    await expect.poll(() => cellSources(page), { timeout: 20000 }).toHaveLength(2);
    const sources = await cellSources(page);
    expect(sources[0]).toBe(text);
    expect(sources[1]).toBe(
      '**TL;DR:** The cell explains how the fake model answers.'
    );
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
    await page.keyboard.type('The transformer architecture', { delay: 20 });
    const ghost = page.locator('.jp-GhostText');
    await expect(ghost).toContainText('the ghost text continues here.', {
      timeout: 20000
    });
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-text.png` });
    await page.keyboard.press('Tab');
    await expect
      .poll(async () => (await cellSources(page))[0])
      .toBe('The transformer architecture and the ghost text continues here.');
  });

  test('after [@ the ghost text is a reference', async ({ page }) => {
    await markdownNotebook(page, 'ref-trigger.ipynb', '');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.type('Attention models [@', { delay: 20 });
    const ghost = page.locator('.jp-GhostText');
    await expect(ghost).toContainText('Attention is all you need, Ashish Vaswani]', {
      timeout: 20000
    });
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-reference.png` });
    await page.keyboard.press('Tab');
    await expect
      .poll(async () => (await cellSources(page))[0])
      .toBe('Attention models [@Attention is all you need, Ashish Vaswani]');
  });

  test('inside $$ the ghost text is LaTeX', async ({ page }) => {
    await markdownNotebook(page, 'latex.ipynb', '');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.type('Mass and energy:\n\n$$', { delay: 20 });
    const ghost = page.locator('.jp-GhostText');
    await expect(ghost).toContainText('E = m c^{2}', { timeout: 20000 });
    await page.screenshot({ path: `${SCREENSHOTS}/ghost-latex.png` });
  });

  test('"Cite here" adds a reference and the References cell', async ({ page }) => {
    const text = 'Self-attention is all a translation model needs';
    await markdownNotebook(page, 'cite.ipynb', text);
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('c');
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toBeVisible({ timeout: 20000 });
    await expect(dialog).toContainText('check that the work exists');
    await page.screenshot({ path: `${SCREENSHOTS}/cite-choose.png` });
    await dialog.getByRole('button', { name: 'Cite' }).click();
    await expect.poll(() => cellSources(page), { timeout: 10000 }).toHaveLength(2);
    const sources = await cellSources(page);
    expect(sources[0]).toBe(`${text} [[1]](#References)`);
    expect(sources[1]).toMatch(/^## References\n\n1\. Attention is all you need, Ashish Vaswani/);

    // citing the same work again keeps its number and the list
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await page.keyboard.type('. Again');
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('c');
    await expect(dialog).toBeVisible({ timeout: 20000 });
    await dialog.getByRole('button', { name: 'Cite' }).click();
    await expect
      .poll(async () => (await cellSources(page))[0], { timeout: 10000 })
      .toBe(`${text} [[1]](#References). Again [[1]](#References)`);
    expect((await cellSources(page)).length).toBe(2);
    await page.notebook.runCell(1, true);
    await page.screenshot({ path: `${SCREENSHOTS}/cite-references.png` });
  });

  test('the sidebar previews an equation and inserts it', async ({ page }) => {
    await markdownNotebook(page, 'equation.ipynb', 'the energy of a body at rest');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+a');
    const sidebar = page.locator('#galactica-ext-sidebar');
    await sidebar.locator('.jp-galactica-task-equation').click();
    const result = sidebar.locator('.jp-galactica-equation');
    await expect(result.locator('code')).toHaveText('E = m c^{2}', { timeout: 20000 });
    // typeset by the app's LaTeX typesetter (MathJax)
    await expect(result.locator('.jp-galactica-equation-preview mjx-container')).toBeVisible({
      timeout: 20000
    });
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-equation.png` });
    await sidebar.locator('.jp-galactica-insert').click();
    await expect
      .poll(async () => (await cellSources(page))[0])
      .toBe('the energy of a body at rest\n\n$$\nE = m c^{2}\n$$\n');
  });

  test('the sidebar lists citations to choose from', async ({ page }) => {
    await markdownNotebook(page, 'sidebar-cite.ipynb', 'Pre-training deep transformers');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    const sidebar = page.locator('#galactica-ext-sidebar');
    await sidebar.locator('.jp-galactica-task-cite').click();
    const options = sidebar.locator('.jp-galactica-citations li');
    await expect(options).toHaveCount(3, { timeout: 20000 });
    await options.nth(1).click();
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-citations.png` });
    await sidebar.locator('.jp-galactica-insert').click();
    await expect
      .poll(async () => (await cellSources(page)).length)
      .toBe(2);
    const sources = await cellSources(page);
    expect(sources[0]).toBe('Pre-training deep transformers [[1]](#References)');
    expect(sources[1]).toContain('1. BERT: Pre-training of Deep Bidirectional Transformers, Jacob Devlin');
  });

  test('"Equation from selection" inserts $$...$$ after it', async ({ page }) => {
    await markdownNotebook(page, 'equation-command.ipynb', 'the energy of a body at rest');
    await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Alt+g');
    await page.keyboard.press('e');
    await expect
      .poll(async () => (await cellSources(page))[0], { timeout: 20000 })
      .toBe('the energy of a body at rest\n\n$$\nE = m c^{2}\n$$\n');
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
