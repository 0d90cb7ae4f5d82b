// Search and booking through the two GraphQL clients our web and mobile
// apps are built on, each as a stock app sets it up:
//
// - urql (`@urql/core`) with its default exchanges and options, which send
//   queries as GET /graphql?query=... and mutations as POST;
// - Apollo Client with automatic persisted queries
//   (`createPersistedQueryLink`), once with hashed queries over POST (the
//   default) and once with `useGETForHashedQueries`: the first request of
//   a document carries only its sha256 hash, a miss answers
//   PERSISTED_QUERY_NOT_FOUND, the client resends with the query, and from
//   then on the hash alone is enough.
//
// Each client's fetch is wrapped only to record what went over the wire.
// Needs a running server (BASE_URL) and an admin account (ADMIN_EMAIL,
// ADMIN_PASSWORD); .ci/run provides both.
import { createHash } from "node:crypto";
import { Client, cacheExchange, fetchExchange, gql as urqlGql } from "@urql/core";
// Apollo Client 3 has no `exports` map: Node's ES module loader needs the file.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { sha256 as cryptoHashSha256 } from "crypto-hash";
import { BASE, adminLogin, approvedCoach, register, reporter } from "./setup.mjs";

const { check, finish } = reporter("clients");
const run = Date.now();
const GRAPHQL = `${BASE}/graphql`;
const CATEGORY = "piano";
const COACH_NAME = `Client Check Coach ${run}`;

/** A fetch that records each request (method, what was sent, the answer) and passes it on. */
function recorder() {
  const log = [];
  async function recordingFetch(input, init = {}) {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const method = (init.method ?? "GET").toUpperCase();
    const json = (s) => (s == null ? undefined : JSON.parse(s));
    const sent = method === "GET"
      ? {
          query: url.searchParams.get("query") ?? undefined,
          operationName: url.searchParams.get("operationName") ?? undefined,
          variables: json(url.searchParams.get("variables")),
          extensions: json(url.searchParams.get("extensions")),
        }
      : JSON.parse(init.body);
    const res = await fetch(input, init);
    const entry = {
      method,
      url: url.href,
      sent,
      authorization: new Headers(init.headers).get("authorization"),
      status: res.status,
      contentType: res.headers.get("content-type"),
      cacheControl: res.headers.get("cache-control"),
      answer: await res.clone().json().catch(() => null),
    };
    log.push(entry);
    return res;
  }
  return { log, fetch: recordingFetch };
}

const codes = (entry) => (entry?.answer?.errors ?? []).map((e) => e.extensions?.code);
const hashOf = (entry) => entry?.sent?.extensions?.persistedQuery?.sha256Hash;
const show = (entry) => entry && JSON.stringify({ method: entry.method, url: entry.url, sent: entry.sent, status: entry.status, answer: entry.answer });
const sha256Hex = (s) => createHash("sha256").update(s).digest("hex");

/** Where to look for free slots: 2 to 5 days ahead. */
const slotWindow = () => ({
  from: new Date(Date.now() + 2 * 86400e3).toISOString(),
  to: new Date(Date.now() + 5 * 86400e3).toISOString(),
});

// ---------------------------------------------------------------- setup
console.log(`# server ${BASE}`);
const admin = await adminLogin();
const coach = await approvedCoach(admin, `client-coach-${run}@example.com`, {
  displayName: COACH_NAME,
  headline: "Checks the GraphQL clients",
  categorySlugs: [CATEGORY],
  hourlyRateMinor: 7500,
}, { payouts: true });
console.log(`# coach ${coach.id} (${CATEGORY}, US) approved and published`);
const urqlConsumer = await register(`client-urql-${run}@example.com`, "CONSUMER");
const apolloConsumer = await register(`client-apollo-${run}@example.com`, "CONSUMER");

// ---------------------------------------------------------------- urql
console.log("# urql: default Client, queries over GET");
const urqlWire = recorder();
const urql = new Client({
  url: GRAPHQL,
  exchanges: [cacheExchange, fetchExchange],
  fetch: urqlWire.fetch,
  fetchOptions: () => ({ headers: { authorization: `Bearer ${urqlConsumer}` } }),
});

const SEARCH_URQL = urqlGql`
  query SearchCoaches($filter: CoachSearchFilter, $first: Int) {
    searchCoaches(filter: $filter, first: $first) {
      totalCount
      nodes { id displayName status published payoutsEnabled market { code } categories { slug } hourlyRate { amountMinor currency } }
    }
  }`;
const SLOTS_URQL = urqlGql`
  query Slots($coachId: ID!, $from: DateTime!, $to: DateTime!, $minutes: Int!) {
    availableSlots(coachId: $coachId, from: $from, to: $to, durationMinutes: $minutes) { startAt endAt }
  }`;
const CREATE_HOLD_URQL = urqlGql`
  mutation CreateHold($coachId: ID!, $startAt: DateTime!, $minutes: Int!) {
    createHold(coachId: $coachId, startAt: $startAt, durationMinutes: $minutes) { id status startAt endAt expiresAt coach { id } }
  }`;
const BOOK_HOLD_URQL = urqlGql`
  mutation BookHold($holdId: ID!) {
    bookHold(holdId: $holdId) { id status startAt endAt price { amountMinor currency } payment { status checkoutUrl } coach { id } }
  }`;
const MY_BOOKINGS_URQL = urqlGql`
  query MyBookings($status: BookingStatus) {
    myBookings(status: $status, first: 20) { totalCount nodes { id status startAt coach { id } } }
  }`;

/** Runs one urql operation and returns its data; records a failed check and stops on an error. */
async function viaUrql(what, kind, doc, variables) {
  const before = urqlWire.log.length;
  const result = await urql[kind](doc, variables).toPromise();
  const sent = urqlWire.log.slice(before);
  if (!check(`urql ${what} answers without errors`, !result.error && result.data, result.error?.message ?? show(sent[0]))) {
    throw new Error(`urql ${what} failed`);
  }
  return { data: result.data, sent };
}

const search = await viaUrql("searchCoaches", "query", SEARCH_URQL,
  { filter: { marketCode: "US", categorySlug: CATEGORY, query: String(run) }, first: 20 });
{
  const [req] = search.sent;
  check("urql sends the query as one GET", search.sent.length === 1 && req.method === "GET", search.sent.map((e) => e.method));
  const params = new URL(req.url).searchParams;
  check("the GET carries the query and its variables in the URL",
    params.get("query")?.includes("searchCoaches") && JSON.parse(params.get("variables") ?? "{}").filter?.categorySlug === CATEGORY, req.url);
  check("the GET carries the bearer token", req.authorization === `Bearer ${urqlConsumer}`, req.authorization);
  check("the answer to a signed-in GET is not to be cached", req.cacheControl === "no-store", req.cacheControl);
  check("urql's Accept gets application/graphql-response+json",
    req.contentType?.startsWith("application/graphql-response+json"), req.contentType);
  const nodes = search.data.searchCoaches.nodes;
  const found = nodes.find((c) => c.id === coach.id);
  check("searchCoaches finds the coach in its market and category", found, nodes.map((c) => c.id));
  check("the coach is listed as approved, published and paid out, at its rate",
    found?.status === "APPROVED" && found?.published === true && found?.payoutsEnabled === true && found?.hourlyRate.amountMinor === 7500 &&
      found?.hourlyRate.currency === "USD" && found?.displayName === COACH_NAME, found);
  check("every coach listed matches the filter",
    nodes.length > 0 && nodes.every((c) => c.market.code === "US" && c.categories.some((k) => k.slug === CATEGORY)), nodes);
}

const slots = await viaUrql("availableSlots", "query", SLOTS_URQL, { coachId: coach.id, ...slotWindow(), minutes: 60 });
const freeSlots = slots.data.availableSlots;
check("availableSlots goes over GET", slots.sent.length === 1 && slots.sent[0].method === "GET", slots.sent.map((e) => e.method));
check("availableSlots offers 60-minute slots on the half-hour grid",
  freeSlots.length > 0 && freeSlots.every((s) =>
    Date.parse(s.endAt) - Date.parse(s.startAt) === 3600e3 && Date.parse(s.startAt) % 1800e3 === 0 && s.startAt.endsWith("Z")),
  freeSlots.slice(0, 3));
const urqlSlot = freeSlots[0];

const hold = await viaUrql("createHold", "mutation", CREATE_HOLD_URQL,
  { coachId: coach.id, startAt: urqlSlot.startAt, minutes: 60 });
check("urql sends the createHold mutation as POST", hold.sent.length === 1 && hold.sent[0].method === "POST", hold.sent.map((e) => e.method));
check("the POST carries the bearer token", hold.sent[0].authorization === `Bearer ${urqlConsumer}`, hold.sent[0].authorization);
const h = hold.data.createHold;
check("the hold is ACTIVE for the slot", h.status === "ACTIVE" && h.startAt === urqlSlot.startAt && h.endAt === urqlSlot.endAt &&
  h.coach.id === coach.id && Date.parse(h.expiresAt) > Date.now(), h);

const booked = await viaUrql("bookHold", "mutation", BOOK_HOLD_URQL, { holdId: h.id });
check("urql sends the bookHold mutation as POST", booked.sent.length === 1 && booked.sent[0].method === "POST", booked.sent.map((e) => e.method));
const b = booked.data.bookHold;
check("the booking is PENDING_PAYMENT at the coach's rate with a checkout link",
  b.status === "PENDING_PAYMENT" && b.startAt === urqlSlot.startAt && b.coach.id === coach.id &&
    b.price.amountMinor === 7500 && b.price.currency === "USD" && b.payment?.status === "PENDING" && Boolean(b.payment?.checkoutUrl), b);

const mine = await viaUrql("myBookings", "query", MY_BOOKINGS_URQL, {});
check("myBookings goes over GET", mine.sent.length === 1 && mine.sent[0].method === "GET", mine.sent.map((e) => e.method));
{
  const nodes = mine.data.myBookings.nodes;
  const listed = nodes.find((n) => n.id === b.id);
  check("myBookings lists the new booking as PENDING_PAYMENT",
    listed?.status === "PENDING_PAYMENT" && listed.startAt === urqlSlot.startAt && mine.data.myBookings.totalCount === 1 && nodes.length === 1,
    mine.data.myBookings);
}
const pending = await viaUrql("myBookings(status: PENDING_PAYMENT)", "query", MY_BOOKINGS_URQL, { status: "PENDING_PAYMENT" });
check("myBookings filtered by PENDING_PAYMENT lists it too",
  pending.data.myBookings.nodes.some((n) => n.id === b.id), pending.data.myBookings);
const methods = new Set(urqlWire.log.map((e) => `${e.sent.query?.trimStart().split(/[\s({]/)[0]} ${e.method}`));
check("over the whole urql run, queries went as GET and mutations as POST",
  [...methods].sort().join(",") === "mutation POST,query GET", [...methods]);

// ---------------------------------------------------------------- Apollo
/**
 * One Apollo Client as an app sets it up with automatic persisted
 * queries. `tag` names this pass's operations, so that every document is
 * new to the server and the first request must miss.
 */
async function apolloPass({ label, useGETForHashedQueries, sha256, tag, slotToAvoid }) {
  console.log(`# Apollo Client, persisted queries, ${label}`);
  const wire = recorder();
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink({ sha256, useGETForHashedQueries }).concat(
      new HttpLink({ uri: GRAPHQL, fetch: wire.fetch, headers: { authorization: `Bearer ${apolloConsumer}` } }),
    ),
  });
  const hashedMethod = useGETForHashedQueries ? "GET" : "POST";
  const SEARCH = gql`
    query SearchCoaches${tag}($filter: CoachSearchFilter) {
      searchCoaches(filter: $filter, first: 20) { totalCount nodes { id displayName hourlyRate { amountMinor currency } } }
    }`;
  const SLOTS = gql`
    query Slots${tag}($coachId: ID!, $from: DateTime!, $to: DateTime!) {
      availableSlots(coachId: $coachId, from: $from, to: $to, durationMinutes: 60) { startAt endAt }
    }`;
  const CREATE_HOLD = gql`
    mutation CreateHold${tag}($coachId: ID!, $startAt: DateTime!) {
      createHold(coachId: $coachId, startAt: $startAt, durationMinutes: 60) { id status startAt }
    }`;
  const BOOK_HOLD = gql`
    mutation BookHold${tag}($holdId: ID!) { bookHold(holdId: $holdId) { id status startAt payment { checkoutUrl } } }`;
  const CANCEL = gql`
    mutation Cancel${tag}($id: ID!) { cancelBooking(bookingId: $id, reason: "Plans changed") { id status cancellationReason } }`;

  /** Checks that a first run of a document went hash, miss, query; returns the requests. */
  function firstRun(what, sent, method) {
    const [miss, full] = sent;
    const ok = check(`Apollo ${label}: first ${what} sends the hash alone (${method}), misses, then resends with the query`,
      sent.length === 2 &&
        miss.method === method && !miss.sent.query && /^[0-9a-f]{64}$/.test(hashOf(miss) ?? "") &&
        miss.sent.extensions.persistedQuery.version === 1 &&
        codes(miss).includes("PERSISTED_QUERY_NOT_FOUND") && miss.answer.data == null &&
        full.method === "POST" && Boolean(full.sent.query) && hashOf(full) === hashOf(miss) &&
        codes(full).length === 0 && full.answer?.data != null,
      sent.map(show));
    if (ok) {
      check(`Apollo ${label}: the ${what} hash is the sha256 of the query it resent`,
        sha256Hex(full.sent.query) === hashOf(miss), { hash: hashOf(miss), query: full.sent.query });
    }
    return sent;
  }

  async function step(what, fn) {
    const before = wire.log.length;
    try {
      const result = await fn();
      return { result, sent: wire.log.slice(before) };
    } catch (e) {
      check(`Apollo ${label}: ${what} answers without errors`, false, `${e.message} ${wire.log.slice(before).map(show)}`);
      throw e;
    }
  }

  const filter = { marketCode: "US", categorySlug: CATEGORY, query: String(run) };
  const s1 = await step("searchCoaches", () => client.query({ query: SEARCH, variables: { filter } }));
  firstRun("searchCoaches", s1.sent, hashedMethod);
  check(`Apollo ${label}: searchCoaches finds the coach`,
    s1.result.data.searchCoaches.nodes.some((c) => c.id === coach.id), s1.result.data);
  check(`Apollo ${label}: the requests carry the bearer token`,
    s1.sent.every((e) => e.authorization === `Bearer ${apolloConsumer}`), s1.sent.map((e) => e.authorization));

  // The same document again, past the cache: the hash alone is enough now.
  const s2 = await step("searchCoaches again", () => client.query({ query: SEARCH, variables: { filter }, fetchPolicy: "network-only" }));
  {
    const [again] = s2.sent;
    check(`Apollo ${label}: the second searchCoaches sends only the hash (${hashedMethod}) and succeeds`,
      s2.sent.length === 1 && again.method === hashedMethod && !again.sent.query && hashOf(again) === hashOf(s1.sent[0]) &&
        again.status === 200 && codes(again).length === 0 && again.answer?.data?.searchCoaches?.nodes?.some((c) => c.id === coach.id),
      s2.sent.map(show));
    check(`Apollo ${label}: the second searchCoaches gives the same coaches`,
      JSON.stringify(s2.result.data) === JSON.stringify(s1.result.data), [s1.result.data, s2.result.data]);
  }

  const sl = await step("availableSlots", () => client.query({ query: SLOTS, variables: { coachId: coach.id, ...slotWindow() } }));
  firstRun("availableSlots", sl.sent, hashedMethod);
  const offered = sl.result.data.availableSlots;
  check(`Apollo ${label}: availableSlots no longer offers the slots already booked`,
    offered.length > 0 && slotToAvoid.every((t) => !offered.some((s) => s.startAt === t)), { avoid: slotToAvoid, first: offered.slice(0, 3) });
  const slot = offered[0];

  // Mutations are never sent as GET, with or without useGETForHashedQueries.
  const ch = await step("createHold", () => client.mutate({ mutation: CREATE_HOLD, variables: { coachId: coach.id, startAt: slot.startAt } }));
  firstRun("createHold", ch.sent, "POST");
  const heldNow = ch.result.data.createHold;
  check(`Apollo ${label}: the hold is ACTIVE for the slot`, heldNow.status === "ACTIVE" && heldNow.startAt === slot.startAt, heldNow);

  const bh = await step("bookHold", () => client.mutate({ mutation: BOOK_HOLD, variables: { holdId: heldNow.id } }));
  firstRun("bookHold", bh.sent, "POST");
  const booking = bh.result.data.bookHold;
  check(`Apollo ${label}: the booking is PENDING_PAYMENT with a checkout link`,
    booking.status === "PENDING_PAYMENT" && booking.startAt === slot.startAt && Boolean(booking.payment?.checkoutUrl), booking);

  const cb = await step("cancelBooking", () => client.mutate({ mutation: CANCEL, variables: { id: booking.id } }));
  firstRun("cancelBooking", cb.sent, "POST");
  const cancelled = cb.result.data.cancelBooking;
  check(`Apollo ${label}: cancelBooking cancels it`,
    cancelled.id === booking.id && cancelled.status === "CANCELLED" && cancelled.cancellationReason === "Plans changed", cancelled);
  // The cache normalises the mutation's answer into the booking it holds.
  const cached = client.cache.extract()[`Booking:${booking.id}`];
  check(`Apollo ${label}: the cache holds the booking as CANCELLED`, cached?.status === "CANCELLED", cached);

  check(`Apollo ${label}: no request was refused at the HTTP level`,
    wire.log.every((e) => e.status === 200), wire.log.filter((e) => e.status !== 200).map(show));
  client.stop();
  return slot.startAt;
}

const tag = `R${run}`;
const postSlot = await apolloPass({
  label: "hashes over POST",
  useGETForHashedQueries: false,
  sha256: cryptoHashSha256, // crypto-hash
  tag: `${tag}Post`,
  slotToAvoid: [urqlSlot.startAt],
});
await apolloPass({
  label: "useGETForHashedQueries",
  useGETForHashedQueries: true,
  sha256: sha256Hex, // Node's crypto
  tag: `${tag}Get`,
  // The POST pass's booking is cancelled, so its slot may be offered again.
  slotToAvoid: [urqlSlot.startAt],
});
console.log(`# (the POST pass booked and cancelled ${postSlot})`);

process.exit(finish() ? 1 : 0);
