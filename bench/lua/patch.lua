-- W1: PATCH /v2/entities/{id}/attrs with 2 attributes on a random one of N preloaded Rooms.
-- args: N
local common = require("common")
local n

function init(args)
  n = tonumber(args[1])
  common.seed()
end

function request()
  local body = string.format(
    '{"temperature":{"value":%d,"type":"Number"},"pressure":{"value":%d,"type":"Number"}}',
    math.random(0, 40), math.random(900, 1100))
  return wrk.format("PATCH", "/v2/entities/Room" .. math.random(0, n - 1) .. "/attrs", common.json, body)
end

setup = common.setup
done = common.done
