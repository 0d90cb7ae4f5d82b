// What the Node checks share: plain GraphQL calls over POST, accounts made
// the way a person makes them (register, then the link of the verification
// email), an approved and published coach, and the ok/FAILED report.
//
// Needs a running server (BASE_URL) and an admin account (ADMIN_EMAIL,
// ADMIN_PASSWORD); .ci/run provides both.

export const BASE = process.env.BASE_URL ?? "http://127.0.0.1:18090";
export const PASSWORD = "Tangerine-Koala-42";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One operation over POST; throws on any GraphQL error. A RATE_LIMITED
 * answer is retried after the wait the server names, as a client should
 * (the sign-in budget per IP, which verifyEmail shares, is small), and
 * says so on the output.
 */
export async function gql(query, variables = {}, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${BASE}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
    const body = await res.json();
    const limited = body.errors?.find((e) => e.extensions?.code === "RATE_LIMITED");
    const wait = Number(limited?.extensions?.retryAfter ?? res.headers.get("retry-after") ?? 1);
    if (limited && attempt < 4 && wait <= 90) {
      console.log(`# rate limited (${query.slice(0, 40)}): retrying in ${wait} s as the server asks`);
      await sleep(wait * 1000 + 200);
      continue;
    }
    if (body.errors) throw new Error(`${query.slice(0, 40)}: ${JSON.stringify(body.errors)}`);
    return body.data;
  }
}

/** Registers an account in the US market and verifies its email; returns the access token. */
export async function register(email, role) {
  const d = await gql(
    "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
    { i: { email, password: PASSWORD, name: "Node Check", role, marketCode: "US" } },
  );
  // Verify the address as a user would, with the link of the email (the
  // development mailbox shows what the server sent).
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${BASE}/dev/emails?to=${encodeURIComponent(email)}`);
    if (res.status === 429) {
      // The HTTP-wide limit per IP counts these polls too.
      const wait = Number(res.headers.get("retry-after") ?? 1);
      console.log(`# rate limited (/dev/emails): retrying in ${wait} s as the server asks`);
      await sleep(wait * 1000 + 200);
      continue;
    }
    if (res.status !== 200) throw new Error(`/dev/emails answered ${res.status}: ${await res.text()}`);
    const box = await res.json();
    const link = box.emails.find((e) => e.link)?.link;
    if (link) {
      await gql("mutation($t: String!) { verifyEmail(token: $t) }", { t: new URL(link).searchParams.get("token") });
      break;
    }
    await sleep(50);
  }
  return d.register.accessToken;
}

/** The admin's access token. */
export async function adminLogin() {
  return (await gql("mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
    { e: process.env.ADMIN_EMAIL, p: process.env.ADMIN_PASSWORD })).login.accessToken;
}

/**
 * A coach in the US market that consumers can find and book: profile,
 * availability all day every day (UTC), submitted, approved by the admin
 * and published. With `payouts`, also through the development payout
 * onboarding. Returns `{ id, token }`.
 */
export async function approvedCoach(admin, email, profile = {}, { payouts = false } = {}) {
  const token = await register(email, "COACH");
  const id = (await gql(
    "mutation($i: CoachProfileInput!) { upsertCoachProfile(input: $i) { id } }",
    { i: { displayName: "Node Coach", headline: "Checks subscriptions", bio: "", categorySlugs: ["chess"],
           hourlyRateMinor: 6000, sessionDurations: [60], timezone: "UTC", ...profile } },
    token,
  )).upsertCoachProfile.id;
  await gql("mutation($r: [AvailabilityRuleInput!]!) { setAvailability(rules: $r) { id } }",
    { r: [1, 2, 3, 4, 5, 6, 7].map((d) => ({ weekday: d, startTime: "00:00", endTime: "24:00" })) }, token);
  if (payouts) {
    // The onboarding link leads to the development provider's page, whose
    // form posts back to the same address.
    const link = new URL((await gql("mutation { startPayoutOnboarding }", {}, token)).startPayoutOnboarding);
    const done = await fetch(`${BASE}${link.pathname}`, { method: "POST" });
    if (done.status !== 200) throw new Error(`payout onboarding answered ${done.status}: ${await done.text()}`);
  }
  await gql("mutation { submitCoachProfile { id } }", {}, token);
  await gql("mutation($id: ID!) { approveCoach(coachId: $id) { id } }", { id }, admin);
  await gql("mutation { publishCoachProfile(published: true) { id } }", {}, token);
  return { id, token };
}

/** ok/FAILED lines, and the closing `N passed, N failed` line. */
export function reporter(name) {
  const results = [];
  return {
    check(what, ok, detail) {
      results.push(Boolean(ok));
      console.log(`${ok ? "ok" : "FAILED"} - ${what}${ok ? "" : `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`}`);
      return Boolean(ok);
    },
    finish() {
      const failed = results.filter((r) => !r).length;
      console.log(`${name}: ${results.length - failed} passed, ${failed} failed`);
      return failed;
    },
  };
}
