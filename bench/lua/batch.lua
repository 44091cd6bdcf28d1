-- W1 batch: POST /v2/op/update (append) of SIZE consecutive Rooms from a random start.
-- args: N SIZE
local common = require("common")
local n, size

function init(args)
  n, size = tonumber(args[1]), tonumber(args[2])
  common.seed()
end

function request()
  local first, parts = math.random(0, n - 1), {}
  for i = 1, size do
    parts[i] = string.format(
      '{"id":"Room%d","type":"Room","temperature":{"value":%d,"type":"Number"},"pressure":{"value":%d,"type":"Number"}}',
      (first + i) % n, math.random(0, 40), math.random(900, 1100))
  end
  local body = '{"actionType":"append","entities":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v2/op/update", common.json, body)
end

setup = common.setup
done = common.done
