// The playground: sign in, pick or write an operation, run it with
// variables, watch subscriptions live, and look things up in the schema.
//
// Talks only to this server (/graphql, /graphql/ws and, in development,
// /dev/emails). The access token stays in this tab (memory and
// sessionStorage), the refresh token in memory only; neither goes in a URL.
"use strict";

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------
// Saved operations
// ---------------------------------------------------------------------------

// Values a result gave earlier (a coach's id, a hold's id, ...), offered
// as variables of the next step of the flow.
const memo = {};
const remembered = (key, hint) => (memo[key] !== undefined ? memo[key] : `<${hint}>`);
const isoIn = (ms) => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const DAY = 86400e3;
const stamp = () => Date.now().toString(36);
// A placeholder start: the next weekday at `hour`:00 UTC, a day or more ahead.
function nextWeekdayAt(hour) {
  const d = new Date(Date.now() + DAY);
  d.setUTCHours(hour, 0, 0, 0);
  while (d.getUTCDay() === 0 || d.getUTCDay() === 6) d.setTime(d.getTime() + DAY);
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

// The saved operations, keyed by a stable id, by their operation name in
// /playground/operations.graphql (loaded at start; the server's metrics
// and the API test suite read the same file, which runs every operation
// with placeholder variables, so enum, Boolean and list arguments are
// written inline rather than declared as variables). Subscriptions are in
// SAVED_LIVE.
const SAVED = {
  // Public and account
  "reference": "Reference",
  "register": "Register",
  "verify-email": "VerifyEmail",
  "request-verification": "RequestVerification",
  "me": "Me",
  "set-market": "SetMarket",
  "notification-preferences": "NotificationPreferences",
  "set-notification-preferences": "SetNotificationPreferences",
  "register-push-token": "RegisterPushToken",
  "unregister-push-token": "UnregisterPushToken",
  "push-devices": "PushDevices",
  // Booking flow (consumer)
  "search-coaches": "Search",
  "coach": "Coach",
  "slots": "Slots",
  "hold": "Hold",
  "book": "Book",
  "release-hold": "ReleaseHold",
  "my-bookings": "MyBookings",
  "booking": "Booking",
  "cancel": "CancelBooking",
  "review": "SubmitReview",
  "my-packages": "MyPackagePurchases",
  // Coach
  "coach-profile": "MyCoachProfile",
  "coach-upsert": "SaveCoachProfile",
  "coach-availability": "SetAvailability",
  "coach-submit": "SubmitCoachProfile",
  "coach-publish": "PublishCoachProfile",
  "coach-complete": "CompleteBooking",
  // Admin
  "admin-coaches": "AdminCoaches",
  "admin-approve": "ApproveCoach",
  "admin-reject": "RejectCoach",
  "admin-users": "AdminUsers",
  "admin-suspend": "SuspendUser",
  "admin-stats": "AdminStats",
  "audit-log": "AuditLog",
  "admin-emails": "AdminEmails",
  "admin-refunds": "AdminRefunds",
  "admin-disputes": "AdminDisputes",
  "admin-sponsorships": "AdminSponsorships",
  "admin-refund": "RefundBooking",
};

// The variables each offers (the values of earlier results where known).
const SAVED_VARIABLES = {
  "register": () => ({ input: { email: `parent-${stamp()}@example.com`, password: "Choose-a-Strong-1", name: "A Parent", role: "CONSUMER", marketCode: "US" } }),
  "verify-email": () => ({ token: remembered("verifyToken", "token of the verification link") }),
  "set-market": () => ({ code: "US" }),
  "set-notification-preferences": () => ({ preferences: [{ kind: "REMINDER", channel: "PUSH", enabled: false }] }),
  "register-push-token": () => ({ token: "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]", platform: "IOS" }),
  "unregister-push-token": () => ({ token: "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]" }),
  "search-coaches": () => ({ filter: { marketCode: "US" }, first: 20 }),
  "coach": () => ({ id: remembered("coachId", "coach id: run Search coaches first") }),
  "slots": () => ({ coachId: remembered("coachId", "coach id: run Search coaches first"), from: isoIn(0), to: isoIn(7 * DAY), minutes: 60 }),
  "hold": () => ({ coachId: remembered("coachId", "coach id"), startAt: memo.startAt || nextWeekdayAt(10), minutes: 60 }),
  "book": () => ({ holdId: remembered("holdId", "hold id: run Hold a slot first") }),
  "release-hold": () => ({ holdId: remembered("holdId", "hold id") }),
  "my-bookings": () => ({ first: 20 }),
  "booking": () => ({ id: remembered("bookingId", "booking id") }),
  "cancel": () => ({ bookingId: remembered("bookingId", "booking id"), reason: "Plans changed" }),
  "review": () => ({ bookingId: remembered("bookingId", "booking id"), rating: 5, comment: "Great session" }),
  "coach-upsert": () => ({ displayName: "Ada Lovelace", headline: "Chess for beginners", bio: "<p>Patient, structured lessons.</p>", categorySlugs: ["chess"], hourlyRateMinor: 6000, timezone: "UTC" }),
  "coach-availability": () => ({ startTime: "09:00", endTime: "17:00" }),
  "coach-complete": () => ({ bookingId: remembered("bookingId", "booking id") }),
  "admin-coaches": () => ({ first: 50 }),
  "admin-approve": () => ({ coachId: remembered("reviewCoachId", "coach id: run Coaches to review first") }),
  "admin-reject": () => ({ coachId: remembered("reviewCoachId", "coach id: run Coaches to review first"), reason: "Please add a headline" }),
  "admin-users": () => ({ first: 50 }),
  "admin-suspend": () => ({ userId: "<user id from Users>", reason: "Terms of service" }),
  "admin-stats": () => ({ from: isoIn(-30 * DAY), to: isoIn(DAY) }),
  "audit-log": () => ({ first: 50 }),
  "admin-emails": () => ({ first: 50 }),
  "admin-refunds": () => ({ first: 50 }),
  "admin-disputes": () => ({ first: 50 }),
  "admin-refund": () => ({ bookingId: remembered("bookingId", "booking id"), amountMinor: 1000 }),
  "booking-updated-one": () => ({ bookingId: remembered("bookingId", "booking id") }),
};

// Subscriptions: run over /graphql/ws until Stop.
const SAVED_LIVE = {
  // Live (WebSocket)
  "booking-updated": "BookingUpdated",
  "booking-updated-one": "OneBookingUpdated",
};

// The list as it is shown: groups of [id, label].
const SAVED_MENU = [
  ["Public and account", [
    ["reference", "Markets and categories"],
    ["register", "Register (signs in as the new account)"],
    ["verify-email", "Verify email"],
    ["request-verification", "Send the verification email again"],
    ["me", "Me"],
    ["set-market", "Set market"],
    ["notification-preferences", "Notification preferences"],
    ["set-notification-preferences", "Turn a notification off"],
    ["register-push-token", "Register a push token"],
    ["unregister-push-token", "Unregister a push token"],
    ["push-devices", "My push devices"],
  ]],
  ["Booking flow (consumer)", [
    ["search-coaches", "1. Search coaches"],
    ["coach", "2. Coach page"],
    ["slots", "3. Available slots (next 7 days)"],
    ["hold", "4. Hold a slot"],
    ["book", "5. Book the hold"],
    ["release-hold", "Release the hold"],
    ["my-bookings", "6. My bookings"],
    ["booking", "One booking"],
    ["cancel", "7. Cancel the booking"],
    ["review", "Review a completed session"],
    ["my-packages", "My package purchases"],
  ]],
  ["Coach", [
    ["coach-profile", "My coach profile"],
    ["coach-upsert", "Save my coach profile"],
    ["coach-availability", "Set my availability (the same hours every day)"],
    ["coach-submit", "Submit my profile for review"],
    ["coach-publish", "Publish my profile"],
    ["coach-complete", "Mark a session completed"],
  ]],
  ["Admin", [
    ["admin-coaches", "Coaches to review"],
    ["admin-approve", "Approve a coach"],
    ["admin-reject", "Reject a coach"],
    ["admin-users", "Users"],
    ["admin-suspend", "Suspend a user"],
    ["admin-stats", "Stats (last 30 days)"],
    ["audit-log", "Audit log"],
    ["admin-emails", "Outbox emails"],
    ["admin-refunds", "Refunds"],
    ["admin-disputes", "Open disputes"],
    ["admin-sponsorships", "Sponsorships"],
    ["admin-refund", "Refund a booking"],
  ]],
  ["Live (WebSocket)", [
    ["booking-updated", "bookingUpdated: all my bookings"],
    ["booking-updated-one", "bookingUpdated: one booking"],
  ]],
];

const SAVED_NOTES = {
  "register": "The playground signs in as the new account. Verify its email next (in development the link is read from the dev mailbox).",
  "verify-email": "In development the token is taken from the dev mailbox of the signed-in address.",
  "hold": "Needs a consumer with a verified email and a market; startAt is the first slot Available slots returned.",
  "book": "Open payment.checkoutUrl to pay (the development provider has a Pay button).",
  "coach-upsert": "sessionDurations are written in the operation itself.",
  "coach-availability": "Every day of the week gets the same hours; edit the rules in the operation for others.",
  "booking-updated": "Runs over /graphql/ws until Stop; each change of one of your bookings appears below.",
};

// Run when an operation is picked.
const SAVED_PREPARE = {
  "verify-email": () => fillVerificationToken(),
};

// Where results carry values for later steps.
function rememberFrom(data) {
  if (!data || typeof data !== "object") return;
  const first = (conn) => conn && Array.isArray(conn.nodes) && conn.nodes[0];
  const c = first(data.searchCoaches);
  if (c && c.id) memo.coachId = c.id;
  if (data.coach && data.coach.id) memo.coachId = data.coach.id;
  const r = first(data.adminCoaches);
  if (r && r.id) memo.reviewCoachId = r.id;
  if (Array.isArray(data.availableSlots) && data.availableSlots[0]) memo.startAt = data.availableSlots[0].startAt;
  if (data.createHold && data.createHold.id) memo.holdId = data.createHold.id;
  if (data.bookHold && data.bookHold.id) memo.bookingId = data.bookHold.id;
  const b = first(data.myBookings);
  if (b && b.id && memo.bookingId === undefined) memo.bookingId = b.id;
  if (data.booking && data.booking.id) memo.bookingId = data.booking.id;
  if (data.bookingUpdated && data.bookingUpdated.id) memo.bookingId = data.bookingUpdated.id;
}

// In development the verification link is in the dev mailbox.
async function fillVerificationToken() {
  const email = session.email;
  if (!email) return;
  try {
    const res = await fetch("/dev/emails?to=" + encodeURIComponent(email));
    if (!res.ok) return;
    const box = await res.json();
    // Newest first: the latest link is the one that still works.
    for (const e of box.emails || []) {
      if (!e.link) continue;
      const token = new URL(e.link, location.href).searchParams.get("token");
      if (token && /verify/.test(e.link)) {
        memo.verifyToken = token;
        if ($("saved").value === "verify-email") $("variables").value = JSON.stringify({ token }, null, 2);
        return;
      }
    }
  } catch (_) { /* not in development: the user pastes the token */ }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

let inFlight = null; // AbortController of the request being run

async function gql(query, variables, operationName, signal) {
  const headers = { "content-type": "application/json" };
  const token = $("token").value.trim();
  if (token) headers.authorization = "Bearer " + token;
  const res = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables, operationName }),
    signal,
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch (_) { body = { raw: text }; }
  return { status: res.status, body, retryAfter: res.headers.get("retry-after") };
}

function setStatus(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

// Refresh tokens are kept out of the result pane.
function redact(body) {
  return JSON.parse(JSON.stringify(body, (k, v) => (k === "refreshToken" && typeof v === "string" ? "(kept in this tab's memory)" : v)));
}

function show(status, body, ms, retryAfter) {
  let text = "HTTP " + status;
  if (ms !== undefined) text += " · " + ms + " ms";
  if (retryAfter) text += " · retry after " + retryAfter + " s";
  const failed = status !== 200 || (body && Array.isArray(body.errors) && body.errors.length);
  setStatus(text, failed ? "error" : "done");
  $("result").dataset.events = "0";
  $("result").textContent = JSON.stringify(redact(body), null, 2);
}

function showLocal(message) {
  setStatus("not sent", "error");
  $("result").dataset.events = "0";
  $("result").textContent = JSON.stringify({ error: message }, null, 2);
}

// ---------------------------------------------------------------------------
// Session: sign-in, refresh before expiry, sign-out
// ---------------------------------------------------------------------------

const REFRESH_LEAD_MS = 60e3;
const session = {
  access: "",
  refresh: null,    // in memory only
  expiresAt: null,  // ms since epoch
  refreshAt: null,
  email: null,
  role: null,
  refreshing: false,
  refreshes: 0,
  problem: null,
};

const AUTH_FIELDS = "accessToken refreshToken accessTokenExpiresAt user { id email role }";

function decodeJwt(token) {
  try {
    const part = token.split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch (_) {
    return null;
  }
}

function whoText() {
  if (!session.access) return "not signed in";
  if (session.email) return session.email + (session.role ? " (" + session.role + ")" : "");
  return session.role ? "pasted token (" + session.role + ")" : "pasted token";
}

function persist() {
  if (session.access) {
    sessionStorage.setItem("maestro.token", session.access);
    sessionStorage.setItem("maestro.who", JSON.stringify({ email: session.email, role: session.role }));
  } else {
    sessionStorage.removeItem("maestro.token");
    sessionStorage.removeItem("maestro.who");
  }
}

function scheduleRefresh() {
  session.refreshAt = null;
  if (!session.refresh || !session.expiresAt) return;
  const now = Date.now();
  const lifetime = session.expiresAt - now;
  // A minute ahead, or at 80 % of a short lifetime.
  session.refreshAt = lifetime > 2 * REFRESH_LEAD_MS ? session.expiresAt - REFRESH_LEAD_MS : now + Math.max(0, lifetime) * 0.8;
}

// A payload of login, register or refreshToken becomes the session.
function adopt(payload, how) {
  const previous = session.email;
  session.access = payload.accessToken;
  session.refresh = payload.refreshToken || null;
  session.expiresAt = Date.parse(payload.accessTokenExpiresAt) || null;
  if (payload.user) {
    session.email = payload.user.email || null;
    session.role = payload.user.role || null;
  }
  session.problem = null;
  session.refreshes = how === "refresh" ? session.refreshes + 1 : 0;
  $("token").value = session.access;
  scheduleRefresh();
  persist();
  renderSession();
  if (live) {
    if (how === "refresh" && previous === session.email) live.renew(session.access);
    else live.stop("signed in as another account");
  }
}

function setManualToken(token) {
  const claims = token ? decodeJwt(token) : null;
  session.access = token;
  session.refresh = null;
  session.expiresAt = claims && claims.exp ? claims.exp * 1000 : null;
  session.email = null;
  session.role = claims && typeof claims.role === "string" ? claims.role.toUpperCase() : null;
  session.problem = null;
  scheduleRefresh();
  persist();
  renderSession();
}

function forget() {
  session.access = "";
  session.refresh = null;
  session.expiresAt = null;
  session.refreshAt = null;
  session.email = null;
  session.role = null;
  session.problem = null;
  $("token").value = "";
  persist();
  renderSession();
}

const clock = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  const mmss = String(Math.floor(s / 60) % 60).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
  if (s >= 86400) return Math.floor(s / 86400) + " d";
  return s >= 3600 ? Math.floor(s / 3600) + ":" + mmss : Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
};

function renderSession() {
  $("who").textContent = whoText();
  $("who").dataset.role = session.role || "";
  $("refresh").disabled = !session.refresh || session.refreshing;
  const el = $("token-state");
  el.dataset.refreshes = String(session.refreshes);
  const now = Date.now();
  let state;
  let text;
  if (!session.access) {
    state = "none"; text = "no token";
  } else if (session.refreshing) {
    state = "refreshing"; text = "refreshing the token…";
  } else if (session.expiresAt && now >= session.expiresAt) {
    state = "expired"; text = "token expired" + (session.problem ? " · " + session.problem : "") + " · sign in again";
  } else if (session.problem) {
    state = "error"; text = session.problem;
    if (session.expiresAt) text += " · token valid " + clock(session.expiresAt - now);
  } else if (session.refresh && session.refreshAt) {
    state = "fresh";
    text = "token valid " + clock(session.expiresAt - now) + " · refresh in " + clock(session.refreshAt - now);
    if (session.refreshes) text += " · refreshed " + session.refreshes + "×";
  } else if (session.expiresAt) {
    state = "no-refresh";
    text = "token valid " + clock(session.expiresAt - now) + " · no refresh token (sign in to keep it fresh)";
  } else {
    state = "unknown"; text = "token of unknown expiry";
  }
  el.dataset.state = state;
  el.textContent = text;
}

async function refreshNow() {
  if (!session.refresh || session.refreshing) return;
  session.refreshing = true;
  renderSession();
  const q = "mutation Refresh($refreshToken: String!) {\n  refreshToken(refreshToken: $refreshToken) { " + AUTH_FIELDS + " }\n}";
  try {
    const { body } = await gql(q, { refreshToken: session.refresh }, "Refresh");
    const p = body && body.data && body.data.refreshToken;
    session.refreshing = false;
    if (p) {
      adopt(p, "refresh");
      return;
    }
    const err = body && body.errors && body.errors[0];
    const code = err && err.extensions && err.extensions.code;
    if (code === "RATE_LIMITED") {
      session.problem = "refresh rate limited, trying again";
      session.refreshAt = Date.now() + 15e3;
    } else {
      // Refused for good (rotated elsewhere, revoked): only a sign-in helps.
      session.refresh = null;
      session.refreshAt = null;
      session.problem = "refresh refused" + (err ? ": " + err.message : "");
    }
  } catch (e) {
    session.refreshing = false;
    session.problem = "refresh failed (" + e.message + "), trying again";
    session.refreshAt = Date.now() + 10e3;
  }
  renderSession();
}

// One clock drives the countdown and the refresh (timers of a hidden tab
// are throttled; this catches up as soon as it runs).
function tick() {
  if (session.refresh && session.refreshAt && !session.refreshing && Date.now() >= session.refreshAt) {
    refreshNow();
  }
  renderSession();
}

async function login() {
  const q = "mutation Login($email: String!, $password: String!) {\n  login(email: $email, password: $password) { " + AUTH_FIELDS + " }\n}";
  setStatus("signing in…", "running");
  try {
    const { status, body, retryAfter } = await gql(q, { email: $("email").value.trim(), password: $("password").value }, "Login");
    show(status, body, undefined, retryAfter);
    const p = body && body.data && body.data.login;
    if (p) {
      $("password").value = "";
      adopt(p, "login");
    }
  } catch (e) {
    showLocal("sign-in failed: " + e.message);
  }
}

async function logout() {
  const refresh = session.refresh;
  if (refresh && session.access) {
    try {
      await gql("mutation Logout($refreshToken: String!) { logout(refreshToken: $refreshToken) }", { refreshToken: refresh }, "Logout");
    } catch (_) { /* forgetting is what matters here */ }
  }
  if (live) live.stop("signed out");
  forget();
  setStatus("signed out", "idle");
}

// ---------------------------------------------------------------------------
// GraphQL text: tokens, definitions, the context at the cursor
// ---------------------------------------------------------------------------

const NAME_START = /[_A-Za-z]/;
const NAME_CHAR = /[_0-9A-Za-z]/;

// Tokens of src[0, limit): { v, t: "name" | "punct" | "string" | "number", start, end }.
// `open` tells whether the text ends inside a string or a comment.
function tokenize(src, limit = src.length) {
  const tokens = [];
  let open = null;
  let i = 0;
  while (i < limit) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "," || c === "\ufeff") { i++; continue; }
    if (c === "#") {
      const nl = src.indexOf("\n", i);
      if (nl < 0 || nl >= limit) { open = "comment"; break; }
      i = nl + 1;
      continue;
    }
    if (c === '"') {
      if (src.startsWith('"""', i)) {
        let j = i + 3;
        while (j < limit && !(src.startsWith('"""', j) && src[j - 1] !== "\\")) j++;
        if (j + 3 > limit) { open = "string"; break; }
        tokens.push({ t: "string", v: src.slice(i, j + 3), start: i, end: j + 3 });
        i = j + 3;
        continue;
      }
      let j = i + 1;
      while (j < limit && src[j] !== '"' && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      if (j >= limit) { open = "string"; break; }
      tokens.push({ t: "string", v: src.slice(i, j + 1), start: i, end: j + 1 });
      i = j + 1;
      continue;
    }
    if (c === "." && src.startsWith("...", i)) {
      tokens.push({ t: "punct", v: "...", start: i, end: i + 3 });
      i += 3;
      continue;
    }
    if ("!$&()/:=@[]{}|".includes(c)) {
      tokens.push({ t: "punct", v: c, start: i, end: i + 1 });
      i++;
      continue;
    }
    if (NAME_START.test(c)) {
      let j = i + 1;
      while (j < limit && NAME_CHAR.test(src[j])) j++;
      tokens.push({ t: "name", v: src.slice(i, j), start: i, end: j });
      i = j;
      continue;
    }
    if (c === "-" || (c >= "0" && c <= "9")) {
      let j = i + 1;
      while (j < limit && /[-+.eE0-9]/.test(src[j])) j++;
      tokens.push({ t: "number", v: src.slice(i, j), start: i, end: j });
      i = j;
      continue;
    }
    i++;
  }
  return { tokens, open };
}

// The document's top-level definitions: { kind: "query" | "mutation" |
// "subscription" | "fragment", name, start, end }.
function definitions(src) {
  const { tokens } = tokenize(src);
  const defs = [];
  let depth = 0;
  let current = null;
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (depth === 0 && !current) {
      if (t.t === "name" && ["query", "mutation", "subscription", "fragment"].includes(t.v)) {
        const next = tokens[k + 1];
        current = { kind: t.v, name: next && next.t === "name" && next.v !== "on" ? next.v : null, start: t.start, end: src.length };
        continue;
      }
      if (t.v === "{") current = { kind: "query", name: null, start: t.start, end: src.length };
    }
    if (t.v === "{" || t.v === "(" || t.v === "[") depth++;
    else if (t.v === "}" || t.v === ")" || t.v === "]") {
      depth = Math.max(0, depth - 1);
      if (depth === 0 && t.v === "}" && current) {
        current.end = t.end;
        defs.push(current);
        current = null;
      }
    }
  }
  if (current) defs.push(current);
  return defs;
}

// The operation to run: the only one, or the one under the cursor.
function pickOperation(src, cursor) {
  const ops = definitions(src).filter((d) => d.kind !== "fragment");
  if (ops.length <= 1) return { op: ops[0] || null, several: false };
  const at = ops.find((d) => cursor >= d.start && cursor <= d.end) || ops[0];
  return { op: at, several: true };
}

// ---------------------------------------------------------------------------
// Schema (introspection)
// ---------------------------------------------------------------------------

const TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";
const INTROSPECTION = `query PlaygroundIntrospection {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types {
      kind name description
      fields(includeDeprecated: true) { name description isDeprecated deprecationReason args { name description defaultValue type { ${TYPE_REF} } } type { ${TYPE_REF} } }
      inputFields { name description defaultValue type { ${TYPE_REF} } }
      interfaces { name }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { name }
    }
    directives { name description locations args { name description defaultValue type { ${TYPE_REF} } } }
  }
}`;

let schema = null; // { types: Map, query, mutation, subscription, directives }

const typeString = (ref) => {
  if (!ref) return "?";
  if (ref.kind === "NON_NULL") return typeString(ref.ofType) + "!";
  if (ref.kind === "LIST") return "[" + typeString(ref.ofType) + "]";
  return ref.name;
};
const namedType = (ref) => {
  let r = ref;
  while (r && (r.kind === "NON_NULL" || r.kind === "LIST")) r = r.ofType;
  return r ? r.name : null;
};
// The type of one element of a list (or the type itself).
const elementType = (ref) => {
  let r = ref;
  if (r && r.kind === "NON_NULL") r = r.ofType;
  if (r && r.kind === "LIST") return r.ofType;
  return ref;
};

async function loadSchema() {
  try {
    const res = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: INTROSPECTION, operationName: "PlaygroundIntrospection" }),
    });
    const body = await res.json();
    const s = body && body.data && body.data.__schema;
    if (!s) throw new Error((body.errors && body.errors[0] && body.errors[0].message) || "HTTP " + res.status);
    schema = {
      types: new Map(s.types.map((t) => [t.name, t])),
      query: s.queryType && s.queryType.name,
      mutation: s.mutationType && s.mutationType.name,
      subscription: s.subscriptionType && s.subscriptionType.name,
      directives: s.directives || [],
    };
    $("reference-state").textContent = s.types.filter((t) => !t.name.startsWith("__")).length + " types";
    $("reference").dataset.loaded = "true";
    renderTypeList();
  } catch (e) {
    $("reference-state").textContent = "the schema could not be loaded: " + e.message;
    $("reference").dataset.loaded = "false";
  }
}

function fieldOf(typeName, name) {
  if (!schema || !typeName || !name) return null;
  if (name === "__typename") return { name, type: { kind: "NON_NULL", ofType: { kind: "SCALAR", name: "String" } }, args: [] };
  const t = schema.types.get(typeName);
  return (t && t.fields && t.fields.find((f) => f.name === name)) || null;
}

function inputFieldOf(typeName, name) {
  const t = schema && typeName ? schema.types.get(typeName) : null;
  return (t && t.inputFields && t.inputFields.find((f) => f.name === name)) || null;
}

function directiveOf(name) {
  return (schema && schema.directives.find((d) => d.name === name)) || null;
}

// ---------------------------------------------------------------------------
// Schema reference panel
// ---------------------------------------------------------------------------

const refHistory = [];
let refCurrent = null;

// Descriptions come wrapped as written in the code: single line breaks
// are spaces, blank lines stay paragraph breaks.
const prose = (text) => (text || "").replace(/([^\n])\n(?!\n)/g, "$1 ");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

// "[Booking!]!" with the named type as a link.
function typeLink(ref) {
  const name = namedType(ref);
  const full = typeString(ref);
  const at = full.indexOf(name);
  return el("span", { class: "type-ref" },
    full.slice(0, at),
    el("button", { type: "button", class: "type-link", "data-type": name, title: "Show " + name }, name),
    full.slice(at + name.length));
}

const KIND_LABEL = { OBJECT: "type", INPUT_OBJECT: "input", ENUM: "enum", SCALAR: "scalar", INTERFACE: "interface", UNION: "union" };

function sortedTypes() {
  const roots = [schema.query, schema.mutation, schema.subscription].filter(Boolean);
  const rest = [...schema.types.keys()].filter((n) => !roots.includes(n)).sort((a, b) => a.localeCompare(b));
  return [...roots, ...rest].map((n) => schema.types.get(n));
}

function renderTypeList() {
  if (!schema) return;
  const q = $("reference-search").value.trim().toLowerCase();
  const types = $("reference-types");
  const fields = $("reference-fields");
  types.replaceChildren();
  fields.replaceChildren();
  let shown = 0;
  for (const t of sortedTypes()) {
    if (t.name.startsWith("__") && !q.startsWith("__")) continue;
    const hit = !q || t.name.toLowerCase().includes(q) || (t.description || "").toLowerCase().includes(q);
    if (!hit) continue;
    shown++;
    types.append(el("li", { class: "type-entry", "data-type": t.name, "data-kind": t.kind },
      el("button", { type: "button", class: "type-link", "data-type": t.name }, t.name),
      el("span", { class: "kind" }, KIND_LABEL[t.kind] || t.kind.toLowerCase())));
  }
  if (!shown) types.append(el("li", { class: "empty" }, "no type matches"));
  // Fields whose name matches, across the types.
  let fieldHits = 0;
  if (q) {
    for (const t of sortedTypes()) {
      if (t.name.startsWith("__")) continue;
      for (const f of [...(t.fields || []), ...(t.inputFields || [])]) {
        if (!f.name.toLowerCase().includes(q)) continue;
        if (++fieldHits > 40) break;
        fields.append(el("li", { class: "field-match", "data-type": t.name, "data-field": f.name },
          el("button", { type: "button", class: "type-link", "data-type": t.name, "data-field": f.name }, t.name + "." + f.name),
          el("span", { class: "kind" }, typeString(f.type))));
      }
    }
  }
  $("reference-fields-title").hidden = !fieldHits;
  $("reference").dataset.view = "list";
  $("reference-detail").hidden = true;
  $("reference-lists").hidden = false;
  $("reference-back").hidden = !refCurrent;
}

function argList(args) {
  if (!args || !args.length) return null;
  return el("ul", { class: "args" }, ...args.map((a) => el("li", { class: "arg-entry", "data-arg": a.name },
    el("code", { class: "arg-name" }, a.name), ": ", typeLink(a.type),
    a.defaultValue !== null && a.defaultValue !== undefined ? el("span", { class: "default" }, " = " + a.defaultValue) : null,
    a.description ? el("p", { class: "description" }, prose(a.description)) : null)));
}

function showType(name, field, fromHistory) {
  if (!schema) return;
  const t = schema.types.get(name);
  if (!t) return;
  if (refCurrent && refCurrent !== name && !fromHistory) refHistory.push(refCurrent);
  refCurrent = name;
  const d = $("reference-detail");
  d.replaceChildren();
  d.dataset.type = name;
  d.append(el("h3", { class: "type-name" }, name, " ", el("span", { class: "kind" }, KIND_LABEL[t.kind] || t.kind.toLowerCase())));
  if (t.description) d.append(el("p", { class: "description" }, prose(t.description)));
  if (t.fields) {
    d.append(el("ul", { class: "fields" }, ...t.fields.map((f) => el("li", { class: "field-entry", "data-field": f.name, "data-type": namedType(f.type) },
      el("code", { class: "field-name" }, f.name),
      f.args && f.args.length ? el("span", { class: "arg-count" }, "(" + f.args.map((a) => a.name).join(", ") + ")") : null,
      ": ", typeLink(f.type),
      f.isDeprecated ? el("span", { class: "deprecated" }, " deprecated" + (f.deprecationReason ? ": " + f.deprecationReason : "")) : null,
      f.description ? el("p", { class: "description" }, prose(f.description)) : null,
      argList(f.args)))));
  }
  if (t.inputFields) {
    d.append(el("ul", { class: "fields" }, ...t.inputFields.map((f) => el("li", { class: "field-entry input-field", "data-field": f.name, "data-type": namedType(f.type) },
      el("code", { class: "field-name" }, f.name), ": ", typeLink(f.type),
      f.defaultValue !== null && f.defaultValue !== undefined ? el("span", { class: "default" }, " = " + f.defaultValue) : null,
      f.description ? el("p", { class: "description" }, prose(f.description)) : null))));
  }
  if (t.enumValues) {
    d.append(el("ul", { class: "fields" }, ...t.enumValues.map((v) => el("li", { class: "enum-value", "data-value": v.name },
      el("code", {}, v.name),
      v.description ? el("p", { class: "description" }, prose(v.description)) : null))));
  }
  if (t.possibleTypes && t.possibleTypes.length) {
    d.append(el("p", {}, "One of: ", ...t.possibleTypes.map((p) => el("button", { type: "button", class: "type-link", "data-type": p.name }, p.name))));
  }
  // Where the type is used.
  const users = [];
  for (const u of sortedTypes()) {
    if (u.name.startsWith("__")) continue;
    for (const f of [...(u.fields || []), ...(u.inputFields || [])]) {
      if (namedType(f.type) === name) users.push([u.name, f.name]);
      for (const a of f.args || []) if (namedType(a.type) === name) users.push([u.name, f.name + "(" + a.name + ")"]);
    }
  }
  if (users.length) {
    d.append(el("h4", {}, "Used by"), el("ul", { class: "used-by" }, ...users.slice(0, 60).map(([tn, fn]) =>
      el("li", {}, el("button", { type: "button", class: "type-link", "data-type": tn }, tn), "." + fn))));
  }
  $("reference").dataset.view = "type";
  $("reference-lists").hidden = true;
  d.hidden = false;
  $("reference-back").hidden = false;
  d.scrollTop = 0;
  if (field) {
    const li = d.querySelector(`.field-entry[data-field="${CSS.escape(field)}"]`);
    if (li) {
      li.classList.add("highlight");
      li.scrollIntoView({ block: "nearest" });
    }
  }
}

function referenceBack() {
  const prev = refHistory.pop();
  if (prev) showType(prev, null, true);
  else {
    refCurrent = null;
    renderTypeList();
  }
}

// ---------------------------------------------------------------------------
// Completion
// ---------------------------------------------------------------------------

// What may be typed at `pos`: { prefix, start, items: [{ label, detail, doc }] } or null.
function completionsAt(src, pos) {
  if (!schema) return null;
  const before = src.slice(0, pos);
  const m = /[_A-Za-z][_0-9A-Za-z]*$/.exec(before);
  const prefix = m ? m[0] : "";
  const start = pos - prefix.length;
  if (start > 0 && (before[start - 1] === "$" || /[0-9]/.test(before[start - 1]))) return null;
  const { tokens, open } = tokenize(src, start);
  if (open) return null;

  const stack = [];
  let docRoot; // type of the next top-level selection set (undefined: none pending)
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    const prev = tokens[k - 1];
    const prev2 = tokens[k - 2];
    const top = stack[stack.length - 1];
    if (!top) {
      if (t.t === "name") {
        if (prev && prev.v === "on") docRoot = t.v;
        else if (t.v === "query") docRoot = schema.query;
        else if (t.v === "mutation") docRoot = schema.mutation;
        else if (t.v === "subscription") docRoot = schema.subscription;
        else if (t.v === "fragment") docRoot = null;
      } else if (t.v === "(") {
        stack.push(prev && prev.t === "name" && prev2 && prev2.v === "@"
          ? { k: "args", args: (directiveOf(prev.v) || {}).args }
          : { k: "vars" });
      } else if (t.v === "{") {
        stack.push({ k: "sel", type: docRoot === undefined ? schema.query : docRoot });
        docRoot = undefined;
      }
      continue;
    }
    if (top.k === "sel") {
      if (t.t === "name") {
        if (prev && prev.v === "@") { /* a directive: the field stays */ }
        else if (prev && prev.v === "...") {
          if (t.v !== "on") top.spread = false; // a named fragment
        } else if (prev && prev.v === "on" && prev2 && prev2.v === "...") {
          top.inline = t.v;
        } else {
          top.last = t.v;
          top.spread = false;
          top.inline = null;
        }
      } else if (t.v === "...") {
        top.spread = true;
        top.inline = null;
      } else if (t.v === "(") {
        if (prev && prev.t === "name" && prev2 && prev2.v === "@") stack.push({ k: "args", args: (directiveOf(prev.v) || {}).args });
        else { const f = fieldOf(top.type, top.last); stack.push({ k: "args", args: f ? f.args : null }); }
      } else if (t.v === "{") {
        let type = null;
        if (top.inline) type = top.inline;
        else if (top.spread) type = top.type;
        else if (top.last) { const f = fieldOf(top.type, top.last); type = f ? namedType(f.type) : null; }
        stack.push({ k: "sel", type });
        top.last = null;
        top.inline = null;
        top.spread = false;
      } else if (t.v === "}") {
        stack.pop();
      }
      continue;
    }
    if (top.k === "args" || top.k === "input") {
      if (t.t === "name") {
        if (prev && (prev.v === ":" || prev.v === "$")) { /* a value or a variable */ }
        else top.name = t.v;
      } else if (t.v === ":") {
        const f = top.k === "args"
          ? (top.args || []).find((a) => a.name === top.name)
          : inputFieldOf(top.type, top.name);
        top.valueType = f ? f.type : null;
      } else if (t.v === "{") {
        stack.push({ k: "input", type: namedType(top.valueType) });
      } else if (t.v === "[") {
        stack.push({ k: "list", valueType: top.valueType ? elementType(top.valueType) : null });
      } else if (t.v === ")" || t.v === "}") {
        stack.pop();
      }
      continue;
    }
    if (top.k === "list") {
      if (t.v === "{") stack.push({ k: "input", type: namedType(top.valueType) });
      else if (t.v === "[") stack.push({ k: "list", valueType: top.valueType ? elementType(top.valueType) : null });
      else if (t.v === "]" || t.v === ")" || t.v === "}") stack.pop();
      continue;
    }
    if (top.k === "vars") {
      // Brackets of a type ([ID!]) stay here; those of a default value nest.
      if (t.v === "=") top.inDefault = true;
      else if (t.v === "$") top.inDefault = false;
      else if (t.v === "{" && top.inDefault) stack.push({ k: "input", type: null });
      else if (t.v === "[" && top.inDefault) stack.push({ k: "list", valueType: null });
      else if (t.v === ")") stack.pop();
    }
  }

  const last = tokens[tokens.length - 1];
  const beforeLast = tokens[tokens.length - 2];
  const top = stack[stack.length - 1];
  let items = [];
  const typeItems = (kinds) => [...schema.types.values()]
    .filter((t) => kinds.includes(t.kind) && !t.name.startsWith("__"))
    .map((t) => ({ label: t.name, detail: KIND_LABEL[t.kind] || t.kind, doc: t.description }));
  const valueItems = (ref) => {
    const t = schema.types.get(namedType(ref));
    if (!t) return [];
    if (t.kind === "ENUM") return t.enumValues.map((v) => ({ label: v.name, detail: t.name, doc: v.description }));
    if (t.name === "Boolean") return [{ label: "true", detail: "Boolean" }, { label: "false", detail: "Boolean" }];
    return [];
  };
  if (!top) {
    if (last && last.v === "on") items = typeItems(["OBJECT", "INTERFACE", "UNION"]);
    else if (docRoot === undefined && (!last || last.v === "}")) {
      items = ["query", "mutation", "subscription", "fragment"].map((label) => ({ label, detail: "keyword" }));
    }
  } else if (top.k === "sel") {
    if (last && last.v === "...") {
      items = [{ label: "on", detail: "inline fragment" }];
      for (const d of definitions(src)) if (d.kind === "fragment" && d.name) items.push({ label: d.name, detail: "fragment" });
    } else if (last && last.v === "on" && beforeLast && beforeLast.v === "...") {
      items = typeItems(["OBJECT", "INTERFACE", "UNION"]);
    } else if (last && last.v === "@") {
      items = schema.directives.filter((d) => d.locations.includes("FIELD")).map((d) => ({ label: d.name, detail: "directive", doc: d.description }));
    } else if (top.type) {
      const t = schema.types.get(top.type);
      if (t && t.fields) {
        items = t.fields.map((f) => ({
          label: f.name,
          detail: (f.args.length ? "(" + f.args.map((a) => a.name).join(", ") + ") " : "") + typeString(f.type),
          doc: f.description,
        }));
        items.push({ label: "__typename", detail: "String!", doc: "The name of the object's type." });
      }
    }
  } else if (top.k === "args" || top.k === "input") {
    if (last && last.v === ":") items = valueItems(top.valueType);
    else {
      const defs = top.k === "args" ? top.args || [] : ((schema.types.get(top.type) || {}).inputFields || []);
      items = defs.map((a) => ({ label: a.name, detail: typeString(a.type), doc: a.description }));
    }
  } else if (top.k === "list") {
    items = valueItems(top.valueType);
  } else if (top.k === "vars") {
    if (last && !top.inDefault && (last.v === ":" || last.v === "[")) items = typeItems(["SCALAR", "ENUM", "INPUT_OBJECT"]);
  }

  const p = prefix.toLowerCase();
  const starts = items.filter((i) => i.label.toLowerCase().startsWith(p));
  const contains = p ? items.filter((i) => !i.label.toLowerCase().startsWith(p) && i.label.toLowerCase().includes(p)) : [];
  return { prefix, start, items: [...starts, ...contains].slice(0, 60) };
}

const complete = { open: false, items: [], index: 0, start: 0, inserting: false };

function closeCompletions() {
  complete.open = false;
  $("completions").hidden = true;
  $("completions").replaceChildren();
  $("query").setAttribute("aria-expanded", "false");
  $("query").removeAttribute("aria-activedescendant");
}

let measureCanvas = null;
function caretBox(ta, pos) {
  const cs = getComputedStyle(ta);
  measureCanvas = measureCanvas || document.createElement("canvas");
  const ctx = measureCanvas.getContext("2d");
  ctx.font = cs.font || `${cs.fontSize} ${cs.fontFamily}`;
  const charWidth = ctx.measureText("M").width || 8;
  const lineHeight = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.4;
  const lines = ta.value.slice(0, pos).split("\n");
  const col = lines[lines.length - 1].replace(/\t/g, "  ").length;
  const left = ta.offsetLeft + parseFloat(cs.paddingLeft) + parseFloat(cs.borderLeftWidth) + col * charWidth - ta.scrollLeft;
  const top = ta.offsetTop + parseFloat(cs.paddingTop) + parseFloat(cs.borderTopWidth) + lines.length * lineHeight - ta.scrollTop;
  return { left, top };
}

function renderCompletions() {
  const list = $("completions");
  list.replaceChildren();
  complete.items.forEach((item, i) => {
    const li = el("li", {
      class: "completion-item" + (i === complete.index ? " active" : ""),
      id: "completion-" + i,
      role: "option",
      "aria-selected": i === complete.index ? "true" : "false",
      "data-name": item.label,
      "data-index": String(i),
    }, el("span", { class: "label" }, item.label), item.detail ? el("span", { class: "detail" }, item.detail) : null);
    if (i === complete.index && item.doc) li.append(el("span", { class: "doc" }, prose(item.doc)));
    list.append(li);
  });
  const active = list.children[complete.index];
  if (active) {
    active.scrollIntoView({ block: "nearest" });
    $("query").setAttribute("aria-activedescendant", active.id);
  }
}

function openCompletions(manual) {
  const ta = $("query");
  if (ta.selectionStart !== ta.selectionEnd) return closeCompletions();
  const found = completionsAt(ta.value, ta.selectionStart);
  if (!found || !found.items.length) return closeCompletions();
  // Typing a name that is complete already: nothing to offer.
  if (!manual && found.items.length === 1 && found.items[0].label === found.prefix) return closeCompletions();
  complete.open = true;
  complete.items = found.items;
  complete.start = found.start;
  complete.index = 0;
  const box = caretBox(ta, found.start);
  const list = $("completions");
  list.hidden = false;
  const maxLeft = Math.max(0, ta.offsetLeft + ta.clientWidth - 260);
  list.style.left = Math.max(ta.offsetLeft, Math.min(box.left, maxLeft)) + "px";
  list.style.top = Math.min(box.top, ta.offsetTop + ta.offsetHeight) + "px";
  ta.setAttribute("aria-expanded", "true");
  renderCompletions();
}

function acceptCompletion(index) {
  const item = complete.items[index === undefined ? complete.index : index];
  if (!item) return closeCompletions();
  const ta = $("query");
  // The whole name under the cursor is replaced.
  let end = ta.selectionStart;
  while (end < ta.value.length && NAME_CHAR.test(ta.value[end])) end++;
  ta.focus();
  ta.setSelectionRange(complete.start, end);
  complete.inserting = true;
  // execCommand keeps the textarea's undo history; setRangeText is the fallback.
  let done = false;
  try { done = document.execCommand("insertText", false, item.label); } catch (_) { done = false; }
  if (!done) {
    ta.setRangeText(item.label, complete.start, end, "end");
  }
  complete.inserting = false;
  closeCompletions();
}

function onQueryKeydown(e) {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
    e.preventDefault();
    closeCompletions();
    run();
    return;
  }
  if (e.ctrlKey && (e.key === " " || e.code === "Space")) {
    e.preventDefault();
    openCompletions(true);
    return;
  }
  if (!complete.open) return;
  const n = complete.items.length;
  if (e.key === "ArrowDown") { e.preventDefault(); complete.index = (complete.index + 1) % n; renderCompletions(); }
  else if (e.key === "ArrowUp") { e.preventDefault(); complete.index = (complete.index - 1 + n) % n; renderCompletions(); }
  else if (e.key === "PageDown") { e.preventDefault(); complete.index = Math.min(n - 1, complete.index + 8); renderCompletions(); }
  else if (e.key === "PageUp") { e.preventDefault(); complete.index = Math.max(0, complete.index - 8); renderCompletions(); }
  else if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); acceptCompletion(); }
  else if (e.key === "Escape") { e.preventDefault(); closeCompletions(); }
  else if (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "Home" || e.key === "End") closeCompletions();
}

function onQueryInput(e) {
  if (complete.inserting) return;
  const ta = $("query");
  const ch = ta.value[ta.selectionStart - 1];
  const typing = e.inputType === "insertText" || e.inputType === "insertCompositionText";
  if (typing && ch && NAME_CHAR.test(ch)) openCompletions(false);
  else if (complete.open && e.inputType === "deleteContentBackward" && ch && NAME_CHAR.test(ch)) openCompletions(false);
  else closeCompletions();
}

// ---------------------------------------------------------------------------
// Subscriptions over /graphql/ws (graphql-transport-ws)
// ---------------------------------------------------------------------------

const CLOSE_REASONS = {
  1000: "closed",
  1006: "connection lost",
  1012: "server restarting",
  4400: "bad request",
  4401: "unauthorized: sign in first",
  4403: "the session ended or the token expired",
  4408: "no connection_init in time",
  4409: "duplicate subscription id",
  4429: "too many subscriptions or sockets",
};

let live = null; // the running subscription, if any
let subscriptionSeq = 0;

const time = () => new Date().toLocaleTimeString();

class LiveOperation {
  constructor(query, variables, operationName) {
    this.query = query;
    this.variables = variables;
    this.operationName = operationName;
    this.events = 0;
    this.socket = null;
    this.id = null;
    this.ended = false;
    this.renewals = 0;
    this.pending = new Set(); // sockets opened to take over, not yet acknowledged
  }

  start(token) {
    $("result").textContent = "";
    $("result").dataset.events = "0";
    this.append(`# ${time()} connecting to /graphql/ws…\n`);
    this.connect(token, false);
    $("stop").disabled = false;
  }

  append(text) {
    const r = $("result");
    const nearBottom = r.scrollTop + r.clientHeight >= r.scrollHeight - 8;
    r.append(document.createTextNode(text));
    if (nearBottom) r.scrollTop = r.scrollHeight;
  }

  status(text, state) {
    setStatus(text, state);
  }

  connect(token, renewing) {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql/ws";
    const socket = new WebSocket(url, "graphql-transport-ws");
    const id = "playground-" + ++subscriptionSeq;
    const previous = renewing ? this.socket : null;
    const previousId = this.id;
    if (renewing) this.pending.add(socket);
    if (!renewing) {
      this.socket = socket;
      this.id = id;
    }
    socket.addEventListener("open", () => {
      const init = { type: "connection_init" };
      if (token) init.payload = { authorization: "Bearer " + token };
      socket.send(JSON.stringify(init));
      if (!renewing) this.status("connected · waiting for the server", "connecting");
    });
    socket.addEventListener("message", (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      if (msg.type === "ping") { socket.send(JSON.stringify({ type: "pong" })); return; }
      if (msg.type === "connection_ack") {
        socket.send(JSON.stringify({ id, type: "subscribe", payload: { query: this.query, variables: this.variables, operationName: this.operationName } }));
        if (renewing) {
          // The new socket carries on; the old one ends quietly.
          this.pending.delete(socket);
          this.socket = socket;
          this.id = id;
          this.renewals++;
          if (previous) this.quietClose(previous, previousId);
          this.append(`# ${time()} resubscribed with the refreshed token\n`);
        } else {
          this.append(`# ${time()} subscribed${this.operationName ? " (" + this.operationName + ")" : ""}; events appear below until Stop\n`);
        }
        this.status(this.liveText(), "live");
        return;
      }
      if (socket !== this.socket || msg.id !== this.id) return;
      if (msg.type === "next") {
        this.events++;
        $("result").dataset.events = String(this.events);
        const p = msg.payload || {};
        if (p.data) rememberFrom(p.data);
        this.append(`\n# event ${this.events} at ${time()}\n${JSON.stringify(p, null, 2)}\n`);
        this.status(this.liveText(), p.errors ? "error" : "live");
      } else if (msg.type === "error") {
        this.append(`\n# ${time()} the server refused the subscription\n${JSON.stringify(msg.payload, null, 2)}\n`);
        this.finish("refused by the server", "error");
      } else if (msg.type === "complete") {
        this.append(`\n# ${time()} the server completed the subscription\n`);
        this.finish("completed by the server", "done");
      }
    });
    socket.addEventListener("close", (e) => {
      if (socket.quiet) return;
      if (renewing && socket !== this.socket) {
        this.pending.delete(socket);
        if (this.ended) return;
        this.append(`# ${time()} could not resubscribe with the refreshed token (${e.code}); the old socket carries on\n`);
        return;
      }
      if (socket !== this.socket || this.ended) return;
      const why = CLOSE_REASONS[e.code] || "closed";
      // The token ran out but a fresher one is here: carry on with it.
      if (e.code === 4403 && session.access && session.access !== token && this.renewals < 20) {
        this.renewals++;
        this.append(`# ${time()} the socket closed (${e.code} ${why}); reconnecting with the current token\n`);
        this.connect(session.access, false);
        return;
      }
      this.append(`\n# ${time()} socket closed: ${e.code}${e.reason ? " " + e.reason : ""} (${why})\n`);
      this.finish(`closed ${e.code} · ${why} · ${this.events} event${this.events === 1 ? "" : "s"}`, e.code === 1000 ? "closed" : "error");
    });
    socket.addEventListener("error", () => {
      // The close event that follows tells the code.
    });
  }

  liveText() {
    return `live · ${this.events} event${this.events === 1 ? "" : "s"}`;
  }

  quietClose(socket, id) {
    socket.quiet = true;
    try {
      if (socket.readyState === WebSocket.OPEN && id) socket.send(JSON.stringify({ id, type: "complete" }));
      socket.close(1000, "done");
    } catch (_) { /* already closed */ }
  }

  // A refreshed token: a new socket takes over once it is acknowledged.
  renew(token) {
    if (this.ended) return;
    this.connect(token, true);
  }

  finish(text, state) {
    if (this.ended) return;
    this.ended = true;
    if (this.socket) this.quietClose(this.socket, this.id);
    for (const s of this.pending) this.quietClose(s, null);
    this.pending.clear();
    this.status(text, state);
    if (live === this) live = null;
    $("stop").disabled = !inFlight;
  }

  stop(reason) {
    if (this.ended) return;
    this.append(`\n# ${time()} stopped${reason ? ": " + reason : ""}\n`);
    this.finish(`stopped · ${this.events} event${this.events === 1 ? "" : "s"}`, "stopped");
  }
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

function stopAll(reason) {
  if (live) live.stop(reason);
  if (inFlight) inFlight.abort();
}

async function run() {
  stopAll("another operation started");
  let variables = {};
  const raw = $("variables").value.trim();
  if (raw) {
    try { variables = JSON.parse(raw); } catch (e) { showLocal("variables are not valid JSON: " + e.message); return; }
  }
  const query = $("query").value;
  const { op, several } = pickOperation(query, $("query").selectionStart);
  if (several && op && !op.name) {
    showLocal("the document holds several operations: name them so the one under the cursor can be run");
    return;
  }
  const operationName = op && op.name ? op.name : undefined;
  if (op && op.kind === "subscription") {
    live = new LiveOperation(query, variables, operationName);
    live.start($("token").value.trim());
    return;
  }
  const controller = new AbortController();
  inFlight = controller;
  $("stop").disabled = false;
  setStatus("running…", "running");
  const started = performance.now();
  try {
    const { status, body, retryAfter } = await gql(query, variables, operationName, controller.signal);
    show(status, body, Math.round(performance.now() - started), retryAfter);
    const data = body && body.data;
    rememberFrom(data);
    // Register (or a login run by hand) signs the playground in.
    const auth = data && (data.register || data.login);
    if (auth && auth.accessToken) adopt(auth, "login");
  } catch (e) {
    if (e.name === "AbortError") showLocal("stopped before the answer came");
    else showLocal(String(e));
  } finally {
    if (inFlight === controller) inFlight = null;
    $("stop").disabled = !live && !inFlight;
  }
}

// Operation name -> its text, from /playground/operations.graphql.
const OPERATIONS = {};

// Splits a document into its operations: each starts at a line beginning
// with its keyword and name, and ends where its braces close.
function splitOperations(text) {
  const out = {};
  let name = null, lines = [], depth = 0, opened = false;
  for (const line of text.split("\n")) {
    if (name === null) {
      const m = line.match(/^(query|mutation|subscription)\s+(\w+)/);
      if (!m) continue;
      name = m[2]; lines = []; depth = 0; opened = false;
    }
    lines.push(line);
    for (const ch of line.replace(/"(?:[^"\\]|\\.)*"/g, "").replace(/#.*$/, "")) {
      if (ch === "{") { depth++; opened = true; }
      if (ch === "}") depth--;
    }
    if (opened && depth <= 0) { out[name] = lines.join("\n"); name = null; }
  }
  return out;
}

async function loadOperations() {
  try {
    const res = await fetch("/playground/operations.graphql");
    Object.assign(OPERATIONS, splitOperations(await res.text()));
  } catch (e) {
    showLocal("the saved operations could not be loaded: " + e);
  }
}

function savedText(id) {
  const name = SAVED[id] !== undefined ? SAVED[id] : SAVED_LIVE[id];
  return OPERATIONS[name] || "";
}

function pick(id) {
  const known = SAVED[id] !== undefined || SAVED_LIVE[id] !== undefined;
  const key = known ? id : "search-coaches";
  $("saved").value = key;
  $("query").value = savedText(key);
  const vars = SAVED_VARIABLES[key];
  $("variables").value = JSON.stringify(vars ? vars() : {}, null, 2);
  $("saved-note").textContent = SAVED_NOTES[key] || "";
  closeCompletions();
  if (SAVED_PREPARE[key]) SAVED_PREPARE[key]();
}

function fillSaved() {
  const select = $("saved");
  for (const [group, entries] of SAVED_MENU) {
    const g = document.createElement("optgroup");
    g.label = group;
    for (const [id, label] of entries) {
      const o = document.createElement("option");
      o.value = id;
      o.textContent = label;
      g.appendChild(o);
    }
    select.appendChild(g);
  }
}

function toggleReference() {
  const hidden = document.body.classList.toggle("reference-hidden");
  $("reference").hidden = hidden;
  $("reference-toggle").setAttribute("aria-expanded", hidden ? "false" : "true");
  if (!hidden) $("reference-search").focus();
}

window.addEventListener("DOMContentLoaded", async () => {
  await loadOperations();
  fillSaved();
  $("saved").addEventListener("change", (e) => pick(e.target.value));
  $("login").addEventListener("click", login);
  $("password").addEventListener("keydown", (e) => { if (e.key === "Enter") login(); });
  $("logout").addEventListener("click", logout);
  $("refresh").addEventListener("click", refreshNow);
  $("token").addEventListener("input", () => setManualToken($("token").value.trim()));
  $("run").addEventListener("click", run);
  $("stop").addEventListener("click", () => stopAll("stopped by you"));
  $("query").addEventListener("keydown", onQueryKeydown);
  $("query").addEventListener("input", onQueryInput);
  $("query").addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== $("query")) closeCompletions(); }, 150));
  $("query").addEventListener("click", closeCompletions);
  $("query").addEventListener("scroll", closeCompletions);
  $("variables").addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); } });
  $("completions").addEventListener("mousedown", (e) => {
    const li = e.target.closest(".completion-item");
    if (!li) return;
    e.preventDefault();
    acceptCompletion(Number(li.dataset.index));
  });
  $("reference-toggle").addEventListener("click", toggleReference);
  $("reference-search").addEventListener("input", () => { refCurrent = null; refHistory.length = 0; renderTypeList(); });
  $("reference-back").addEventListener("click", referenceBack);
  $("reference").addEventListener("click", (e) => {
    const b = e.target.closest(".type-link");
    if (b && b.dataset.type) showType(b.dataset.type, b.dataset.field);
  });

  const saved = sessionStorage.getItem("maestro.token");
  if (saved) {
    setManualToken(saved);
    try {
      const who = JSON.parse(sessionStorage.getItem("maestro.who") || "{}");
      session.email = who.email || null;
      session.role = who.role || session.role;
    } catch (_) { /* the claims will do */ }
    $("token").value = saved;
    renderSession();
  } else {
    renderSession();
  }
  pick("search-coaches");
  setInterval(tick, 1000);
  loadSchema();
});
