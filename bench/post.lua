-- wrk: POST a distinct api-call event per request, so none is a duplicate.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = (args[1] or "run") .. "-" .. tid .. "-"
  counter = 0
end

function request()
  counter = counter + 1
  local body = '{"requestId":"' .. prefix .. counter .. '","payload":{"worker":"trade-worker",'
    .. '"endpoint":"/webhook","latencyMs":24.5,"success":true}}'
  return wrk.format("POST", "/track/api-call", {
    ["Content-Type"] = "application/json",
    ["X-Internal-Auth-Key"] = "bench-key",
    ["Connection"] = "close",
  }, body)
end
