-- R1: POST /notices on the rules service, as the broker would send it: one entity per
-- notification, from the subscription of a random one of the bench's rules.
-- args: FILE, a line per rule: "<subscription id> <entity id> <entity type>" (written by bench/rules.py)
local common = require("common")
local targets = {}
local headers = {["Content-Type"] = "application/json", ["Fiware-ServicePath"] = "/"}

function init(args)
  for line in io.lines(args[1]) do
    local sub, id, kind = line:match("^(%S+) (%S+) (%S+)$")
    if sub then
      targets[#targets + 1] = {sub, id, kind}
    end
  end
  common.seed()
end

function request()
  local t = targets[math.random(1, #targets)]
  local body = string.format(
    '{"subscriptionId":"%s","data":[{"id":"%s","type":"%s",' ..
    '"temperature":{"type":"Number","value":%d,"metadata":{}},' ..
    '"pressure":{"type":"Number","value":%d,"metadata":{}},' ..
    '"alterationType":{"type":"Text","value":"entityUpdate","metadata":{}}}]}',
    t[1], t[2], t[3], math.random(0, 50), math.random(900, 1100))
  return wrk.format("POST", "/notices", headers, body)
end

setup = common.setup
done = common.done
