"""Load generator for bench/llm_peer.sh: one OpenAI-compatible server, measured through HTTP.

Run against modelbay and llama.cpp's llama-server in turn (same GGUF, same threads). Every figure
comes from streamed responses; a token is a streamed chunk that carries text (`choices[].text`
for completions, `choices[].delta.content` for chat), counted the same way for both servers (both
send one chunk per generated token).

Measures:
  decode_tok_s        one stream, 256 tokens, temperature 0: (tokens - 1) / (last - first token)
  aggregate_tok_s_8   8 concurrent 128-token streams: all streamed tokens / wall time
  ttft_500_ms         median time to first token of 5 ~500-token completion prompts, each
                      different at its start (no prefix-cache hit possible), max_tokens 1
  ttft_miss_ms /      a ~1,000-token chat prompt (unique at its start) sent once (miss), then the
  ttft_hit_ms         exact same prompt again (hit); median of 3 of each, max_tokens 1
  free_tok_s /        chat decode rate at temperature 0 (200 max tokens) without and with a
  constrained_tok_s   response_format json_schema (grammar-constrained); median of 3 each

Usage: llm_peer_load.py NAME BASE_URL MODEL [--json OUT]
"""
import asyncio
import json
import statistics
import sys
import time

import httpx

SINGLE_TOKENS = 256
STREAMS = 8
STREAM_TOKENS = 128
TTFT_RUNS = 5
CACHE_RUNS = 3
SCHEMA_RUNS = 3
SCHEMA_TOKENS = 200
# A paragraph of ~80 tokens: six make the ~500-token prompt, twelve the ~1,000-token one.
PARAGRAPH = (
    "The harbour town woke slowly under a grey sky. Fishermen checked their nets, the baker "
    "opened his shutters, and children ran along the sea wall towards the old school. Gulls "
    "circled the boats while the tide turned, and somewhere a radio played an old song about "
    "the sea. By nine the market square was full of voices, crates of fish and baskets of "
    "apples from the farms inland. "
)
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "occupation": {"type": "string"},
        "hobbies": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "city", "occupation", "hobbies"],
    "additionalProperties": False,
}
SCHEMA_PROMPT = (
    "Invent a character for a novel set in a harbour town. Describe the character as a JSON "
    "object with the fields name, age, city, occupation and hobbies (a list of three hobbies), "
    "then explain in detail why the character is interesting."
)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


async def stream(client, url, path, body):
    """Streams one request; returns dict(first, last, tokens, usage) with times in seconds."""
    body = dict(body, stream=True, stream_options={"include_usage": True})
    started = time.perf_counter()
    first = last = None
    tokens = 0
    usage = None
    async with client.stream("POST", f"{url}{path}", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise RuntimeError(f"{path} answered {response.status_code}: {text[:500]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            if chunk.get("timings"):  # llama-server: timings.cache_n = prompt tokens reused
                usage = dict(usage or {}, timings=chunk["timings"])
            has_text = any(
                c.get("text") or (c.get("delta") or {}).get("content")
                for c in chunk.get("choices") or [])
            if has_text:
                now = time.perf_counter() - started
                first = now if first is None else first
                last = now
                tokens += 1
    if first is None:
        raise RuntimeError(f"{path}: no token streamed")
    return {"first": first, "last": last, "tokens": tokens, "usage": usage}


def completion(model, prompt, max_tokens):
    return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "n_predict": max_tokens,
            "temperature": 0}


def chat(model, messages, max_tokens, **extra):
    return dict({"model": model, "messages": messages, "max_tokens": max_tokens,
                 "n_predict": max_tokens, "temperature": 0}, **extra)


def cached_tokens(usage):
    """Prompt tokens the server says it reused: OpenAI's field, else llama-server's cache_n."""
    if not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None:
        return details["cached_tokens"]
    return (usage.get("timings") or {}).get("cache_n")


def rate(outcome):
    span = outcome["last"] - outcome["first"]
    return (outcome["tokens"] - 1) / span if span > 0 and outcome["tokens"] > 1 else float("nan")


async def run(name, url, model):
    r = {"server": name}
    # A fresh connection per request: llama-server (cpp-httplib) closes idle keep-alive
    # connections after 5 s, which a pooled client would otherwise reuse and fail on.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        # Warm-up of both endpoints (also loads the model where loading is lazy).
        await stream(client, url, "/v1/completions", completion(model, "Hello", 8))
        await stream(client, url, "/v1/chat/completions",
                     chat(model, [{"role": "user", "content": "Hello"}], 8))

        log(f"[{name}] single-stream decode")
        o = await stream(client, url, "/v1/completions",
                         completion(model, "Once upon a time", SINGLE_TOKENS))
        r["single_tokens"] = o["tokens"]
        r["decode_tok_s"] = rate(o)

        log(f"[{name}] {STREAMS} concurrent streams")
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(
            stream(client, url, "/v1/completions",
                   completion(model, f"Story {k}: once upon a time in a town by the sea,",
                              STREAM_TOKENS))
            for k in range(STREAMS)))
        elapsed = time.perf_counter() - started
        r["aggregate_tokens_8"] = sum(o["tokens"] for o in outcomes)
        r["aggregate_tok_s_8"] = r["aggregate_tokens_8"] / elapsed

        log(f"[{name}] TTFT ~500-token prompt, no cache hit")
        ttfts = []
        for i in range(TTFT_RUNS):
            prompt = f"Report {i} of {name}. " + PARAGRAPH * 6 + "Summarise the report:"
            o = await stream(client, url, "/v1/completions", completion(model, prompt, 1))
            ttfts.append(o["first"])
            r["ttft_500_prompt_tokens"] = (o["usage"] or {}).get("prompt_tokens")
        r["ttft_500_ms"] = statistics.median(ttfts) * 1e3

        log(f"[{name}] TTFT ~1,000-token chat prompt: miss vs hit")
        misses, hits, hit_cached = [], [], []
        for i in range(CACHE_RUNS):
            messages = [
                {"role": "system",
                 "content": f"Session {i} ({name}, {time.time_ns()}). You are a careful editor."},
                {"role": "user",
                 "content": "Here is a long report.\n\n" + PARAGRAPH * 12
                            + "\n\nWhat is the report about?"},
            ]
            miss = await stream(client, url, "/v1/chat/completions", chat(model, messages, 1))
            hit = await stream(client, url, "/v1/chat/completions", chat(model, messages, 1))
            misses.append(miss["first"])
            hits.append(hit["first"])
            hit_cached.append(cached_tokens(hit["usage"]))
            r["cache_prompt_tokens"] = (hit["usage"] or {}).get("prompt_tokens")
            r["cache_miss_cached_tokens"] = cached_tokens(miss["usage"])
        r["ttft_miss_ms"] = statistics.median(misses) * 1e3
        r["ttft_hit_ms"] = statistics.median(hits) * 1e3
        r["cache_hit_cached_tokens"] = hit_cached
        r["cache_ratio"] = r["ttft_miss_ms"] / r["ttft_hit_ms"]

        try:
            log(f"[{name}] constrained (json_schema) vs free chat decode")
            messages = [{"role": "user", "content": SCHEMA_PROMPT}]
            response_format = {"type": "json_schema",
                               "json_schema": {"name": "character", "schema": SCHEMA}}
            free, constrained, free_tokens, constrained_tokens = [], [], [], []
            sample = None
            for _ in range(SCHEMA_RUNS):
                o = await stream(client, url, "/v1/chat/completions",
                                 chat(model, messages, SCHEMA_TOKENS))
                free.append(rate(o))
                free_tokens.append(o["tokens"])
                o = await stream(client, url, "/v1/chat/completions",
                                 chat(model, messages, SCHEMA_TOKENS,
                                      response_format=response_format))
                constrained.append(rate(o))
                constrained_tokens.append(o["tokens"])
            # One non-streamed constrained answer, to check that the output obeys the schema.
            answer = await client.post(f"{url}/v1/chat/completions", json=chat(
                model, messages, SCHEMA_TOKENS, response_format=response_format))
            answer.raise_for_status()
            sample = answer.json()["choices"][0]["message"]["content"]
            try:
                parsed = json.loads(sample)
                r["constrained_valid_json"] = isinstance(parsed, dict) and set(
                    SCHEMA["required"]) <= set(parsed)
            except ValueError:
                r["constrained_valid_json"] = False
            r["constrained_sample"] = sample
            r["free_tok_s"] = statistics.median(free)
            r["constrained_tok_s"] = statistics.median(constrained)
            r["free_tokens"] = free_tokens
            r["constrained_tokens"] = constrained_tokens
            r["constrained_pct"] = 100 * r["constrained_tok_s"] / r["free_tok_s"]
        except (httpx.HTTPError, RuntimeError) as e:
            # A server that fails or crashes on constrained output gets no figure for it.
            log(f"[{name}] constrained decoding failed: {e!r}")
            r["constrained_error"] = repr(e)[:200]
            if free:
                r["free_tok_s"] = statistics.median(free)
    return r


def main():
    name, url, model = sys.argv[1:4]
    results = asyncio.run(run(name, url, model))
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
