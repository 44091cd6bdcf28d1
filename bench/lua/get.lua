-- W2: GET one random Room, normalized or keyValues with attrs=.
-- args: N MODE (normalized | keyValues)
local common = require("common")
local n, suffix

function init(args)
  n = tonumber(args[1])
  suffix = args[2] == "keyValues" and "?options=keyValues&attrs=temperature,pressure" or ""
  common.seed()
end

function request()
  return wrk.format("GET", "/v2/entities/Room" .. math.random(0, n - 1) .. suffix)
end

setup = common.setup
done = common.done
