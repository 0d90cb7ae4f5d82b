// The playground: sign in, pick or write an operation, run it with variables.
// Talks only to this server's /graphql; the token stays in this tab's memory
// and sessionStorage, never in a URL.
"use strict";

const SAVED = {
  "Markets and categories": "query Reference {\n  markets { code name currency }\n  categories { slug name }\n}",
  "Me": "query Me {\n  me { id email name role market { code currency } createdAt }\n}",
  "Register": "mutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    accessToken refreshToken accessTokenExpiresAt\n    user { id email role }\n  }\n}",
  "Set market": "mutation SetMarket($code: String!) {\n  setMarket(marketCode: $code) { id market { code currency } }\n}",
};
const SAVED_VARIABLES = {
  "Register": { input: { email: "parent@example.com", password: "Choose-a-Strong-1", name: "A Parent", role: "CONSUMER", marketCode: "US" } },
  "Set market": { code: "GB" },
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
