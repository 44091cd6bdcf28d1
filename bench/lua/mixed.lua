-- W5 mixed: 70% PATCH, 20% batch of 10, 5% GET, 4% queries, 1% create / delete / subscription change.
-- args: N GROUPS SUBS (SUBS: comma-separated subscription ids, "-" when there are none)
local common = require("common")
local n, groups, subs = 0, 0, {}
local created, deleted, rare, tid = 0, 0, 0, ""

function init(args)
  n, groups = tonumber(args[1]), tonumber(args[2])
  for id in string.gmatch(args[3] or "", "[^,]+") do
    if id ~= "-" then subs[#subs + 1] = id end
  end
  tid = os.time() .. "-" .. tn  -- ids of created entities: Tmp-<tid>-<k>
  common.seed()
end

local function attrs()
  return string.format('"temperature":{"value":%d,"type":"Number"},"pressure":{"value":%d,"type":"Number"}',
    math.random(0, 40), math.random(900, 1100))
end

local function batch()
  local first, parts = math.random(0, n - 1), {}
  for i = 1, 10 do
    parts[i] = string.format('{"id":"Room%d","type":"Room",%s}', (first + i) % n, attrs())
  end
  return wrk.format("POST", "/v2/op/update", common.json,
    '{"actionType":"append","entities":[' .. table.concat(parts, ",") .. ']}')
end

local function rare_op()
  rare = rare + 1
  local kind = rare % 3
  if kind == 2 and #subs > 0 then
    return wrk.format("PATCH", "/v2/subscriptions/" .. subs[math.random(1, #subs)], common.json,
      '{"description":"changed ' .. rare .. '"}')
  end
  -- delete only entities created at least two rare operations ago, so their create has landed
  if kind == 1 and deleted + 2 < created then
    deleted = deleted + 1
    return wrk.format("DELETE", "/v2/entities/Tmp-" .. tid .. "-" .. deleted)
  end
  created = created + 1
  return wrk.format("POST", "/v2/entities", common.json,
    string.format('{"id":"Tmp-%s-%d","type":"Tmp",%s}', tid, created, attrs()))
end

function request()
  local r = math.random(1, 100)
  if r <= 70 then
    return wrk.format("PATCH", "/v2/entities/Room" .. math.random(0, n - 1) .. "/attrs", common.json, "{" .. attrs() .. "}")
  elseif r <= 90 then
    return batch()
  elseif r <= 95 then
    return wrk.format("GET", "/v2/entities/Room" .. math.random(0, n - 1))
  elseif r <= 99 then
    return wrk.format("GET", "/v2/entities?type=Room&q=group==" .. math.random(0, groups - 1))
  end
  return rare_op()
end

setup = common.setup
done = common.done
