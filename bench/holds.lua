-- wrk script of bench/holds: every request a different signed-in caller.
-- MODE (environment):
--   holds      createHold on a distinct slot, then releaseHold of it (each
--              thread keeps a queue of its holds; a release goes out when
--              one is waiting, otherwise a new hold);
--   contended  createHold by everyone on one coach's few overlapping slots;
--   flow       createHold -> bookHold -> POST /dev/checkout/<payment> (the
--              development provider) -> CONFIRMED, as a queue of steps.
-- Files (WORK): tokens.txt (one access token a line), coaches.txt (coach ids).
local mode = os.getenv("MODE") or "holds"
local work = os.getenv("WORK")
local base_day = tonumber(os.getenv("BASE_DAY"))  -- unix seconds, midnight UTC, two days ahead
local threads = {}
local counter = 0

local function lines(path)
  local out = {}
  for l in io.lines(path) do if #l > 0 then out[#out + 1] = l end end
  return out
end

local nthreads_total = tonumber(os.getenv("THREADS") or "1")

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  thread:set("nthreads", nthreads_total)
  table.insert(threads, thread)
end

local tokens, coaches, queue, n
-- Globals, so done() can read each thread's copy: outcome counts, and one
-- error message of each refused kind.
tally = {}
samples = {}

function init(args)
  tokens = lines(work .. "/tokens.txt")
  coaches = lines(work .. "/coaches.txt")
  queue = {}
  n = 0
  tid = tid or 1
  nthreads = nthreads or 1
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function post(token, query, variables)
  return wrk.format("POST", "/graphql", {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. token,
  }, '{"query":"' .. query .. '","variables":' .. variables .. '}')
end

-- The caller's place in tokens.txt rides along as an alias (`k12: __typename`),
-- so the answer says whose hold it is without pairing answers to requests.
local function hold_query(k)
  return "mutation($c: ID!, $s: DateTime!, $d: Int!) { createHold(coachId: $c, startAt: $s, durationMinutes: $d) { id k" .. k .. ": __typename } }"
end
local RELEASE = "mutation($h: ID!) { releaseHold(holdId: $h) }"
local BOOK = "mutation($h: ID!) { bookHold(holdId: $h) { id payment { checkoutUrl } } }"

-- The slot of this thread's n-th hold: coaches in turn, then 30-minute
-- steps, threads 10 days apart (16 threads stay within the 180-day
-- horizon), so no two threads' requests ever overlap.
local function slot(k)
  local coach = coaches[(k % #coaches) + 1]
  local step = math.floor(k / #coaches)
  return coach, base_day + (tid - 1) * 10 * 86400 + step * 1800
end


function request()
  n = n + 1
  -- Each thread has callers of its own, so one consumer's three-hold cap
  -- is never shared between threads.
  local per = math.max(1, math.floor(#tokens / nthreads))
  local k = ((tid - 1) * per + n % per) % #tokens + 1
  local token = tokens[k]
  local job = table.remove(queue, 1)
  if job and job.kind == "release" then
    return post(job.token, RELEASE, string.format('{"h":"%s"}', job.id))
  elseif job and job.kind == "book" then
    return post(job.token, BOOK, string.format('{"h":"%s"}', job.id))
  elseif job and job.kind == "pay" then
    return wrk.format("POST", job.path)
  end
  if mode == "contended" then
    -- Everyone on one coach's four overlapping slots, after the others'.
    local mix = { { 0, 60 }, { 1800, 30 }, { 0, 30 }, { 1800, 60 } }
    local m = mix[n % 4 + 1]
    return post(token, hold_query(k), string.format('{"c":"%s","s":"%s","d":%d}', coaches[1], iso(base_day + 170 * 86400 + 36000 + m[1]), m[2]))
  end
  local coach, start = slot(n)
  return post(token, hold_query(k), string.format('{"c":"%s","s":"%s","d":30}', coach, iso(start)))
end

function response(status, headers, body)
  local code = body and body:match('"code":"([A-Z_]+)"')
  -- Which request this answers, from the answer itself.
  local said = body and (body:match('"(createHold)"') or body:match('"(releaseHold)"') or body:match('"(bookHold)"'))
  local kind = ({ createHold = "hold", releaseHold = "release", bookHold = "book" })[said or ""] or "pay"
  local key = kind .. ":" .. (code or (status == 200 and "OK" or tostring(status)))
  tally[key] = (tally[key] or 0) + 1
  if code and not samples[key] then samples[key] = body:match('"message":"([^"]+)"') or "" end
  if code or status ~= 200 then return end
  if kind == "hold" then
    local id = body:match('"createHold":{"id":"([^"]+)"')
    local k = tonumber(body:match('"k(%d+)":'))
    if id and k then
      queue[#queue + 1] = { kind = (mode == "flow") and "book" or "release", token = tokens[k], id = id }
    end
  elseif kind == "book" then
    local path = body:match('"checkoutUrl":"https?://[^/]+(/dev/checkout/[^"]+)"')
    if path then queue[#queue + 1] = { kind = "pay", path = path } end
  end
end

function done(summary, latency, requests)
  local totals, messages = {}, {}
  for _, t in ipairs(threads) do
    local ok, tt = pcall(function() return t:get("tally") end)
    if ok and tt then for k, v in pairs(tt) do totals[k] = (totals[k] or 0) + v end end
    local ok2, ss = pcall(function() return t:get("samples") end)
    if ok2 and ss then for k, v in pairs(ss) do messages[k] = v end end
  end
  for k, v in pairs(messages) do io.write(string.format("REFUSED %s: %s\n", k, v)) end

  local secs = summary.duration / 1e6
  local keys = {}
  for k in pairs(totals) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%s=%d", k, totals[k]) end
  io.write(string.format("RESULT seconds=%.2f requests=%d errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f %s\n",
    secs, summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, table.concat(parts, " ")))
end
