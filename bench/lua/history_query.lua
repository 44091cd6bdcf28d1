-- H3 (bench/history.py): history queries on one attribute of one of the loaded entities,
-- chosen at random (PREFIX0..PREFIX<ENTITIES-1> of type TYPE, attributes a0..a<ATTRS-1>, one
-- value a minute from T0 for MINUTES minutes).
-- MODE lastN: the last 100 values. MODE day: one whole UTC day by hour (aggrMethod=avg,
-- aggrPeriod=hour). MODE shifted: 24 hours from half past an hour (the partial edge hours
-- are read from the raw values).
-- args: MODE TYPE PREFIX ENTITIES ATTRS T0 (epoch seconds, midnight UTC) MINUTES
local common = require("common")
local mode, etype, prefix, entities, attrs, t0, minutes

function init(args)
  mode, etype, prefix = args[1], args[2], args[3]
  entities, attrs, t0, minutes = tonumber(args[4]), tonumber(args[5]), tonumber(args[6]), tonumber(args[7])
  common.seed()
end

local function instant(seconds, millis)
  return os.date("!%Y-%m-%dT%H:%M:%S", seconds) .. millis .. "Z"
end

function request()
  local path = "/v2/entities/" .. prefix .. math.random(0, entities - 1) .. "/attrs/a" .. math.random(0, attrs - 1)
    .. "?type=" .. etype
  if mode == "lastN" then
    return wrk.format("GET", path .. "&lastN=100")
  end
  local from
  if mode == "day" then
    from = t0 + 86400 * math.random(0, math.floor(minutes / 1440) - 1)
  else
    from = t0 + 3600 * math.random(0, math.floor((minutes - 1470) / 60)) + 1800
  end
  return wrk.format("GET", path .. "&aggrMethod=avg&aggrPeriod=hour&fromDate=" .. instant(from, ".000")
    .. "&toDate=" .. instant(from + 86399, ".999"))
end

setup = common.setup
done = common.done
