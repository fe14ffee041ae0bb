-- POST batches of interactions, each with fresh event ids, for a rotating user.
--
--   wrk ... -s bench/wrk/ingest.lua URL -- TOKENS_FILE ITEMS_FILE BATCH NONCE THREADS
--
-- Event ids are "<nonce>-<thread>-4000-8000-<sequence>": unique within a run, and across
-- runs through the nonce. Mostly impressions, with clicks, reads and a few saves.
package.path = "bench/wrk/?.lua;" .. package.path
local report = require("report")

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local tokens, items = {}, {}
local batch, nonce, index, stride, sequence = 100, 0, 0, 1, 0
local kinds = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  for line in io.lines(args[2]) do
    if #line > 0 then items[#items + 1] = line end
  end
  batch = tonumber(args[3])
  nonce = tonumber(args[4])
  stride = tonumber(args[5]) or 1
  index = (tid or 1) - 1
  math.randomseed(nonce + (tid or 1))
  for _ = 1, 85 do kinds[#kinds + 1] = "impression" end
  for _ = 1, 10 do kinds[#kinds + 1] = "click" end
  for _ = 1, 4 do kinds[#kinds + 1] = "read" end
  kinds[#kinds + 1] = "save"
end

local function uuid()
  sequence = sequence + 1
  return string.format("%08x-%04x-4000-8000-%012x", nonce, tid or 1, sequence)
end

function request()
  local token = tokens[(index % #tokens) + 1]
  index = index + stride
  local request_id = uuid()
  local parts = {}
  for position = 1, batch do
    parts[position] = string.format(
      '{"event_id":"%s","item_id":%s,"type":"%s","request_id":"%s",' ..
      '"section":"for_you","position":%d}',
      uuid(), items[math.random(#items)], kinds[math.random(#kinds)], request_id, position - 1)
  end
  local body = '{"interactions":[' .. table.concat(parts, ",") .. "]}"
  return wrk.format("POST", nil, {
    ["Authorization"] = "Token " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

done = report.done
