/**
 * Helpers of the sidebar's Galata specs (tests/panel-*.spec.ts).
 */
import { expect, IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

/** Where the specs write screenshots (for the README). */
export const SCREENSHOTS = 'test-results/screenshots';

/** Generous: the tiny model is quick, but the machine may be busy. */
export const MODEL_TIMEOUT = 60000;

/**
 * Open the GALACTICA sidebar and wait until the model is ready (the first spec also waits
 * for the agent, started with the server, to load it).
 */
export async function openSidebar(
  page: IJupyterLabPageFixture
): Promise<Locator> {
  await page.sidebar.openTab('galactica-ext-sidebar');
  const sidebar = page.locator('#galactica-ext-sidebar');
  await expect(sidebar.locator('.jp-galactica-status')).toHaveAttribute(
    'data-state',
    'ready',
    { timeout: 150000 }
  );
  return sidebar;
}

/** The sources of the current notebook's cells. */
export async function cellSources(
  page: IJupyterLabPageFixture
): Promise<string[]> {
  return page.evaluate(() => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.model.sharedModel.cells.map((c: any) => c.getSource());
  });
}
