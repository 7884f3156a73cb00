-- One fixed credential on every request (cache-hit auth, or a malformed-token flood).
-- BENCH_TOKEN empty: no Authorization header at all.
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
