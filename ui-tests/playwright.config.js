/**
 * Configuration for Playwright using default from @jupyterlab/galata
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.GALATA_PORT || '8891';

module.exports = {
  ...baseConfig,
  workers: 1,
  use: {
    ...baseConfig.use,
    baseURL: `http://localhost:${port}`,
    // Debian's chromium: Playwright's own browser downloads are not available here
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium'
    },
    video: 'off',
    trace: 'off'
  },
  // list: a failure's details are printed again at the end, where a CI log's tail shows
  // them (line prints them only as they happen, buried under the server's log)
  reporter: [['list']],
  webServer: {
    command: 'jlpm start',
    url: `http://localhost:${port}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
