// The Node half of bench/fanout (run that script, not this file).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { adminLogin, approvedCoach, gql, register, sleep } from "../tests/node/setup.mjs";

const require = createRequire(new URL("../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");

const A = process.env.BASE_URL, B = process.env.B_URL;
const SOCKETS = Number(process.env.SOCKETS), ROUNDS = Number(process.env.ROUNDS);
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;
const mib = (b) => (b / 1048576).toFixed(1);

const run = Date.now();
const admin = await adminLogin();
const { id: coach, token: coachToken } = await approvedCoach(admin, `coach-${run}@example.com`);
const parent = await register(`parent-${run}@example.com`, "CONSUMER");
await sleep(500);
const before = { a: rss(process.env.A_PID), b: rss(process.env.B_PID) };

// Deliveries: `${booking}:${status}` -> [{ at, instance }].
const arrivals = new Map();
const sockets = [];
await Promise.all(Array.from({ length: SOCKETS }, (_, i) => new Promise((resolve, reject) => {
  const instance = i % 2 === 0 ? "a" : "b";
  const token = i % 4 < 2 ? parent : coachToken;
  const ws = new WebSocket((instance === "a" ? A : B).replace(/^http/, "ws") + "/graphql/ws", "graphql-transport-ws");
  ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })));
  ws.on("message", (raw) => {
    const m = JSON.parse(raw);
    if (m.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "subscription { bookingUpdated { id status } }" } }));
      setTimeout(resolve, 50);
    } else if (m.type === "next") {
      const b = m.payload.data.bookingUpdated;
      const key = `${b.id}:${b.status}`;
      if (!arrivals.has(key)) arrivals.set(key, []);
      arrivals.get(key).push({ at: performance.now(), instance });
    }
  });
  ws.on("error", reject);
  sockets.push(ws);
})));
await sleep(1000);
const after = { a: rss(process.env.A_PID), b: rss(process.env.B_PID) };

const changes = []; // { key, sent, instance }
for (let r = 0; r < ROUNDS; r++) {
  const on = r % 2 === 0 ? "a" : "b";
  const base = on === "a" ? A : B;
  const call = async (query, variables) => {
    const res = await fetch(`${base}/graphql`, { method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${parent}` },
      body: JSON.stringify({ query, variables }) });
    const body = await res.json();
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
  const start = new Date(Date.now() + (3 + r) * 86400e3);
  start.setUTCHours(10, 0, 0, 0);
  const hold = (await call("mutation($c: ID!, $s: DateTime!) { createHold(coachId: $c, startAt: $s, durationMinutes: 60) { id } }",
    { c: coach, s: start.toISOString() })).createHold.id;
  let sent = performance.now();
  const booking = (await call("mutation($h: ID!) { bookHold(holdId: $h) { id payment { checkoutUrl } } }", { h: hold })).bookHold;
  changes.push({ key: `${booking.id}:PENDING_PAYMENT`, sent, instance: on });
  await sleep(300);
  sent = performance.now();
  await fetch(`${base}${new URL(booking.payment.checkoutUrl).pathname}`, { method: "POST" });
  changes.push({ key: `${booking.id}:CONFIRMED`, sent, instance: on });
  await sleep(300);
  sent = performance.now();
  await call("mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"Bench\") { id } }", { id: booking.id });
  changes.push({ key: `${booking.id}:CANCELLED`, sent, instance: on });
  await sleep(300);
}
await sleep(2000);

const all = [], local = [], remote = [];
let delivered = 0;
for (const c of changes) {
  for (const d of arrivals.get(c.key) ?? []) {
    const ms = d.at - c.sent;
    all.push(ms);
    (d.instance === c.instance ? local : remote).push(ms);
    delivered++;
  }
}
const pct = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(1) : "n/a";
};
const line = (name, xs) => `${name.padEnd(8)} n=${String(xs.length).padStart(6)}  p50 ${pct(xs, 50)} ms  p95 ${pct(xs, 95)} ms  p99 ${pct(xs, 99)} ms`;
console.log(`fan-out of ${changes.length} booking changes to ${SOCKETS} subscribers on two instances (${process.env.BUILD} build, PostgreSQL + Redis)`);
console.log(`delivered ${delivered} of ${changes.length * SOCKETS} (every socket is a participant)`);
console.log(line("all", all));
console.log(line("local", local));
console.log(line("remote", remote));
console.log(`memory for ${SOCKETS / 2} sockets each: instance A +${mib(after.a - before.a)} MiB (RSS ${mib(after.a)} MiB), instance B +${mib(after.b - before.b)} MiB (RSS ${mib(after.b)} MiB); about ${((after.a - before.a + after.b - before.b) / SOCKETS / 1024).toFixed(1)} KiB per socket`);
console.log(`latency: from sending the request that made the change to the event's arrival; reproduce with BUILD=${process.env.BUILD} SOCKETS=${SOCKETS} ROUNDS=${ROUNDS} bench/fanout`);
for (const ws of sockets) ws.terminate();
process.exit(delivered === changes.length * SOCKETS ? 0 : 1);
