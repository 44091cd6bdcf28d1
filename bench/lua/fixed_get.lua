-- D1 (bench/dashboard.py): the same GET PATH every time, in tenant TENANT (service path "/"), so
-- the dashboard's forwarding and the broker straight answer the very same request.
-- args: PATH TENANT
local common = require("common")
local req

function init(args)
  req = wrk.format("GET", args[1], {["Fiware-Service"] = args[2], ["Fiware-ServicePath"] = "/"})
end

function request()
  return req
end

setup = common.setup
done = common.done
