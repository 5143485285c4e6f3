// Drives orca's web page in Debian's Chromium (playwright-core) for
// tests/web_ui.rs: node ui.mjs URL TOKEN SHOTS_DIR
//
// It walks the page as a user would and prints one JSON line per step
// with what it saw ({"step": ..., ...}); the test asserts on them. At
// {"wait": "..."} it waits for a line on stdin (the test acts on the
// cluster, then answers). Any failure prints {"error": ...} and exits 1.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const [url, token, shots] = process.argv.slice(2);
if (!url || !token || !shots) {
  console.error('usage: node ui.mjs URL TOKEN SHOTS_DIR');
  process.exit(2);
}
const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
async function wait(what) {
  say({ wait: what });
  const { value, done } = await lines.next();
  if (done) throw new Error('stdin closed while waiting for ' + what);
  return value;
}

const LONG = 90_000;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  page.setDefaultTimeout(LONG);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // The dashboard lists the cluster.
  await page.goto(url + '/#token=' + encodeURIComponent(token));
  const card = page.locator('#clusters .card[data-cluster="default/db"]');
  await card.waitFor();
  await page.locator('#clusters .card[data-cluster="default/db"] .primary').filter({ hasNotText: 'none' }).waitFor();
  say({ step: 'dashboard', text: await card.innerText(), address: page.url() });
  await page.screenshot({ path: shots + '/ui-clusters.png' });

  // The tree: the primary and both replicas.
  await card.click();
  await page.waitForFunction(() => document.querySelectorAll('#tree .node').length === 3
    && document.querySelectorAll('#tree .node.role-primary').length === 1
    && [...document.querySelectorAll('#tree .node')].every((n) => n.querySelector('.gtid')));
  const shape = () => page.evaluate(() => [...document.querySelectorAll('#tree .node')].map((n) => ({
    pod: n.dataset.pod,
    role: n.dataset.role,
    // The pod whose box holds this one's branch: its source, as drawn.
    parent: n.parentElement.parentElement.closest('li')?.querySelector(':scope > .node')?.dataset.pod ?? null,
    text: n.innerText,
  })));
  const before = await shape();
  say({ step: 'tree', nodes: before });
  await page.screenshot({ path: shots + '/ui-cluster.png' });
  const primary = before.find((n) => n.role === 'primary').pod;
  const replicas = before.filter((n) => n.role !== 'primary').map((n) => n.pod).sort();

  // The instance dialog, with its operations.
  await page.locator(`#tree .node[data-pod="${replicas[0]}"]`).click();
  await page.locator('#dialog[open] .ops button[data-kind="relocate"]').waitFor();
  say({ step: 'dialog', text: await page.locator('#dialog').innerText() });
  await page.screenshot({ path: shots + '/ui-instance.png' });
  await page.locator('#dialog button', { hasText: 'Close' }).click();

  // An illegal drop: the primary below its own replica. The target says
  // why while dragging, and the drop is refused with the reason.
  await page.dragAndDrop(`#tree .node[data-pod="${primary}"]`, `#tree .node[data-pod="${replicas[0]}"]`);
  const refusal = page.locator('#notice:not(.hidden)');
  await refusal.waitFor();
  say({ step: 'illegal-drop', notice: await refusal.innerText(), nodes: await shape() });
  // Hover state for the screenshot: the verdict drawn on the target.
  await page.evaluate(([p, r]) => {
    const t = document.querySelector(`#tree .node[data-pod="${r}"]`);
    t.classList.add('drop-illegal');
    t.querySelector('.verdict').textContent = document.getElementById('notice').textContent.replace(/^.*refused: /, 'refused: ');
    document.querySelector(`#tree .node[data-pod="${p}"]`).classList.add('dragging');
  }, [primary, replicas[0]]);
  await page.screenshot({ path: shots + '/ui-refused.png' });

  // A legal drop: one replica below the other, planned, confirmed, and
  // the tree redraws with the new shape.
  const [moved, onto] = replicas;
  await page.dragAndDrop(`#tree .node[data-pod="${moved}"]`, `#tree .node[data-pod="${onto}"]`);
  try {
    await page.locator('#dialog[open] #confirm').waitFor();
  } catch (e) {
    // Say what the page showed instead: a refusal, or nothing at all.
    const shown = await page.locator('#notice').innerText().catch(() => '');
    const tree = JSON.stringify(await shape());
    throw new Error(`no confirmation after the legal drop (notice: ${JSON.stringify(shown)}; tree: ${tree}): ${e.message}`);
  }
  say({ step: 'plan', text: await page.locator('#dialog').innerText() });
  await page.screenshot({ path: shots + '/ui-confirm.png' });
  await page.locator('#dialog[open] #confirm').click();
  await page.waitForFunction(([m, o]) => {
    const n = document.querySelector(`#tree .node[data-pod="${m}"]`);
    return n && n.parentElement.parentElement.closest('li')?.querySelector(':scope > .node')?.dataset.pod === o;
  }, [moved, onto]);
  say({ step: 'relocated', notice: await page.locator('#notice').innerText(), nodes: await shape() });

  // The primary's mysqld killed: the tree redraws with the new primary,
  // without a reload (the mark set now is still there after).
  await page.evaluate(() => { window.orcaMark = 'same page'; });
  await wait('kill-primary');
  await page.waitForFunction((old) => {
    const p = document.querySelector('#tree .node.role-primary');
    return p && p.dataset.pod !== old && !p.closest('.unreachable');
  }, primary, { timeout: 120_000 });
  const mark = await page.evaluate(() => window.orcaMark);
  say({ step: 'failover', mark, nodes: await shape() });
  await page.screenshot({ path: shots + '/ui-failover.png' });

  // History: the operations with their steps; acknowledge with a comment.
  await page.goto(url + '/#/clusters/default/db/history');
  await page.locator('#recoveries tr.outcome-succeeded').first().waitFor();
  const rows = page.locator('#recoveries tr');
  await page.locator('#recoveries button', { hasText: 'steps' }).first().click();
  await page.locator('#recoveries td.steps-cell li').first().waitFor();
  page.once('dialog', (d) => d.accept('seen in the web test'));
  const ack = page.locator('#recoveries button.ack');
  const acking = (await ack.count()) > 0;
  if (acking) {
    await ack.first().click();
    const answer = page.locator('#notice:not(.hidden)');
    await answer.waitFor();
    if (!(await answer.getAttribute('class')).includes('ok')) throw new Error('acknowledge: ' + await answer.innerText());
    // The leader acts on it and the store records it: the page shows it
    // once read again.
    const deadline = Date.now() + 60_000;
    while (!(await page.locator('#recoveries td', { hasText: 'seen in the web test' }).count())) {
      if (Date.now() > deadline) throw new Error('the acknowledgement never showed in the history');
      await page.waitForTimeout(1000);
      await page.evaluate(() => window.dispatchEvent(new HashChangeEvent('hashchange')));
      await page.locator('#recoveries').waitFor();
    }
  }
  say({ step: 'history', acked: acking, text: await page.locator('main').innerText(), rows: await rows.count() });
  await page.screenshot({ path: shots + '/ui-history.png', fullPage: true });
  say({ step: 'done', errors });
} catch (e) {
  say({ error: String(e && e.stack || e) });
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    await p.screenshot({ path: shots + '/ui-error.png', fullPage: true }).catch(() => {});
  }
  await browser.close();
  process.exit(1);
}
await browser.close();
input.close();
