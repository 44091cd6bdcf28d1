-- Shared by the workload scripts: JSON request headers and the one-line summary run.py parses.
local M = {}

M.json = {["Content-Type"] = "application/json"}

-- numbers each wrk thread (global "tn" in its Lua state), so threads seed and name apart
local threads = 0
function M.setup(thread)
  threads = threads + 1
  thread:set("tn", threads)
end

function M.seed()
  math.randomseed(os.time() * 100 + (tn or 0))
end

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

return M
