-- W3: list queries. MODE q: type=Room and q on the group attribute (10 Rooms per group);
-- MODE page: N Items paged by 20 at a random offset.
-- args: MODE N
local common = require("common")
local mode, n

function init(args)
  mode, n = args[1], tonumber(args[2])
  common.seed()
end

function request()
  if mode == "q" then
    return wrk.format("GET", "/v2/entities?type=Room&q=group==" .. math.random(0, n - 1))
  end
  return wrk.format("GET", "/v2/entities?type=Item&limit=20&offset=" .. math.random(0, n - 20))
end

setup = common.setup
done = common.done
