/**
 * "Cite here" with a bibliography next to the notebook, in a real browser against the real
 * agent on the tiny checkpoint: GALACTICA ranks the library's entries (key, title, first
 * author, year, a "library" badge), the chosen one is written `[@key]`, the References cell
 * holds the entry as the server's CSL processor (citeproc-py) formatted it, and the export
 * command writes the cited entries to a .bib beside the notebook, asking before it replaces
 * one.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

const SCREENSHOTS = 'test-results/screenshots';
const MODEL_TIMEOUT = 90000;

test.describe.configure({ timeout: 240000 });

/** A small library of real works, and each one as citeproc-py's default style writes it. */
const ENTRIES: Record<string, { title: string; formatted: string }> = {
  vaswani2017attention: {
    title: 'Attention Is All You Need',
    formatted:
      'Vaswani, A., Shazeer, N. and Parmar, N. (2017) “Attention Is All You Need”.'
  },
  devlin2019bert: {
    title:
      'BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding',
    formatted:
      'Devlin, J. and Chang, M.-W. (2019) “BERT: Pre-training of Deep Bidirectional ' +
      'Transformers for Language Understanding”.'
  },
  he2016resnet: {
    title: 'Deep Residual Learning for Image Recognition',
    formatted:
      'He, K. and Zhang, X. (2016) “Deep Residual Learning for Image Recognition”.'
  }
};
const BIB = [
  '@inproceedings{vaswani2017attention,\n  title = {Attention Is All You Need},\n' +
    '  author = {Vaswani, Ashish and Shazeer, Noam and Parmar, Niki},\n  year = {2017}\n}',
  '@inproceedings{devlin2019bert,\n  title = {{BERT}: Pre-training of Deep Bidirectional ' +
    'Transformers for Language Understanding},\n  author = {Devlin, Jacob and Chang, ' +
    'Ming-Wei},\n  year = {2019}\n}',
  '@inproceedings{he2016resnet,\n  title = {Deep Residual Learning for Image Recognition},\n' +
    '  author = {He, Kaiming and Zhang, Xiangyu},\n  year = {2016}\n}'
].join('\n\n');

/** The current notebook's cells: type, source and our metadata. */
async function cells(
  page: IJupyterLabPageFixture
): Promise<{ type: string; source: string; galactica: any }[]> {
  return page.evaluate(() => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.model.sharedModel.cells.map((c: any) => ({
      type: c.cell_type,
      source: c.getSource(),
      galactica: c.getMetadata().galactica ?? null
    }));
  });
}

/** A file's text through the contents API (null when there is none). */
async function readFile(
  page: IJupyterLabPageFixture,
  path: string
): Promise<string | null> {
  return page.evaluate(async path => {
    const contents = (window as any).jupyterapp.serviceManager.contents;
    try {
      const model = await contents.get(path, { content: true, format: 'text' });
      return model.content as string;
    } catch {
      return null;
    }
  }, path);
}

/** Run a command without waiting for it (it may open a dialog). */
async function execute(
  page: IJupyterLabPageFixture,
  id: string
): Promise<void> {
  await page.evaluate(id => {
    void (window as any).jupyterapp.commands.execute(id);
  }, id);
}

test('Cite here ranks the library, inserts [@key], formats References, exports a .bib', async ({
  page
}) => {
  const text = 'Sequence transduction with self-attention only';
  await page.notebook.createNew('cite-library.ipynb');
  const path: string = await page.evaluate(
    () => (window as any).jupyterapp.shell.currentWidget.context.path
  );
  const folder = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
  const prefix = folder ? `${folder}/` : '';
  await page.contents.uploadContent(BIB, 'text', `${prefix}refs.bib`);
  await page.notebook.setCell(0, 'markdown', text);

  await page.sidebar.openTab('galactica-ext-sidebar');
  await expect(
    page.locator('#galactica-ext-sidebar .jp-galactica-status')
  ).toHaveAttribute('data-state', 'ready', { timeout: 150000 });

  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.press('Control+End');
  await execute(page, 'galactica:cite-here');

  const dialog = page.locator('.jp-Dialog');
  const options = dialog.locator('.jp-galactica-library-choices li');
  await expect(options.first()).toBeVisible({ timeout: MODEL_TIMEOUT });
  await expect(dialog.locator('.jp-galactica-library-origin')).toContainText(
    'refs.bib'
  );
  // grounded: every suggestion is an entry of the library, shown as such
  const count = await options.count();
  expect(count).toBeGreaterThanOrEqual(1);
  for (let i = 0; i < count; i++) {
    const option = options.nth(i);
    await expect(option.locator('.jp-galactica-badge')).toHaveText('library');
    const key = (await option
      .locator('.jp-galactica-citation-key')
      .textContent())!;
    expect(Object.keys(ENTRIES)).toContain(key);
    await expect(option.locator('.jp-galactica-citation-title')).toHaveText(
      ENTRIES[key].title
    );
    await expect(option.locator('.jp-galactica-citation-year')).toHaveText(
      / \(\d{4}\)/
    );
  }
  await page.screenshot({ path: `${SCREENSHOTS}/cite-here-library.png` });

  const chosen = options.nth(count - 1);
  const key = (await chosen
    .locator('.jp-galactica-citation-key')
    .textContent())!;
  await chosen.locator('input').check();
  await dialog.locator('.jp-mod-accept').click();

  // the citation, and the References cell the CSL processor wrote, in one step
  await expect
    .poll(async () => (await cells(page))[0].source)
    .toBe(`${text} [@${key}]`);
  const all = await cells(page);
  const references = all[all.length - 1];
  expect(references.type).toBe('markdown');
  expect(references.galactica).toMatchObject({
    role: 'bibliography',
    keys: [key]
  });
  expect(references.source).toBe(
    `## References\n\n<a id="ref-${key}"></a>${ENTRIES[key].formatted}`
  );

  // one undo step takes back the citation and the References cell; redo brings them back
  await page.keyboard.press('Escape');
  await page.keyboard.press('z');
  await expect
    .poll(async () => (await cells(page)).map(c => c.source))
    .toEqual([text]);
  await page.keyboard.press('Shift+Z');
  await expect
    .poll(async () => (await cells(page)).map(c => c.source))
    .toEqual([`${text} [@${key}]`, references.source]);

  // export: the cited entry, next to the notebook
  const bib = `${prefix}cite-library.bib`;
  await page.notebook.save();
  await execute(page, 'galactica:export-bibliography');
  await expect
    .poll(() => readFile(page, bib), { timeout: 30000 })
    .toContain(`{${key},`);
  const exported = (await readFile(page, bib))!;
  for (const other of Object.keys(ENTRIES).filter(k => k !== key)) {
    expect(exported).not.toContain(other);
  }

  // a file there is replaced only when the user says so
  await page.contents.uploadContent('% mine\n', 'text', bib);
  await execute(page, 'galactica:export-bibliography');
  const ask = page.locator('.jp-Dialog');
  await expect(ask).toContainText('cite-library.bib already exists');
  await ask.locator('.jp-mod-reject').click();
  await expect(ask).toHaveCount(0);
  expect(await readFile(page, bib)).toBe('% mine\n');

  await execute(page, 'galactica:export-bibliography');
  await expect(ask).toContainText('already exists');
  await ask.locator('.jp-mod-accept').click();
  await expect
    .poll(() => readFile(page, bib), { timeout: 30000 })
    .toContain(`{${key},`);
});

/** Set one of the extension's settings (through the settings registry the plugins use). */
async function setSetting(
  page: IJupyterLabPageFixture,
  name: string,
  value: unknown
): Promise<void> {
  await page.evaluate(
    async ({ name, value }) => {
      const registry = await (window as any).galata.getPlugin(
        '@jupyterlab/apputils-extension:settings'
      );
      if (value === undefined) {
        await registry.remove('galactica-ext:plugin', name);
      } else {
        await registry.set('galactica-ext:plugin', name, value);
      }
    },
    { name, value }
  );
}

test('MyST: {cite:p}`key` and no References cell; a free suggestion is an unverified span', async ({
  page
}) => {
  const text = 'Residual connections make very deep networks trainable';
  await page.notebook.createNew('cite-myst.ipynb');
  const path: string = await page.evaluate(
    () => (window as any).jupyterapp.shell.currentWidget.context.path
  );
  const folder = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
  await page.contents.uploadContent(
    BIB,
    'text',
    `${folder ? `${folder}/` : ''}refs.bib`
  );
  await page.notebook.setCell(0, 'markdown', text);
  await setSetting(page, 'libraryCitationFormat', 'myst');
  await setSetting(page, 'libraryReferences', false);
  try {
    await page.sidebar.openTab('galactica-ext-sidebar');
    await expect(
      page.locator('#galactica-ext-sidebar .jp-galactica-status')
    ).toHaveAttribute('data-state', 'ready', { timeout: 150000 });

    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await execute(page, 'galactica:cite-here');
    const dialog = page.locator('.jp-Dialog');
    const options = dialog.locator('.jp-galactica-library-choices li');
    await expect(options.first()).toBeVisible({ timeout: MODEL_TIMEOUT });
    const key = (await options
      .first()
      .locator('.jp-galactica-citation-key')
      .textContent())!;
    expect(Object.keys(ENTRIES)).toContain(key);
    await dialog.locator('.jp-mod-accept').click();
    const cited = `${text} {cite:p}\`${key}\``;
    await expect
      .poll(async () => (await cells(page)).map(c => c.source))
      .toEqual([cited]); // MyST renders the bibliography itself: no References cell

    // GALACTICA's own suggestions: none is in the library, each is marked unverified
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await execute(page, 'galactica:cite-here');
    await expect(options.first()).toBeVisible({ timeout: MODEL_TIMEOUT });
    await dialog.getByRole('button', { name: 'Free Suggestions' }).click();
    await expect(dialog.locator('.jp-galactica-library-origin')).toContainText(
      "GALACTICA's own suggestions",
      { timeout: MODEL_TIMEOUT }
    );
    const free = dialog.locator('.jp-galactica-library-choices li');
    const count = await free.count();
    expect(count).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < count; i++) {
      await expect(free.nth(i).locator('.jp-galactica-badge')).toHaveText(
        'unverified'
      );
      await expect(free.nth(i).locator('a')).toHaveText('search for it');
      await expect(
        free.nth(i).locator('.jp-galactica-citation-key')
      ).toHaveCount(0);
    }
    await page.screenshot({ path: `${SCREENSHOTS}/cite-here-unverified.png` });
    await dialog.locator('.jp-mod-accept').click();
    await expect
      .poll(async () => (await cells(page))[0].source)
      .toMatch(/\{\.unverified\}$/);
    const source = (await cells(page))[0].source;
    expect(source.startsWith(`${cited} [`)).toBe(true);
    // the span is one span whose text holds no citation key
    expect(
      source.slice(cited.length + 2, -'{.unverified}'.length - 1)
    ).not.toMatch(/[[\]]|(?<![\w@\\])@\w/);
    expect(await cells(page)).toHaveLength(1);
  } finally {
    await setSetting(page, 'libraryCitationFormat', undefined);
    await setSetting(page, 'libraryReferences', undefined);
  }
});
