-- A different credential per request, read from BENCH_TOKENS_FILE (one token a line).
-- Each wrk thread starts at its own slice, after BENCH_TOKENS_OFFSET, so that across threads and
-- rounds no token repeats until the file wraps (cache-miss), or cycles a small pool (unknown flood).
local tokens = {}
local n, i = 0, 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
    n = n + 1
    tokens[n] = line
  end
  local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local offset = tonumber(os.getenv("BENCH_TOKENS_OFFSET") or "0")
  i = (offset + math.floor(n * ((tid or 1) - 1) / threads)) % n
end

function request()
  i = i % n + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format()
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
