// End-to-end check of the dashboard in a real headless Chromium (Debian's), driven by
// playwright-core. Run by tests/test_dashboard.py:
//   node dashboard_e2e.mjs --url http://127.0.0.1:PORT/ --key s/o --screenshot out.png
// It loads the page, waits for KEY's row in the entries table, takes a screenshot, counts the
// screenshot's distinct colours (decoded by the browser, in a page of its own), clicks the
// row's "Invalidate" button and waits until the row is gone. It prints one JSON object with
// what it saw; any step that fails (or an error on the page) exits non-zero with the reason.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
    timeout: { type: 'string', default: '20000' },
  },
});
for (const name of ['url', 'key', 'screenshot']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
const timeout = Number(args.timeout);

// Distinct RGBA colours of a PNG and the share of pixels unlike the top-left one.
async function colourCount(browser, pngPath) {
  const page = await browser.newPage();
  try {
    const base64 = readFileSync(pngPath).toString('base64');
    return await page.evaluate(async (data) => {
      const image = new Image();
      image.src = `data:image/png;base64,${data}`;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      const context = canvas.getContext('2d');
      context.drawImage(image, 0, 0);
      const pixels = new Uint32Array(context.getImageData(0, 0, canvas.width, canvas.height).data.buffer);
      const colours = new Set(pixels);
      let unlike = 0;
      for (const p of pixels) if (p !== pixels[0]) unlike++;
      return { width: canvas.width, height: canvas.height, distinct: colours.size,
               nonBackground: unlike / pixels.length };
    }, base64);
  } finally {
    await page.close();
  }
}

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--no-sandbox'], // CI runs as root, where Chromium's sandbox cannot start
});
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console error: ${m.text()}`);
  });
  page.setDefaultTimeout(timeout);

  const response = await page.goto(args.url);
  if (!response || !response.ok()) throw new Error(`GET ${args.url}: HTTP ${response?.status()}`);
  const title = await page.title();

  const row = page.locator(`#entries tbody tr[data-key="${args.key}"]`);
  await row.waitFor({ state: 'visible' });
  // The counters are filled from /v1/stats by the same poll.
  await page.waitForFunction(() => /^Updated /.test(document.getElementById('updated').textContent));
  const rowText = (await row.innerText()).replace(/\s+/g, ' ').trim();
  const headers = await page.locator('#entries thead th').allInnerTexts();
  const counters = await page.locator('#counters dd').allInnerTexts();
  const pollError = await page.locator('#poll-error').isVisible()
    ? await page.locator('#poll-error').innerText() : null;

  await page.screenshot({ path: args.screenshot, fullPage: true });
  const screenshot = await colourCount(browser, args.screenshot);

  await page.getByRole('button', { name: `Invalidate ${args.key}`, exact: true }).click();
  await row.waitFor({ state: 'detached' });
  const status = await page.locator('#action-status').innerText();

  if (pageErrors.length) throw new Error(pageErrors.join('\n'));
  console.log(JSON.stringify({ title, rowText, headers, counters, pollError, screenshot, status }));
} catch (e) {
  console.error(`dashboard e2e failed: ${e.message}${pageErrors.length ? `\n${pageErrors.join('\n')}` : ''}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
