import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import test from 'ava';
import { chromium } from 'playwright-core';
import { startProjections } from '../src/index.ts';
import { createWorld, repoRoot, tally } from './helpers.ts';

test('the live results page shows bars with counts and percentages, updates live over MQTT/WebSockets and shows when final', async (t) => {
  const world = await createWorld(t, 'proj-page');
  const projections = await startProjections(world.config({ LIVE_MQTT_WS_URL: 'ws://127.0.0.1:9001' }), {
    subjectPrefix: world.subjectPrefix,
    logger: world.logger,
  });
  t.teardown(() => projections.close().catch(() => {}));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1000, height: 420 } });
  // The page runs under its Content-Security-Policy: any blocked script, style or connection shows up here.
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  const pollId = `p-${randomUUID()}`;

  const first = tally(pollId, { red: 3, blue: 1 });
  await world.produceTallies([first]);
  const response = await page.goto(`http://127.0.0.1:${projections.httpPort}/live/${pollId}`);
  const csp = response?.headers()['content-security-policy'] ?? '';
  t.regex(csp, /script-src 'self' 'nonce-[A-Za-z0-9+/=]{24}'/);
  t.regex(csp, /frame-ancestors 'none'/);
  t.regex(csp, /connect-src 'self' http:\/\/127\.0\.0\.1:8080 ws:\/\/127\.0\.0\.1:9001/);
  t.is(response?.headers()['x-content-type-options'], 'nosniff');
  await page.waitForSelector(`body[data-version="${first.version}"]`, { timeout: 30_000 });
  t.is(await page.textContent('[data-option="red"] .num'), '3 (75.0%)');
  t.is(await page.textContent('[data-option="blue"] .num'), '1 (25.0%)');
  t.is(await page.textContent('#status'), 'LIVE');

  // Votes keep coming: the page follows the MQTT topic without reloading.
  const second = tally(pollId, { red: 5, blue: 5 });
  await world.produceTallies([second]);
  await page.waitForSelector(`body[data-version="${second.version}"]`, { timeout: 30_000 });
  t.is(await page.textContent('[data-option="red"] .num'), '5 (50.0%)');
  t.is(await page.textContent('#total-count'), '10');

  const final = tally(pollId, { red: 6, blue: 5 }, { final: true });
  await world.produceTallies([final]);
  await page.waitForSelector(`body[data-version="${final.version}"][data-final="true"]`, { timeout: 30_000 });
  t.is(await page.textContent('#status'), 'FINAL');
  t.is(await page.textContent('[data-option="red"] .num'), '6 (54.5%)');
  const width = await page.$eval('[data-option="red"] .bar', (el) => (el as HTMLElement).style.width);
  t.is(width, '54.5%');
  t.deepEqual(violations, []);

  mkdirSync(`${repoRoot}test-results`, { recursive: true });
  await page.screenshot({ path: `${repoRoot}test-results/projections-live-page.png` });
});
