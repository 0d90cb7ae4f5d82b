// The playground in headless Chromium, under its real CSP: sign-in, the
// saved operations (each a valid document; the search and the admin lists
// run), the schema reference, completion in the editor, token refresh and
// a live bookingUpdated subscription driven by a booking made through the
// API. Any console error or CSP violation in the page fails the check.
//
// Needs a running development server (BASE_URL) with an admin account
// (ADMIN_EMAIL, ADMIN_PASSWORD) and nothing else: the check creates the
// coach and the consumer it needs. Chromium at /usr/bin/chromium.
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const BASE = (process.env.BASE_URL ?? "http://127.0.0.1:18090").replace(/\/+$/, "");
const ADMIN_EMAIL = process.env.ADMIN_EMAIL;
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
const PASSWORD = "Tangerine-Koala-42";
const run = Date.now().toString(36);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let passed = 0;
let failed = 0;
const problems = []; // console errors, page errors, CSP violations
let reported = false;

function log(line) {
  console.log(line);
}

async function step(name, fn) {
  const started = Date.now();
  try {
    const note = await fn();
    passed++;
    log(`ok - ${name}${note ? ` (${note})` : ""} [${Date.now() - started} ms]`);
  } catch (e) {
    failed++;
    log(`FAILED - ${name}: ${e && e.message ? e.message : e}`);
    throw e;
  }
}

function assert(ok, message) {
  if (!ok) throw new Error(message);
}

// --- the API, from Node --------------------------------------------------

async function post(request, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${BASE}/graphql`, { method: "POST", headers, body: JSON.stringify(request) });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  // The HTTP-wide limit tells its wait in a header.
  if (res.status === 429 && body.errors && body.errors[0] && body.errors[0].extensions) {
    body.errors[0].extensions.retryAfter ??= Number(res.headers.get("retry-after") ?? 10);
  }
  return body;
}

// The seconds to wait when an answer is RATE_LIMITED (other checks may
// have spent the sign-in budget of this IP just before), else null.
function retryAfter(body) {
  const e = (body && body.errors ? body.errors : []).find((x) => x.extensions && x.extensions.code === "RATE_LIMITED");
  return e ? Number(e.extensions.retryAfter ?? 10) : null;
}

async function gql(query, variables, token) {
  for (let attempt = 0; ; attempt++) {
    const body = await post({ query, variables }, token);
    const wait = retryAfter(body);
    if (wait !== null && attempt < 3) {
      log(`# rate limited; waiting ${wait} s`);
      await sleep((wait + 1) * 1000);
      continue;
    }
    if (body.errors) throw new Error(`${query.split("{")[0].trim() || query.slice(0, 40)}: ${JSON.stringify(body.errors)}`);
    return body.data;
  }
}

function jwtExpiry(token) {
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  return claims.exp * 1000;
}

// --- the page ------------------------------------------------------------

async function signIn(page, email, password) {
  for (let attempt = 0; ; attempt++) {
    await page.fill("#email", email);
    await page.fill("#password", password);
    await page.evaluate(() => { document.getElementById("result").textContent = ""; });
    await page.click("#login");
    await page.waitForFunction((e) => document.getElementById("who").textContent.includes(e)
      || document.getElementById("result").textContent.includes("errors"), email, { timeout: 10000 });
    const who = await page.textContent("#who");
    if (who.includes(email)) return who;
    const body = JSON.parse(await page.textContent("#result"));
    const wait = retryAfter(body);
    if (wait === null || attempt >= 3) throw new Error(`sign-in refused: ${JSON.stringify(body.errors)}`);
    log(`# sign-in rate limited; waiting ${wait} s`);
    await sleep((wait + 1) * 1000);
  }
}

async function pick(page, id) {
  await page.selectOption("#saved", id);
  return {
    query: await page.inputValue("#query"),
    variables: JSON.parse((await page.inputValue("#variables")) || "{}"),
  };
}

// Runs a saved operation in the playground; the parsed result pane.
// `variables` replaces the offered ones (a function gets them first).
async function runSaved(page, id, variables) {
  for (let attempt = 0; ; attempt++) {
    const offered = await pick(page, id);
    if (variables) {
      const v = typeof variables === "function" ? variables(offered.variables) : variables;
      await page.fill("#variables", JSON.stringify(v));
    }
    await page.evaluate(() => { document.getElementById("status").dataset.state = "idle"; });
    await page.click("#run");
    await page.waitForFunction(() => ["done", "error"].includes(document.getElementById("status").dataset.state), null, { timeout: 15000 });
    const text = await page.textContent("#result");
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`${id}: the result pane holds no JSON: ${text.slice(0, 200)}`);
    }
    const wait = retryAfter(body);
    if (wait === null || attempt >= 3) return body;
    log(`# ${id} rate limited; waiting ${wait} s`);
    await sleep((wait + 1) * 1000);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

try {
  assert(ADMIN_EMAIL && ADMIN_PASSWORD, "set ADMIN_EMAIL and ADMIN_PASSWORD");
  log(`# playground check against ${BASE}`);
  const context = await browser.newContext({ viewport: { width: 1500, height: 1000 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.exposeFunction("reportCspViolation", (v) => problems.push(`CSP violation: ${v}`));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile || "?"}:${e.lineNumber}`);
    });
  });

  let csp = "";
  await step("/ redirects to the playground, served with its CSP", async () => {
    const response = await page.goto(`${BASE}/`, { waitUntil: "load" });
    assert(new URL(page.url()).pathname === "/playground", `landed on ${page.url()}`);
    csp = response.headers()["content-security-policy"] ?? "";
    assert(csp.includes("script-src 'self'") && csp.includes("style-src 'self'") && !csp.includes("unsafe"), `CSP: ${csp}`);
    await page.waitForSelector("#reference[data-loaded='true']", { timeout: 10000 });
    return await page.textContent("#reference-state");
  });

  let adminToken = "";
  await step("sign in as the admin through the form", async () => {
    const who = await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
    assert(who.includes("ADMIN"), `#who reads ${who}`);
    adminToken = await page.inputValue("#token");
    assert(adminToken.split(".").length === 3, "no access token in #token");
    await page.waitForSelector("#token-state[data-state='fresh']", { timeout: 5000 });
    const state = await page.textContent("#token-state");
    assert(/refresh in \d+:\d\d/.test(state), `#token-state reads ${state}`);
    const shown = await page.textContent("#result");
    assert(shown.includes(`"refreshToken": "(kept in this tab's memory)"`), "the result pane shows the refresh token");
    return `${who}; ${state}`;
  });

  // Every saved operation, as the playground offers it.
  const saved = {};
  await step("every saved operation is a valid document", async () => {
    const ids = await page.$$eval("#saved option", (os) => os.map((o) => o.value));
    for (const id of ids) saved[id] = await pick(page, id);
    const need = ["search-coaches", "slots", "hold", "book", "my-bookings", "cancel", "admin-coaches", "admin-users",
      "admin-stats", "audit-log", "admin-emails", "booking-updated"];
    for (const id of need) assert(saved[id], `no saved operation ${id}`);
    // An operation name the document lacks: the server parses and
    // validates the whole document, then refuses to pick an operation,
    // so nothing runs. A broken document shows that it does validate first.
    const control = await post({ query: "query Broken { noSuchField }", operationName: "PlaygroundValidationOnly" }, adminToken);
    assert(control.errors && /noSuchField/.test(control.errors[0].message),
      `a broken document is not reported as such with an unknown operation name: ${JSON.stringify(control)}`);
    const bad = [];
    for (let i = 0; i < ids.length; i += 10) {
      const chunk = ids.slice(i, i + 10);
      const answers = await post(chunk.map((id) => ({ query: saved[id].query, operationName: "PlaygroundValidationOnly" })), adminToken);
      assert(Array.isArray(answers) && answers.length === chunk.length, `batch answer: ${JSON.stringify(answers).slice(0, 200)}`);
      answers.forEach((a, k) => {
        const errors = a.errors ?? [];
        const fine = errors.length === 1 && /Unknown operation named/.test(errors[0].message);
        if (!fine) bad.push(`${chunk[k]}: ${JSON.stringify(errors)}`);
      });
    }
    assert(!bad.length, bad.join("\n"));
    return `${ids.length} operations`;
  });

  await step("the server's list of known operations holds every saved operation", async () => {
    // playground/operations.graphql names the operations /metrics labels.
    const file = await readFile(new URL("../../playground/operations.graphql", import.meta.url), "utf8");
    const names = (text) => [...text.matchAll(/^\s*(?:query|mutation|subscription)\s+(\w+)/gm)].map((m) => m[1]);
    const known = new Set(names(file));
    const missing = Object.entries(saved).flatMap(([id, s]) => names(s.query).filter((n) => !known.has(n)).map((n) => `${id} (${n})`));
    assert(!missing.length, `not in operations.graphql: ${missing.join(", ")}`);
    const whole = await post({ query: file, operationName: "PlaygroundValidationOnly" }, adminToken);
    assert(whole.errors && whole.errors.length === 1 && /Unknown operation named/.test(whole.errors[0].message),
      `operations.graphql is not one valid document: ${JSON.stringify(whole.errors)}`);
    return `${known.size} names`;
  });

  await step("the saved search runs and shows data.searchCoaches", async () => {
    const r = await runSaved(page, "search-coaches");
    assert(!r.errors, JSON.stringify(r.errors));
    assert(r.data && r.data.searchCoaches && typeof r.data.searchCoaches.totalCount === "number", JSON.stringify(r).slice(0, 300));
    return `totalCount ${r.data.searchCoaches.totalCount}`;
  });

  await step("the saved admin lists and public queries run without errors", async () => {
    const lists = ["admin-coaches", "admin-users", "admin-stats", "audit-log", "admin-emails", "admin-refunds",
      "admin-disputes", "admin-sponsorships", "reference", "me"];
    for (const id of lists) {
      if (!saved[id]) continue;
      const r = await runSaved(page, id);
      assert(!r.errors && r.data, `${id}: ${JSON.stringify(r).slice(0, 300)}`);
    }
    const users = await runSaved(page, "admin-users");
    assert(users.data.adminUsers.nodes.some((u) => u.email === ADMIN_EMAIL.toLowerCase() || u.email === ADMIN_EMAIL), "the admin is not among adminUsers");
    return lists.filter((id) => saved[id]).join(", ");
  });

  await step("the schema reference finds Booking, shows its fields and navigates", async () => {
    if (!(await page.isVisible("#reference"))) await page.click("#reference-toggle");
    await page.fill("#reference-search", "Booking");
    await page.waitForSelector("#reference-types .type-entry[data-type='Booking']", { timeout: 5000 });
    const listed = await page.$$eval("#reference-types .type-entry", (es) => es.map((e) => e.dataset.type));
    assert(!listed.includes("Money"), `the search did not filter: ${listed.join(", ")}`);
    await page.click("#reference-types .type-entry[data-type='Booking'] .type-link");
    await page.waitForSelector("#reference-detail[data-type='Booking'] .field-entry[data-field='status']", { timeout: 5000 });
    const fields = await page.$$eval("#reference-detail .field-entry", (es) => es.map((e) => e.dataset.field));
    for (const f of ["id", "status", "startAt", "price", "payment"]) assert(fields.includes(f), `Booking lacks ${f}: ${fields.join(", ")}`);
    // A field's type leads to that type.
    await page.click("#reference-detail .field-entry[data-field='status'] .type-link[data-type='BookingStatus']");
    await page.waitForSelector("#reference-detail[data-type='BookingStatus'] .enum-value[data-value='CONFIRMED']", { timeout: 5000 });
    await page.click("#reference-back");
    await page.waitForSelector("#reference-detail[data-type='Booking']", { timeout: 5000 });
    // Field names are searchable too, with their arguments documented.
    await page.fill("#reference-search", "availableSlots");
    await page.waitForSelector("#reference-fields .field-match[data-type='Query'][data-field='availableSlots']", { timeout: 5000 });
    await page.click("#reference-fields .field-match[data-field='availableSlots'] .type-link");
    const args = await page.$$eval("#reference-detail[data-type='Query'] .field-entry[data-field='availableSlots'] .arg-entry", (es) => es.map((e) => e.dataset.arg));
    assert(["coachId", "from", "to", "durationMinutes"].every((a) => args.includes(a)), `availableSlots args: ${args.join(", ")}`);
    return `${fields.length} Booking fields`;
  });

  await step("the editor offers field names where the cursor is", async () => {
    const scaffold = "query {\n  searchCoaches(first: 5) {\n    nodes {\n      \n    }\n  }\n}\n";
    await page.fill("#query", scaffold);
    const at = scaffold.indexOf("      \n") + 6;
    await page.focus("#query");
    await page.evaluate((p) => document.getElementById("query").setSelectionRange(p, p), at);
    await page.keyboard.type("disp");
    await page.waitForSelector("#completions .completion-item[data-name='displayName']", { state: "visible", timeout: 5000 });
    const offered = await page.$$eval("#completions .completion-item", (es) => es.map((e) => e.dataset.name));
    assert(!offered.includes("totalCount"), `Coach fields expected, got ${offered.join(", ")}`);
    await page.keyboard.press("Tab");
    assert(await page.isHidden("#completions"), "the list stays open after Tab");
    let text = await page.inputValue("#query");
    assert(text.includes("nodes {\n      displayName\n"), `after Tab: ${text}`);
    // Ctrl+Space offers every field of the type; arrows move, Enter accepts.
    await page.keyboard.type(" ");
    await page.keyboard.press("Control+Space");
    await page.waitForSelector("#completions .completion-item[data-name='headline']", { state: "visible", timeout: 5000 });
    await page.keyboard.press("ArrowDown");
    const second = await page.getAttribute("#completions .completion-item.active", "data-name");
    await page.keyboard.press("Enter");
    text = await page.inputValue("#query");
    assert(text.includes(`displayName ${second}\n`), `after Enter: ${text}`);
    // Escape closes; arguments and nested types are known too.
    await page.keyboard.type(" ra");
    await page.waitForSelector("#completions .completion-item[data-name='ratingAverage']", { state: "visible", timeout: 5000 });
    await page.keyboard.press("Escape");
    assert(await page.isHidden("#completions"), "Escape did not close the list");
    await page.fill("#query", "mutation {\n  createHold(");
    await page.focus("#query");
    await page.evaluate(() => { const q = document.getElementById("query"); q.setSelectionRange(q.value.length, q.value.length); });
    await page.keyboard.press("Control+Space");
    await page.waitForSelector("#completions .completion-item[data-name='durationMinutes']", { state: "visible", timeout: 5000 });
    await page.keyboard.press("Escape");
    await page.fill("#query", "subscription {\n  bookingUpdated {\n    payment { st");
    await page.evaluate(() => { const q = document.getElementById("query"); q.focus(); q.setSelectionRange(q.value.length, q.value.length); });
    await page.keyboard.type("a");
    await page.waitForSelector("#completions .completion-item[data-name='status']", { state: "visible", timeout: 5000 });
    await page.keyboard.press("Escape");
    return `offered ${offered.slice(0, 4).join(", ")}…`;
  });

  // A coach (made with the playground's saved operations, from Node) and a
  // consumer (registered and verified in the playground itself).
  let consumerEmail = "";
  let coachId = "";
  await step("a coach through the saved operations", async () => {
    const input = { ...saved.register.variables.input, email: `coach-${run}@example.com`, password: PASSWORD, name: "Check Coach", role: "COACH" };
    const coach = (await gql(saved.register.query, { input })).register.accessToken;
    coachId = (await gql(saved["coach-upsert"].query, saved["coach-upsert"].variables, coach)).upsertCoachProfile.id;
    // Every day, all day, so a slot days ahead is always offered.
    await gql(saved["coach-availability"].query, { startTime: "00:00", endTime: "24:00" }, coach);
    await gql(saved["coach-submit"].query, {}, coach);
    const review = (await gql(saved["admin-coaches"].query, saved["admin-coaches"].variables, adminToken)).adminCoaches;
    assert(review.nodes.some((c) => c.id === coachId), "the submitted coach is not among the coaches to review");
    await gql(saved["admin-approve"].query, { coachId }, adminToken);
    await gql(saved["coach-publish"].query, saved["coach-publish"].variables, coach);
    return `coach ${coachId}`;
  });

  await step("Register in the playground signs in as the new consumer", async () => {
    consumerEmail = `parent-${run}@example.com`;
    const r = await runSaved(page, "register", (v) => ({ input: { ...v.input, email: consumerEmail, password: PASSWORD } }));
    assert(!r.errors && r.data.register.user.email === consumerEmail, JSON.stringify(r).slice(0, 300));
    const who = await page.textContent("#who");
    assert(who.includes(consumerEmail) && who.includes("CONSUMER"), `#who reads ${who}`);
    await page.waitForSelector("#token-state[data-state='fresh']", { timeout: 5000 });
    return who;
  });

  await step("Verify email takes the link from the dev mailbox", async () => {
    // The playground reads the mailbox when the operation is picked.
    let r;
    for (let i = 0; i < 40; i++) {
      await pick(page, "verify-email");
      await sleep(250);
      const v = JSON.parse(await page.inputValue("#variables"));
      if (!String(v.token).startsWith("<")) {
        r = await runSaved(page, "verify-email", v);
        break;
      }
    }
    assert(r, "no verification token was filled in");
    assert(!r.errors && r.data.verifyEmail === true, JSON.stringify(r));
    const me = await runSaved(page, "me");
    assert(me.data.me.emailVerified === true, JSON.stringify(me));
    return "emailVerified";
  });
  const consumerToken = await page.inputValue("#token");

  const statuses = async () => page.evaluate(() => {
    const text = document.getElementById("result").textContent;
    return [...text.matchAll(/"status": "([A-Z_]+)"/g)].map((m) => m[1]);
  });
  const waitEvents = (n) => page.waitForFunction((k) => Number(document.getElementById("result").dataset.events) >= k, n, { timeout: 10000 });

  let bookingId = "";
  await step("bookingUpdated runs live in the playground", async () => {
    await pick(page, "booking-updated");
    await page.click("#run");
    await page.waitForSelector("#status[data-state='live']", { timeout: 10000 });
    assert(await page.isEnabled("#stop"), "Stop is not enabled while live");
    await sleep(300);
    const from = new Date(Date.now() + 3 * 86400e3).toISOString();
    const to = new Date(Date.now() + 4 * 86400e3).toISOString();
    const slots = (await gql(saved.slots.query, { ...saved.slots.variables, coachId, from, to }, consumerToken)).availableSlots;
    assert(slots.length, "the coach offers no slot");
    const hold = (await gql(saved.hold.query, { ...saved.hold.variables, coachId, startAt: slots[0].startAt }, consumerToken)).createHold;
    const booking = (await gql(saved.book.query, { holdId: hold.id }, consumerToken)).bookHold;
    bookingId = booking.id;
    await waitEvents(1);
    const text = await page.textContent("#result");
    assert(text.includes(bookingId), "the event does not name the booking");
    assert((await statuses()).includes("PENDING_PAYMENT"), `statuses: ${await statuses()}`);
    globalThis.checkoutUrl = booking.payment.checkoutUrl;
    return `booking ${bookingId}: PENDING_PAYMENT`;
  });

  await step("a refreshed token keeps the subscription going", async () => {
    const before = await page.inputValue("#token");
    const count = Number(await page.getAttribute("#token-state", "data-refreshes"));
    await page.click("#refresh");
    await page.waitForFunction((n) => Number(document.getElementById("token-state").dataset.refreshes) === n + 1, count, { timeout: 10000 });
    const after = await page.inputValue("#token");
    assert(after && after !== before, "#token did not change");
    const me = await gql(saved.me.query, {}, after);
    assert(me.me.email === consumerEmail, `the refreshed token is ${me.me.email}'s`);
    await page.waitForFunction(() => document.getElementById("result").textContent.includes("resubscribed with the refreshed token"), null, { timeout: 10000 });
    await sleep(300);
    const checkout = new URL(globalThis.checkoutUrl);
    const paid = await fetch(`${BASE}${checkout.pathname}`, { method: "POST" });
    assert(paid.ok, `the dev checkout answered ${paid.status}`);
    await waitEvents(2);
    await gql(saved.cancel.query, { bookingId, reason: "Checked" }, after);
    await waitEvents(3);
    await sleep(500);
    const events = Number(await page.getAttribute("#result", "data-events"));
    const seen = (await statuses()).filter((s) => ["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"].includes(s));
    assert(events === 3, `${events} events: ${seen}`);
    assert(JSON.stringify(seen) === JSON.stringify(["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"]), `statuses: ${seen}`);
    return seen.join(" -> ");
  });

  await step("Stop ends the subscription", async () => {
    await page.click("#stop");
    await page.waitForSelector("#status[data-state='stopped']", { timeout: 5000 });
    assert(await page.isDisabled("#stop"), "Stop stays enabled");
    return await page.textContent("#status");
  });

  // The refresh ahead of expiry, when the server hands out short tokens.
  const token = await page.inputValue("#token");
  const lifetime = jwtExpiry(token) - Date.now();
  if (lifetime <= 120e3) {
    await step("the token is refreshed by itself and the subscription outlives the old token", async () => {
      await pick(page, "booking-updated");
      await page.click("#run");
      await page.waitForSelector("#status[data-state='live']", { timeout: 10000 });
      const before = await page.getAttribute("#token-state", "data-refreshes");
      await page.waitForFunction((b) => document.getElementById("token-state").dataset.refreshes !== b, before, { timeout: lifetime });
      const fresh = await page.inputValue("#token");
      assert(fresh !== token && jwtExpiry(fresh) > Date.now(), "no fresh token");
      const left = Math.round((jwtExpiry(token) - Date.now()) / 1000);
      // Past the old token's expiry, when the server ends its sockets.
      await sleep(Math.max(0, jwtExpiry(token) - Date.now()) + 2000);
      assert(await page.isVisible("#status[data-state='live']"), `status: ${await page.textContent("#status")}`);
      const from = new Date(Date.now() + 5 * 86400e3).toISOString();
      const to = new Date(Date.now() + 6 * 86400e3).toISOString();
      const slots = (await gql(saved.slots.query, { ...saved.slots.variables, coachId, from, to }, fresh)).availableSlots;
      const hold = (await gql(saved.hold.query, { ...saved.hold.variables, coachId, startAt: slots[0].startAt }, fresh)).createHold;
      const second = (await gql(saved.book.query, { holdId: hold.id }, fresh)).bookHold;
      await waitEvents(1);
      assert((await page.textContent("#result")).includes(second.id), "the event of the second booking did not arrive");
      await page.click("#stop");
      await page.waitForSelector("#status[data-state='stopped']", { timeout: 5000 });
      return `refreshed with ${left} s left of ${Math.round(lifetime / 1000)} s; an event arrived after the old token expired`;
    });
  } else {
    await step("a refresh is scheduled a minute before expiry", async () => {
      const state = await page.textContent("#token-state");
      const m = /token valid (\d+):(\d\d) · refresh in (\d+):(\d\d)/.exec(state);
      assert(m, `#token-state reads ${state}`);
      const valid = Number(m[1]) * 60 + Number(m[2]);
      const refresh = Number(m[3]) * 60 + Number(m[4]);
      assert(Math.abs(valid - refresh - 60) <= 2, `valid ${valid} s, refresh in ${refresh} s`);
      return state;
    });
  }

  await step("Sign out forgets the session", async () => {
    await page.click("#logout");
    await page.waitForFunction(() => document.getElementById("who").textContent === "not signed in", null, { timeout: 5000 });
    assert((await page.inputValue("#token")) === "", "#token still holds a token");
    return "not signed in";
  });

  await step("no console error and no CSP violation in the page", async () => {
    reported = true;
    assert(!problems.length, problems.join("\n"));
    return `CSP ${csp}`;
  });
} catch (e) {
  if (!failed) {
    failed++;
    log(`FAILED - ${e && e.message ? e.message : e}`);
  }
  // What the page said may explain a failure of another step.
  if (problems.length && !reported) log(`# the page reported:\n${problems.map((p) => `#   ${p}`).join("\n")}`);
} finally {
  await browser.close();
}

console.log(`playground: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
