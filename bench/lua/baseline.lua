-- The yardstick: GET / on bench/baseline_app.py.
local common = require("common")

function request()
  return wrk.format("GET", "/")
end

setup = common.setup
done = common.done
