/**
 * Time from a keystroke to the first ghost-text character, against the real local agent.
 *
 * Runs only with GALACTICA_UI_MODEL set to the model to measure (see
 * jupyter_server_test_config.py), e.g. the galactica-125m shape with random weights built
 * by `galactica_ext.checkpoints.build_random_checkpoint(dir, "125m")`: the default tiny
 * checkpoint says nothing about the latency users see.
 */
import { expect, test } from '@jupyterlab/galata';

test.skip(
  !process.env.GALACTICA_UI_MODEL,
  'needs GALACTICA_UI_MODEL: the model to measure'
);

test('keystroke to first ghost-text character', async ({ page }) => {
  test.setTimeout(300000);
  await page.notebook.createNew('latency.ipynb');
  await page.notebook.setCell(0, 'markdown', '');
  await page.sidebar.openTab('galactica-ext-sidebar');
  await expect(
    page.locator('#galactica-ext-sidebar .jp-galactica-status')
  ).toHaveAttribute('data-state', 'ready', { timeout: 240000 });
  const debounce = await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    const settings = await app.serviceManager.settings.fetch('galactica-ext:plugin');
    return (settings.composite?.inlineCompletion?.debounceMs as number) ?? 300;
  });
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.type('The structure of the proton is described by', {
    delay: 10
  });
  await expect(page.locator('.jp-GhostText')).toHaveCount(1, { timeout: 60000 });

  const timings: number[] = [];
  const words = [' quantum', ' chromo', ' dynamics', ' and', ' the', ' parton', ' model'];
  for (const word of words) {
    await page.keyboard.type(word.slice(0, -1), { delay: 10 });
    // the last keystroke of the word starts the clock; a suggestion for the text before
    // it (if any is still shown) does not count
    const previous = await page.evaluate(
      () => document.querySelector('.jp-GhostText')?.textContent ?? ''
    );
    const started = await page.evaluate(() => performance.now());
    await page.keyboard.press(word.slice(-1));
    const shown = await page.waitForFunction(
      (before: string) => {
        const text = document.querySelector('.jp-GhostText')?.textContent ?? '';
        return text.length > 0 && text !== before && text !== before.slice(1)
          ? performance.now()
          : null;
      },
      previous,
      { polling: 'raf', timeout: 60000 }
    );
    timings.push((await shown.jsonValue()) - started);
  }
  const sorted = [...timings].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `keystroke -> first ghost-text character: median ${median.toFixed(0)} ms ` +
      `(debounce ${debounce} ms included; all: ${timings.map(t => t.toFixed(0)).join(', ')} ms)`
  );
  await page.screenshot({ path: 'test-results/screenshots/ghost-text-agent.png' });
  expect(median).toBeGreaterThan(0);
});
