// Drives the third-party npm client `onetimesecret-api` 1.1.3 against ots-testserver and checks
// every answer against the fact sheet (shared/ots-api.md). Run by tests/npm_conformance.rs.
//
// Environment: OTS_URL (site base, e.g. http://127.0.0.1:PORT), OTS_USERNAME, OTS_API_TOKEN,
// OTS_KEY_LEN (62, or 31 for a --legacy-keys server).
"use strict";

const assert = require("node:assert/strict");
const ots = require("onetimesecret-api/index.js");

const url = process.env.OTS_URL;
const username = process.env.OTS_USERNAME;
const token = process.env.OTS_API_TOKEN;
const keyLen = Number(process.env.OTS_KEY_LEN || "62");
if (!url || !username || !token) {
  console.error("OTS_URL, OTS_USERNAME and OTS_API_TOKEN must be set");
  process.exit(2);
}
const keyPattern = new RegExp(`^[0-9a-z]{${keyLen}}$`);

const api = new ots.OneTimeSecretApi(username, token, { url, apiVersion: "v1" });
const results = [];

async function step(name, fn) {
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok - ${name}`);
  } catch (err) {
    results.push({ name, ok: false });
    // Messages here never carry secret values: assertions compare, they do not print values.
    console.log(`not ok - ${name}: ${err && err.message ? err.message.split("\n")[0] : err}`);
  }
}

async function rejectsWith(promise, errorClass) {
  let caught = null;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected ${errorClass.name}, the call succeeded`);
  assert.ok(caught instanceof errorClass, `expected ${errorClass.name}, got ${caught && caught.constructor && caught.constructor.name}`);
}

function isInt(v) {
  return Number.isInteger(v);
}

// The receipt view (GET /private/KEY) builds its links from a key the loaded receipt lacks, so
// the genuine server answers `${url}/receipt/` there (show_receipt.rb:38,270-277 at de53ff8f7);
// share, generate and recent carry the full link.
function assertReceipt(r, metadataUrl = `${url}/receipt/${r.metadata_key}`) {
  assert.match(r.metadata_key, keyPattern, "metadata_key format");
  assert.equal(r.custid, username, "custid is the account");
  for (const f of ["ttl", "metadata_ttl", "created", "updated"]) {
    assert.ok(isInt(r[f]), `${f} is an integer`);
  }
  assert.ok(Array.isArray(r.recipient), "recipient is an array");
  assert.equal(typeof r.share_domain, "string", "share_domain is a string, never null");
  assert.equal(r.metadata_url, metadataUrl, "metadata_url");
}

async function main() {
  const value = `conformance value ${Date.now()} with & + = characters`;
  let first;

  await step("status reports nominal", async () => {
    assert.equal(await api.status(), true);
  });

  await step("share returns a new receipt with a 62-char key and the clamped ttl", async () => {
    first = await api.share(value, { ttl: 3600 });
    assertReceipt(first);
    assert.match(first.secret_key, keyPattern, "secret_key format");
    assert.equal(first.state, "new");
    assert.equal(first.ttl, 3600);
    assert.ok(isInt(first.secret_ttl) && first.secret_ttl <= 3600 && first.secret_ttl > 3500, "secret_ttl");
    assert.ok(first.metadata_ttl > 3600 && first.metadata_ttl <= 7200, "receipt lives 2x ttl");
    assert.equal(first.passphrase_required, false);
    assert.equal(first.share_link, `${url}/secret/${first.secret_key}`, "client-built link");
    assert.equal(first.value, undefined, "share never echoes the value");
  });

  await step("metadata shows the unread secret", async () => {
    const m = await api.retrieveMetadata(first.metadata_key);
    assertReceipt(m, `${url}/receipt/`);
    assert.equal(m.state, "new");
    assert.equal(m.secret_key, first.secret_key);
    assert.equal(m.passphrase_required, false);
    assert.equal(m.value, undefined, "a shared value is never echoed on the receipt");
    assert.equal(m.share_link, `${url}/secret/${first.secret_key}`);
  });

  await step("reveal returns the value once", async () => {
    const s = await api.retrieveSecret(first.secret_key);
    assert.ok(s.value === value, "revealed value equals the shared value");
    assert.equal(s.secret_key, first.secret_key);
    assert.equal(s.share_domain, url, "share_domain is scheme + host");
  });

  await step("second reveal fails with Unknown secret", async () => {
    await rejectsWith(api.retrieveSecret(first.secret_key), ots.UnknownSecretError);
  });

  await step("metadata after the reveal says received, without the secret key", async () => {
    const m = await api.retrieveMetadata(first.metadata_key);
    assert.equal(m.state, "received");
    assert.equal(m.secret_key, undefined, "no secret_key once received");
    assert.equal(m.secret_ttl, undefined, "no secret_ttl once received");
    assert.ok(isInt(m.received) && m.received >= first.created, "received timestamp");
    assert.equal(m.share_link, undefined);
  });

  let second;
  await step("burn destroys another unread secret", async () => {
    second = await api.share("to be burned", { ttl: 600 });
    assertReceipt(second);
    const b = await api.burn(second.metadata_key);
    assert.equal(b.secret_shortkey, second.secret_key.slice(0, 8), "secret_shortkey");
    // The receipt as loaded before the burn (shared/ots-api.md §13.10): state still "new".
    assert.equal(b.state.state, "new", "burn answers the receipt as loaded before the burn");
    assert.equal(b.state.metadata_key, second.metadata_key);
    assert.equal(b.state.secret_key, second.secret_key, "secret_key as loaded");
    assert.equal(b.state.secret_ttl, null, "no live secret_ttl in the burn answer");
    assert.equal(b.state.passphrase_required, undefined, "no passphrase_required in burn state");
  });

  await step("a burned secret cannot be revealed", async () => {
    await rejectsWith(api.retrieveSecret(second.secret_key), ots.UnknownSecretError);
    const m = await api.retrieveMetadata(second.metadata_key);
    assert.equal(m.state, "burned");
  });

  await step("burning twice fails with Unknown secret", async () => {
    await rejectsWith(api.burn(second.metadata_key), ots.UnknownSecretError);
  });

  await step("ttl=0 becomes a 60-second secret", async () => {
    const r = await api.share("short lived", { ttl: 0 });
    assert.equal(r.ttl, 60);
  });

  await step("a passphrase-protected secret needs its passphrase", async () => {
    const r = await api.share("guarded", { passphrase: "open sesame" });
    assert.equal(r.passphrase_required, true);
    assert.equal(r.ttl, 604800, "missing ttl uses the 7-day default");
    await rejectsWith(api.retrieveSecret(r.secret_key), ots.UnknownSecretError);
    await rejectsWith(api.retrieveSecret(r.secret_key, { passphrase: "wrong one" }), ots.UnknownSecretError);
    const s = await api.retrieveSecret(r.secret_key, { passphrase: "open sesame" });
    assert.ok(s.value === "guarded");
  });

  await step("generate returns a value and a receipt", async () => {
    const g = await api.generate();
    assertReceipt(g);
    assert.equal(typeof g.value, "string");
    assert.equal(g.value.length, 12, "default generated length");
  });

  await step("recent lists the account's receipts without secret keys", async () => {
    const list = await api.recentMetadata();
    assert.ok(Array.isArray(list));
    const keys = list.map((r) => r.metadata_key);
    assert.ok(keys.includes(first.metadata_key) && keys.includes(second.metadata_key));
    for (const r of list) {
      assert.equal(r.secret_key, undefined);
      assert.equal(r.custid, username);
    }
  });

  await step("a short key is Not Found", async () => {
    await rejectsWith(api.retrieveMetadata("tooshort"), ots.NotFoundError);
  });

  await step("an unknown key is Unknown secret", async () => {
    await rejectsWith(api.retrieveSecret("z".repeat(keyLen)), ots.UnknownSecretError);
  });

  await step("bad credentials are Not authorized, even on status", async () => {
    const bad = new ots.OneTimeSecretApi(username, `${token}-wrong`, { url, apiVersion: "v1" });
    await rejectsWith(bad.status(), ots.NotAuthorizedError);
  });

  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.error(`conformance run crashed: ${err && err.message}`);
  process.exit(1);
});
