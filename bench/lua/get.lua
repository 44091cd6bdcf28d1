-- W2: GET one random Room, normalized or keyValues with attrs=.
-- args: N MODE (normalized | keyValues) [TOKEN: sent as Authorization: Bearer, through a PEP]
local common = require("common")
local n, suffix, headers

function init(args)
  n = tonumber(args[1])
  suffix = args[2] == "keyValues" and "?options=keyValues&attrs=temperature,pressure" or ""
  headers = args[3] and {["Authorization"] = "Bearer " .. args[3]} or {}
  common.seed()
end

function request()
  return wrk.format("GET", "/v2/entities/Room" .. math.random(0, n - 1) .. suffix, headers)
end

setup = common.setup
done = common.done
