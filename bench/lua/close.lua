-- A new connection for every request (over TLS: a full handshake each time): Connection: close.
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.headers["Connection"] = "close"
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
