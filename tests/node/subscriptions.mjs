// bookingUpdated through the `graphql-ws` client, as the Expo app uses it:
// the participant sees PENDING_PAYMENT -> CONFIRMED -> CANCELLED, a
// stranger sees nothing, and a bad token is closed with 4401.
//
// Needs a running server (BASE_URL) and an admin account (ADMIN_EMAIL,
// ADMIN_PASSWORD); .ci/run provides both.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const BASE = process.env.BASE_URL ?? "http://127.0.0.1:18090";
const WS = BASE.replace(/^http/, "ws") + "/graphql/ws";
const PASSWORD = "Tangerine-Koala-42";
const results = [];

async function gql(query, variables = {}, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${BASE}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  if (body.errors) throw new Error(`${query.slice(0, 40)}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function register(email, role) {
  const d = await gql(
    "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
    { i: { email, password: PASSWORD, name: "Node Check", role, marketCode: "US" } },
  );
  // Verify the address as a user would, with the link of the email (the
  // development mailbox shows what the server sent).
  for (let i = 0; i < 100; i++) {
    const box = await (await fetch(`${BASE}/dev/emails?to=${encodeURIComponent(email)}`)).json();
    const link = box.emails.find((e) => e.link)?.link;
    if (link) {
      await gql("mutation($t: String!) { verifyEmail(token: $t) }", { t: new URL(link).searchParams.get("token") });
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return d.register.accessToken;
}

function check(name, ok, detail) {
  results.push(ok);
  console.log(`${ok ? "ok" : "FAILED"} - ${name}${ok ? "" : `: ${detail}`}`);
}

function watch(token) {
  const seen = [];
  const closed = new Promise((resolve) => {
    const client = createClient({
      url: WS,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      onNonLazyError: () => {},
      connectionParams: { authorization: `Bearer ${token}` },
      on: { closed: (e) => resolve(e?.code) },
    });
    client.subscribe(
      { query: "subscription { bookingUpdated { id status } }" },
      { next: (m) => seen.push(m.data?.bookingUpdated?.status), error: () => {}, complete: () => {} },
    );
    watch.clients.push(client);
  });
  return { seen, closed };
}
watch.clients = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = Date.now();

const admin = (await gql("mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
  { e: process.env.ADMIN_EMAIL, p: process.env.ADMIN_PASSWORD })).login.accessToken;
const coachToken = await register(`coach-${run}@example.com`, "COACH");
const coach = (await gql(
  "mutation($i: CoachProfileInput!) { upsertCoachProfile(input: $i) { id } }",
  { i: { displayName: "Node Coach", headline: "Checks subscriptions", bio: "", categorySlugs: ["chess"],
         hourlyRateMinor: 6000, sessionDurations: [60], timezone: "UTC" } },
  coachToken,
)).upsertCoachProfile.id;
await gql("mutation($r: [AvailabilityRuleInput!]!) { setAvailability(rules: $r) { id } }",
  { r: [1, 2, 3, 4, 5, 6, 7].map((d) => ({ weekday: d, startTime: "00:00", endTime: "24:00" })) }, coachToken);
await gql("mutation { submitCoachProfile { id } }", {}, coachToken);
await gql("mutation($id: ID!) { approveCoach(coachId: $id) { id } }", { id: coach }, admin);
await gql("mutation { publishCoachProfile(published: true) { id } }", {}, coachToken);
const parent = await register(`parent-${run}@example.com`, "CONSUMER");
const stranger = await register(`stranger-${run}@example.com`, "CONSUMER");

const mine = watch(parent);
const theirs = watch(stranger);
const bad = watch("not-a-real-token");
await sleep(500);

const start = new Date(Date.now() + 3 * 86400e3);
start.setUTCHours(9, 0, 0, 0);
const hold = (await gql("mutation($c: ID!, $s: DateTime!) { createHold(coachId: $c, startAt: $s, durationMinutes: 60) { id } }",
  { c: coach, s: start.toISOString() }, parent)).createHold.id;
const booking = (await gql("mutation($h: ID!) { bookHold(holdId: $h) { id payment { checkoutUrl } } }", { h: hold }, parent)).bookHold;
const checkout = new URL(booking.payment.checkoutUrl);
const paid = await fetch(`${BASE}${checkout.pathname}`, { method: "POST" });
check("dev checkout accepts the payment", paid.status === 200, paid.status);
await gql("mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"Checked\") { id } }", { id: booking.id }, parent);
await sleep(1000);

const want = ["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"];
check("the participant sees every status", JSON.stringify(mine.seen) === JSON.stringify(want), JSON.stringify(mine.seen));
check("a stranger sees nothing", theirs.seen.length === 0, JSON.stringify(theirs.seen));
const code = await Promise.race([bad.closed, sleep(5000).then(() => "timeout")]);
check("a bad token is closed with 4401", code === 4401, code);

for (const c of watch.clients) await c.dispose();
const failed = results.filter((r) => !r).length;
console.log(`subscriptions: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
