// bookingUpdated through the `graphql-ws` client, as the Expo app uses it:
// the participant sees PENDING_PAYMENT -> CONFIRMED -> CANCELLED, a
// stranger sees nothing, and a bad token is closed with 4401.
//
// Needs a running server (BASE_URL) and an admin account (ADMIN_EMAIL,
// ADMIN_PASSWORD); .ci/run provides both.
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { BASE, adminLogin, approvedCoach, gql, register, reporter, sleep } from "./setup.mjs";

const WS = BASE.replace(/^http/, "ws") + "/graphql/ws";
const { check, finish } = reporter("subscriptions");

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

const run = Date.now();

const admin = await adminLogin();
const { id: coach } = await approvedCoach(admin, `coach-${run}@example.com`);
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
process.exit(finish() ? 1 : 0);
