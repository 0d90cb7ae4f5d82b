// The playground: sign in, pick or write an operation, run it with variables.
// Talks only to this server's /graphql; the token stays in this tab's memory
// and sessionStorage, never in a URL.
"use strict";

const SAVED = {
  "Markets and categories": "query Reference {\n  markets { code name currency }\n  categories { slug name }\n}",
  "Me": "query Me {\n  me { id email name role market { code currency } createdAt }\n}",
  "Register": "mutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    accessToken refreshToken accessTokenExpiresAt\n    user { id email role }\n  }\n}",
  "Set market": "mutation SetMarket($code: String!) {\n  setMarket(marketCode: $code) { id market { code currency } }\n}",
  "Search coaches": "query Search($filter: CoachSearchFilter, $first: Int) {\n  searchCoaches(filter: $filter, first: $first) {\n    totalCount pageInfo { hasNextPage endCursor }\n    nodes {\n      id displayName headline hourlyRate { amountMinor currency } ratingAverage ratingCount isSponsored\n      categories { slug name } market { code }\n      reviews(first: 3) { nodes { rating comment authorName createdAt } }\n    }\n  }\n}",
  "Coach page": "query Coach($id: ID!) {\n  coach(id: $id) {\n    id displayName headline bio hourlyRate { amountMinor currency } sessionDurations timezone\n    ratingAverage ratingCount categories { slug name } packages { id name sessionCount price { amountMinor currency } }\n    availability { weekday startTime endTime }\n    reviews(first: 10) { totalCount pageInfo { hasNextPage endCursor } nodes { rating comment coachResponse authorName createdAt } }\n  }\n}",
  "Available slots": "query Slots($coachId: ID!, $from: DateTime!, $to: DateTime!, $minutes: Int!) {\n  availableSlots(coachId: $coachId, from: $from, to: $to, durationMinutes: $minutes) { startAt endAt }\n}",
  "Create hold": "mutation Hold($coachId: ID!, $startAt: DateTime!, $minutes: Int!) {\n  createHold(coachId: $coachId, startAt: $startAt, durationMinutes: $minutes) { id status startAt endAt expiresAt }\n}",
  "Book hold": "mutation Book($holdId: ID!) {\n  bookHold(holdId: $holdId) {\n    id status price { amountMinor currency } paymentDeadline\n    payment { id status checkoutUrl }\n  }\n}",
  "My bookings": "query MyBookings($first: Int, $after: String) {\n  myBookings(first: $first, after: $after) {\n    totalCount pageInfo { hasNextPage endCursor }\n    nodes {\n      id status startAt endAt price { amountMinor currency } meetingUrl\n      coach { id displayName } consumer { name email }\n      payment { status refundedAmount { amountMinor currency } } review { id rating }\n    }\n  }\n}",
  "Admin: coaches to review": "query AdminCoaches($first: Int, $after: String) {\n  adminCoaches(status: PENDING_REVIEW, first: $first, after: $after) {\n    totalCount pageInfo { hasNextPage endCursor }\n    nodes { id displayName headline status createdAt categories { slug } market { code } }\n  }\n}",
  "Admin: users": "query AdminUsers($query: String, $first: Int, $after: String) {\n  adminUsers(query: $query, first: $first, after: $after) {\n    totalCount pageInfo { hasNextPage endCursor }\n    nodes { id email name role createdAt }\n  }\n}",
};
const SAVED_VARIABLES = {
  "Register": { input: { email: "parent@example.com", password: "Choose-a-Strong-1", name: "A Parent", role: "CONSUMER", marketCode: "US" } },
  "Set market": { code: "GB" },
  "Search coaches": { filter: { marketCode: "US", categorySlug: "piano" }, first: 20 },
  "My bookings": { first: 20 },
  "Admin: coaches to review": { first: 50 },
  "Admin: users": { first: 50 },
};

const $ = (id) => document.getElementById(id);

async function gql(query, variables, operationName) {
  const headers = { "content-type": "application/json" };
  const token = $("token").value.trim();
  if (token) headers.authorization = "Bearer " + token;
  const res = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables, operationName }),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch (_) { body = { raw: text }; }
  return { status: res.status, body };
}

function show(status, body) {
  $("status").textContent = "HTTP " + status;
  $("result").textContent = JSON.stringify(body, null, 2);
}

function setToken(token, who) {
  $("token").value = token || "";
  $("who").textContent = who || "not signed in";
  if (token) sessionStorage.setItem("maestro.token", token); else sessionStorage.removeItem("maestro.token");
}

async function login() {
  const q = "mutation Login($email: String!, $password: String!) {\n  login(email: $email, password: $password) { accessToken user { email role } }\n}";
  const { status, body } = await gql(q, { email: $("email").value, password: $("password").value }, "Login");
  show(status, body);
  const p = body && body.data && body.data.login;
  if (p) setToken(p.accessToken, p.user.email + " (" + p.user.role + ")");
}

async function run() {
  let variables = {};
  const raw = $("variables").value.trim();
  if (raw) {
    try { variables = JSON.parse(raw); } catch (e) { show("-", { error: "variables are not valid JSON: " + e.message }); return; }
  }
  try {
    const { status, body } = await gql($("query").value, variables);
    show(status, body);
  } catch (e) {
    show("-", { error: String(e) });
  }
}

function pick(name) {
  $("query").value = SAVED[name];
  $("variables").value = JSON.stringify(SAVED_VARIABLES[name] || {}, null, 2);
}

window.addEventListener("DOMContentLoaded", () => {
  for (const name of Object.keys(SAVED)) {
    const o = document.createElement("option");
    o.value = name; o.textContent = name;
    $("saved").appendChild(o);
  }
  $("saved").addEventListener("change", (e) => pick(e.target.value));
  $("login").addEventListener("click", login);
  $("logout").addEventListener("click", () => setToken(""));
  $("run").addEventListener("click", run);
  $("query").addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && e.key === "Enter") run(); });
  const saved = sessionStorage.getItem("maestro.token");
  if (saved) setToken(saved, "token restored");
  pick(Object.keys(SAVED)[0]);
});
