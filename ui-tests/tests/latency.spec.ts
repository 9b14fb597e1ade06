/**
 * Time from a keystroke to the first ghost-text character, against the real local agent:
 * prose, and a citation after `[@`. Reported (printed and attached), never asserted as a
 * timing.
 *
 * The numbers that matter come with GALACTICA_UI_MODEL set to the model to measure (see
 * jupyter_server_test_config.py), e.g. the galactica-125m shape with random weights built
 * by `galactica_ext.checkpoints.build_random_checkpoint(dir, "125m")`; with the default tiny
 * checkpoint they measure the interface's own overhead.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

/** At least this many samples of each kind. */
const SAMPLES = 10;

test.describe.configure({ timeout: 600000 });

async function ready(page: IJupyterLabPageFixture): Promise<string> {
  await page.sidebar.openTab('galactica-ext-sidebar');
  await expect(
    page.locator('#galactica-ext-sidebar .jp-galactica-status')
  ).toHaveAttribute('data-state', 'ready', { timeout: 240000 });
  const served = await (await page.request.get('galactica/status')).json();
  return served.model as string;
}

/** The GALACTICA provider's debounce, a setting of JupyterLab's Inline Completer. */
async function debounceMs(page: IJupyterLabPageFixture): Promise<number> {
  return page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    const settings = await app.serviceManager.settings.fetch(
      '@jupyterlab/completer-extension:inline-completer'
    );
    const provider = settings.composite?.providers?.['galactica-ext:inline'];
    return (provider?.debouncerDelay as number) ?? 300;
  });
}

/**
 * Press `key` and return the ms until ghost text shows something new (a suggestion for the
 * text before the key, still shown, does not count), or `null` when none comes within
 * 30 s (an empty suggestion shows nothing).
 */
async function timeToGhost(
  page: IJupyterLabPageFixture,
  key: string
): Promise<number | null> {
  const previous = await page.evaluate(
    () => document.querySelector('.jp-GhostText')?.textContent ?? ''
  );
  const started = await page.evaluate(() => performance.now());
  await page.keyboard.press(key);
  const shown = await page.waitForFunction(
    (before: string) => {
      const text = document.querySelector('.jp-GhostText')?.textContent ?? '';
      return text.trim().length > 0 &&
        text !== before &&
        text !== before.slice(1)
        ? performance.now()
        : null;
    },
    previous,
    { polling: 'raf', timeout: 30000 }
  ).catch(() => null);
  return shown ? ((await shown.jsonValue()) as number) - started : null;
}

function summary(name: string, timings: number[]): string {
  if (timings.length === 0) {
    return `${name}: no sample`;
  }
  const sorted = [...timings].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return (
    `${name}: median ${median.toFixed(0)} ms over ${timings.length} ` +
    `(all: ${timings.map(t => t.toFixed(0)).join(', ')} ms)`
  );
}

test('keystroke to first ghost-text character: prose and citations', async ({
  page
}, testInfo) => {
  await page.notebook.createNew('latency.ipynb');
  await page.notebook.setCell(0, 'markdown', '');
  const model = await ready(page);
  const debounce = await debounceMs(page);
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.type('The structure of the proton is described by', {
    delay: 10
  });
  await expect(page.locator('.jp-GhostText')).toHaveCount(1, {
    timeout: 120000
  });

  // prose: the last keystroke of each word starts the clock
  const prose: number[] = [];
  const words = [
    ' quantum',
    ' chromo',
    ' dynamics',
    ' and',
    ' the',
    ' parton',
    ' model',
    ' of',
    ' deep',
    ' inelastic',
    ' scattering'
  ];
  for (const word of words.slice(0, Math.max(SAMPLES, words.length))) {
    await page.keyboard.type(word.slice(0, -1), { delay: 10 });
    const time = await timeToGhost(page, word.slice(-1));
    if (time !== null) {
      prose.push(time);
    }
  }

  // citations: `[@` after a sentence; the `@` starts the clock
  const citations: number[] = [];
  let missed = 0; // the model's suggestion was empty (e.g. it closed the reference at once)
  const topics = [
    'Attention replaces recurrence',
    'Protein structures are predicted',
    'Graph networks model molecules',
    'Diffusion models generate images',
    'Language models write code',
    'Transformers scale with data',
    'Reinforcement learning plays Go',
    'Convolutions classify images',
    'Word vectors capture meaning',
    'Dropout prevents overfitting',
    'Batch normalisation speeds training'
  ];
  for (const topic of topics.slice(0, Math.max(SAMPLES, topics.length))) {
    await page.keyboard.press('Escape');
    await page.evaluate(() => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      panel.content.model.sharedModel.getCell(0).setSource('');
    });
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await page.keyboard.type(`${topic} [`, { delay: 10 });
    const time = await timeToGhost(page, '@');
    if (time === null) {
      missed++;
    } else {
      citations.push(time);
    }
  }

  const report = [
    `model: ${model}; debounce ${debounce} ms included`,
    summary('prose, keystroke -> first ghost-text character', prose),
    summary(
      'citation after [@, keystroke -> first ghost-text character',
      citations
    ) + (missed ? ` (${missed} more gave an empty suggestion)` : '')
  ].join('\n');
  console.log(report);
  await testInfo.attach('latency', { body: report, contentType: 'text/plain' });
  await page.screenshot({
    path: 'test-results/screenshots/ghost-text-agent.png'
  });
  expect(prose.length).toBeGreaterThan(0);
  expect(citations.length).toBeGreaterThan(0);
});
