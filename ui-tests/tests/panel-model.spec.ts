/**
 * The sidebar's model section and result layout in a real browser, against the real agent
 * on the tiny checkpoint (see jupyter_server_test_config.py): a refused load's whole
 * message, the licence where the model is chosen, buttons that look like what they are,
 * and results that wrap instead of overflowing sideways (checked by element geometry).
 */
import { expect, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import { MODEL_TIMEOUT, openSidebar, SCREENSHOTS } from './sidebar';

const MODEL_CARD = 'https://huggingface.co/facebook/galactica-125m';

test.describe.configure({ timeout: 180000 });

/** An element's overflow: how far its content reaches past its box, sideways. */
async function sidewaysOverflow(locator: Locator): Promise<number[]> {
  return locator.evaluateAll(nodes =>
    nodes.map(node => node.scrollWidth - node.clientWidth)
  );
}

/** Whether each element lies within the sidebar, left to right. */
async function insideSidebar(locator: Locator): Promise<boolean[]> {
  return locator.evaluateAll(nodes => {
    const bar = document
      .getElementById('galactica-ext-sidebar')!
      .getBoundingClientRect();
    return nodes.map(node => {
      const box = node.getBoundingClientRect();
      return box.left >= bar.left - 0.5 && box.right <= bar.right + 0.5;
    });
  });
}

test.describe('GALACTICA sidebar: model and layout', () => {
  test('a refused load shows its whole message in the picker; the served model stays ready', async ({
    page
  }) => {
    const sidebar = await openSidebar(page);
    const served = await (await page.request.get('galactica/status')).json();
    const path =
      '/nonexistent/models/galactica-1.3b-finetuned-on-our-group-papers/checkpoint-final';
    // what the server answers, asked directly (the same request the picker sends)
    const answer = await page.evaluate(async model => {
      const xsrf = document.cookie.match(/_xsrf=([^;]+)/)?.[1] ?? '';
      const base = (window as any).jupyterapp.serviceManager.serverSettings
        .baseUrl as string;
      const response = await fetch(`${base}galactica/model`, {
        method: 'POST',
        headers: { 'X-XSRFToken': decodeURIComponent(xsrf) },
        body: JSON.stringify({ model, dtype: 'auto' })
      });
      return { status: response.status, body: await response.json() };
    }, path);
    expect(answer.status).toBe(400);
    const message: string = answer.body.message;
    expect(message.length).toBeGreaterThan(140); // longer than a toast shows

    const picker = sidebar.locator('.jp-galactica-picker');
    await picker.locator('.jp-galactica-model-select').selectOption('custom');
    await picker.locator('.jp-galactica-model-custom').fill(path);
    await picker.locator('.jp-galactica-load').click();
    const error = picker.locator('.jp-galactica-load-error');
    await expect(error).toBeVisible();
    await expect(error).toHaveText(`Cannot load ${path}: ${message}`);
    // wrapped, not cut: nothing hidden sideways, and it is more than one line tall
    expect(await sidewaysOverflow(error)).toEqual([0]);
    const lineHeight = await error.evaluate(node =>
      parseFloat(getComputedStyle(node).lineHeight || '16')
    );
    expect((await error.boundingBox())!.height).toBeGreaterThan(
      1.5 * (lineHeight || 16)
    );

    // the previous model is still served, and the status says so rather than just "Ready"
    const status = sidebar.locator('.jp-galactica-status');
    await expect(status).toHaveAttribute('data-state', 'ready');
    await expect(status.locator('.jp-galactica-model')).toHaveText(
      served.model
    );
    await expect(status.locator('.jp-galactica-status-note')).toHaveText(
      `Loading ${path} failed (see Model below): still serving ${served.model}.`
    );
    const after = await (await page.request.get('galactica/status')).json();
    expect(after.state).toBe('ready');
    expect(after.model).toBe(served.model);
    await page.screenshot({ path: `${SCREENSHOTS}/sidebar-load-error.png` });
  });

  test("the picker and the status say the weights' licence, with the model card", async ({
    page
  }) => {
    const sidebar = await openSidebar(page);
    for (const where of [
      sidebar.locator('.jp-galactica-picker .jp-galactica-licence'),
      sidebar.locator('.jp-galactica-status .jp-galactica-status-licence')
    ]) {
      await expect(where).toContainText('CC BY-NC 4.0');
      await expect(where).toContainText('non-commercial');
      await expect(where.locator('a')).toHaveAttribute('href', MODEL_CARD);
      expect(await sidewaysOverflow(where)).toEqual([0]); // whole, not cut with an ellipsis
    }
  });

  test('a disabled Load looks disabled', async ({ page }) => {
    const sidebar = await openSidebar(page);
    const picker = sidebar.locator('.jp-galactica-picker');
    const load = picker.locator('.jp-galactica-load');
    const look = () =>
      load.evaluate(node => {
        const style = getComputedStyle(node);
        return { opacity: parseFloat(style.opacity), cursor: style.cursor };
      });
    await expect(load).toBeEnabled();
    const enabled = await look();
    await picker.locator('.jp-galactica-model-select').selectOption('custom');
    await picker.locator('.jp-galactica-model-custom').fill('');
    await expect(load).toBeDisabled();
    const disabled = await look();
    expect(disabled.opacity).toBeLessThan(0.6 * enabled.opacity);
    expect(disabled.cursor).toBe('not-allowed');
  });

  test('results wrap inside the sidebar: equation source and preview, citations', async ({
    page
  }) => {
    await page.notebook.createNew('layout.ipynb');
    await page.notebook.setCell(
      0,
      'markdown',
      'The energy of a body at rest and the Schrödinger equation of a particle in a box'
    );
    await page.notebook.enterCellEditingMode(0);
    const sidebar = await openSidebar(page);
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+a');

    await sidebar.locator('.jp-galactica-task-equation').click();
    const equation = sidebar.locator('.jp-galactica-equation');
    await expect(equation.locator('code')).toHaveText(/\S/, {
      timeout: MODEL_TIMEOUT
    });
    await expect(sidebar.locator('.jp-galactica-stop')).toHaveCount(0);
    // the random model writes long LaTeX: it must wrap, not stretch the sidebar
    expect(await sidewaysOverflow(equation.locator('code'))).toEqual([0]);
    expect(
      await sidewaysOverflow(sidebar.locator('.jp-galactica-result'))
    ).toEqual([0]);
    expect(await sidewaysOverflow(sidebar)).toEqual([0]);
    expect(
      await insideSidebar(sidebar.locator('.jp-galactica-equation-preview'))
    ).toEqual([true]);
    await expect(sidebar.locator('.jp-galactica-caveat')).toContainText(
      'GALACTICA can make things up'
    );
    await sidebar.locator('.jp-galactica-copy').click();
    await expect(sidebar.locator('.jp-galactica-copy')).toHaveText('Copied');
    await page.screenshot({
      path: `${SCREENSHOTS}/sidebar-equation-wrapped.png`
    });

    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+End');
    await sidebar.locator('.jp-galactica-task-cite').click();
    const options = sidebar.locator('.jp-galactica-citations li');
    await expect(options.first()).toBeVisible({ timeout: MODEL_TIMEOUT });
    expect(await sidewaysOverflow(options)).toEqual(
      new Array(await options.count()).fill(0)
    );
    expect(await insideSidebar(options)).toEqual(
      new Array(await options.count()).fill(true)
    );
    expect(await sidewaysOverflow(sidebar)).toEqual([0]);
  });
});
