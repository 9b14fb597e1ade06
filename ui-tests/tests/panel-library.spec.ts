/**
 * The sidebar's Cite with a bibliography next to the notebook, in a real browser against
 * the real agent on the tiny checkpoint: GALACTICA ranks the library's entries, each shown
 * with its key, title, first author, year and a "library" badge, and Insert writes `[@key]`.
 */
import { expect, test } from '@jupyterlab/galata';

import {
  cellSources,
  MODEL_TIMEOUT,
  openSidebar,
  SCREENSHOTS
} from './sidebar';

test.describe.configure({ timeout: 180000 });

/** A small library of real works. */
const ENTRIES = [
  {
    key: 'vaswani2017attention',
    title: 'Attention Is All You Need',
    author: 'Vaswani',
    year: '2017'
  },
  {
    key: 'devlin2019bert',
    title:
      'BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding',
    author: 'Devlin',
    year: '2019'
  },
  {
    key: 'he2016resnet',
    title: 'Deep Residual Learning for Image Recognition',
    author: 'He',
    year: '2016'
  }
];
const BIB = [
  '@inproceedings{vaswani2017attention,\n  title = {Attention Is All You Need},\n' +
    '  author = {Vaswani, Ashish and Shazeer, Noam and Parmar, Niki},\n  year = {2017}\n}',
  '@inproceedings{devlin2019bert,\n  title = {{BERT}: Pre-training of Deep Bidirectional ' +
    'Transformers for Language Understanding},\n  author = {Devlin, Jacob and Chang, ' +
    'Ming-Wei},\n  year = {2019}\n}',
  '@inproceedings{he2016resnet,\n  title = {Deep Residual Learning for Image Recognition},\n' +
    '  author = {He, Kaiming and Zhang, Xiangyu},\n  year = {2016}\n}'
].join('\n\n');

test('Cite ranks the library next to the notebook and inserts [@key]', async ({
  page
}) => {
  const text = 'Sequence transduction with self-attention only';
  await page.notebook.createNew('library.ipynb');
  const path: string = await page.evaluate(
    () => (window as any).jupyterapp.shell.currentWidget.context.path
  );
  const folder = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
  await page.contents.uploadContent(BIB, 'text', `${folder}/refs.bib`);
  await page.notebook.setCell(0, 'markdown', text);
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.press('Control+End');

  const sidebar = await openSidebar(page);
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.press('Control+End');
  await sidebar.locator('.jp-galactica-task-cite').click();
  const options = sidebar.locator('.jp-galactica-citations li');
  await expect(options.first()).toBeVisible({ timeout: 1.5 * MODEL_TIMEOUT });
  await expect(sidebar.locator('.jp-galactica-library-origin')).toContainText(
    'entries of your library'
  );
  await expect(sidebar.locator('.jp-galactica-library-origin')).toContainText(
    'refs.bib'
  );

  // grounded: every suggestion is an entry of the library, shown as such
  const count = await options.count();
  expect(count).toBeGreaterThanOrEqual(1);
  for (let i = 0; i < count; i++) {
    const option = options.nth(i);
    await expect(option.locator('.jp-galactica-badge')).toHaveText('library');
    const key = await option
      .locator('.jp-galactica-citation-key')
      .textContent();
    const entry = ENTRIES.find(e => e.key === key);
    expect(entry).toBeDefined();
    await expect(option.locator('.jp-galactica-citation-title')).toHaveText(
      entry!.title
    );
    await expect(option.locator('.jp-galactica-citation-author')).toHaveText(
      `, ${entry!.author}`
    );
    await expect(option.locator('.jp-galactica-citation-year')).toHaveText(
      ` (${entry!.year})`
    );
    await expect(option.locator('a')).toHaveCount(0); // nothing to search for
  }
  await options.last().scrollIntoViewIfNeeded();
  await page.screenshot({
    path: `${SCREENSHOTS}/sidebar-library-citations.png`
  });

  const chosen = options.nth(count - 1);
  await chosen.click();
  const key = await chosen.locator('.jp-galactica-citation-key').textContent();
  await sidebar.locator('.jp-galactica-insert').click();
  await expect
    .poll(async () => (await cellSources(page))[0])
    .toBe(`${text} [@${key}]`);
});
