// Opens one link as its recipient does, in a fresh headless Chromium (Debian's; playwright-core
// downloads none), and prints one JSON line saying what the page showed. Used by
// tests/real_ots_browser.rs, one process per visit, so that each visit is a fresh browser.
//
// The request comes as one JSON object on stdin (so that the link and passphrases are never on a
// command line):
//   {"url": "...", "passphrases": ["wrong", "right"], "reveal": true, "shots": "DIR", "name": "NN-what"}
// - passphrases: typed one after the other, each answer screenshotted; the last one is the one
//   expected to work (may be empty: a link without a passphrase)
// - reveal: false = load the page and stop before "Click to reveal"
// Output (stdout, one line): {"landing": "reveal" | "passphrase" | "refused", "landingText": "...",
//   "passphraseRefusals": N, "passphraseRefusalText": "..." | null, "value": "..." | null,
//   "refused": bool, "refusalText": "..." | null, "shots": ["path", ...]}
// "value" is what the page's text box holds after the reveal: the only place a value is printed.
// Anything wrong: exit status 2 and one line on stderr (never the link or a value).
//
// Environment: OTS_CHROMIUM (default /usr/lib/chromium/chromium), OTS_BROWSER_TIMEOUT_MS (each
// wait, 30000), OTS_BROWSER_VISIT_MS (the whole visit, 75000).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const chromiumPath = process.env.OTS_CHROMIUM || '/usr/lib/chromium/chromium';
const timeout = Number(process.env.OTS_BROWSER_TIMEOUT_MS || 30000);
const visitLimit = Number(process.env.OTS_BROWSER_VISIT_MS || 75000);

function fail(line) {
  process.stderr.write(`browser: ${line}\n`);
  process.exit(2);
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  fail('playwright-core is missing: run `npm ci` in testing/browser');
}
if (!existsSync(chromiumPath)) {
  fail(`Chromium is missing at ${chromiumPath}: apt-get install chromium (or set OTS_CHROMIUM)`);
}

let request;
try {
  request = JSON.parse(readFileSync(0, 'utf8'));
} catch {
  fail('expected one JSON request on stdin');
}
const { url, passphrases = [], reveal = true, shots, name } = request;
if (!url || !shots || !name) fail('the request needs url, shots and name');
mkdirSync(shots, { recursive: true });

const REFUSAL = /has been viewed or expired/i;
const result = {
  landing: null,
  landingText: '',
  passphraseRefusals: 0,
  passphraseRefusalText: null,
  value: null,
  refused: false,
  refusalText: null,
  shots: [],
};
let shotNo = 0;
async function shot(page, what) {
  shotNo += 1;
  const path = join(shots, `${name}-${String(shotNo).padStart(2, '0')}-${what}.png`);
  await page.screenshot({ path, fullPage: true });
  result.shots.push(path);
}

// The page's main text, without the link (the address bar is not part of a screenshot's DOM text,
// but the page could echo its own address).
async function mainText(page) {
  const text = await page.locator('body').innerText();
  return text.split(url).join('[link]').replace(/\s+\n/g, '\n').trim();
}

// Playwright's errors quote the address; the link is a secret, so they are cut to their first
// line with the link masked.
process.on('uncaughtException', (e) => fail(scrub(e)));
process.on('unhandledRejection', (e) => fail(scrub(e)));
function scrub(e) {
  const first = String(e && e.message ? e.message : e).split('\n')[0];
  return first.split(url).join('[link]').replace(/\/secret\/[0-9a-z]+/gi, '/secret/[key]');
}

// A visit that hangs ends itself (closing its browser: Playwright kills the Chromium it
// launched when node exits), before the test's own limit of 90 s stops it.
setTimeout(() => fail(`the visit took longer than ${visitLimit} ms`), visitLimit).unref();

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
  timeout,
});
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  context.setDefaultTimeout(timeout);
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'domcontentloaded' });

  const revealButton = page.getByRole('button', { name: /click to reveal/i });
  const passphraseInput = page.locator('input[type="password"]');
  const refusal = page.getByRole('heading', { name: REFUSAL });
  // Whichever the page settles on first; a passphrase page has the reveal button too.
  const settled = await Promise.any([
    revealButton.waitFor(),
    passphraseInput.waitFor(),
    refusal.waitFor(),
  ]).then(
    () => true,
    () => false,
  );
  if (!settled) fail('the page showed neither a reveal button, a passphrase field nor a refusal');
  let landing = 'reveal';
  if (await refusal.isVisible()) landing = 'refused';
  else if (await passphraseInput.isVisible()) landing = 'passphrase';
  result.landing = landing;
  result.landingText = await mainText(page);
  await shot(page, landing === 'refused' ? 'refused' : 'before-reveal');

  // One press of "Click to reveal": the page asks the server (POST .../secret/KEY/reveal) and
  // shows the value, or says why not.
  const textarea = page.locator('textarea');
  async function pressReveal() {
    const answer = page.waitForResponse(
      (r) => r.request().method() === 'POST' && /\/secret\//.test(new URL(r.url()).pathname),
    );
    await revealButton.click();
    const status = (await answer).status();
    if (status < 400) {
      await textarea.waitFor();
      return true;
    }
    return false;
  }

  if (landing === 'refused') {
    result.refused = true;
  } else if (reveal && landing === 'passphrase') {
    for (const passphrase of passphrases) {
      await passphraseInput.fill(passphrase);
      if (await pressReveal()) {
        result.value = await textarea.inputValue();
        await shot(page, 'revealed');
        break;
      }
      await page.getByText(/incorrect passphrase/i).waitFor();
      result.passphraseRefusals += 1;
      result.passphraseRefusalText = (await page.getByText(/incorrect passphrase/i).innerText()).trim();
      await shot(page, 'passphrase-refused');
    }
  } else if (reveal) {
    if (await pressReveal()) {
      result.value = await textarea.inputValue();
      await shot(page, 'revealed');
    } else {
      result.refused = true;
      result.refusalText = await mainText(page);
      await shot(page, 'refused-on-reveal');
    }
  }
  await context.close();
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
