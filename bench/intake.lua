-- wrk script of the benchmark: POSTs the body in $BENCH_BODY to $BENCH_PATH,
-- each request with its own Idempotency-Key (relay would answer a repeat with
-- the first event and store nothing). The argument after "--" names the run.
-- Prints one line, "BENCH {json}", when done (or stopped with SIGINT).

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  run = args[1] or "run"
  path = os.getenv("BENCH_PATH") or "/v1/events/ticket_started"
  local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  body = file:read("*a")
  file:close()
  sent = 0
end

function request()
  sent = sent + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. sent,
  }
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
