-- A1 and A2 (bench/waziup_api.py): the WAZIUP API v2 on a random one of N public devices
-- PREFIX0 .. PREFIX(N-1), each with a sensor TC1.
-- "post": POST /api/v2/devices/<d>/sensors/TC1/value {"value": <n>} (n counts this thread's requests);
-- "get":  GET /api/v2/devices/<d>.
-- args: MODE (post | get) N PREFIX
local common = require("common")
local mode, n, prefix
local sent = 0

function init(args)
  mode, n, prefix = args[1], tonumber(args[2]), args[3]
  common.seed()
end

function request()
  local path = "/api/v2/devices/" .. prefix .. math.random(0, n - 1)
  if mode == "get" then
    return wrk.format("GET", path)
  end
  sent = sent + 1
  return wrk.format("POST", path .. "/sensors/TC1/value", common.json, string.format('{"value": %d}', sent))
end

setup = common.setup
done = common.done
