-- wrk script for bench/grpc.sh: POST a v2 request in the binary tensor extension (a JSON header
-- of BENCH_HEADER_LENGTH bytes, then the raw tensor bytes) read from $BENCH_BODY, and print one
-- machine-readable result line like bench/post.lua.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = os.getenv("BENCH_HEADER_LENGTH")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
