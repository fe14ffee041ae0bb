-- GET the target URL with "Authorization: Token <t>", the token changing on every request.
--
--   wrk ... -s bench/wrk/get.lua URL -- TOKENS_FILE THREADS
--
-- Thread n of N sends tokens n, n+N, n+2N, ... of the file: no two requests share a token
-- until the file has been gone through once (a cold-cache run stays below that).
package.path = "bench/wrk/?.lua;" .. package.path
local report = require("report")

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local tokens = {}
local index, stride = 0, 1

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  stride = tonumber(args[2]) or 1
  index = (tid or 1) - 1
end

function request()
  local token = tokens[(index % #tokens) + 1]
  index = index + stride
  return wrk.format("GET", nil, { ["Authorization"] = "Token " .. token })
end

done = report.done
