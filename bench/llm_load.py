"""Load generator for bench/llm.sh: measures an OpenAI-compatible server through HTTP streaming.

For each server it reports single-stream decode speed, time to first token for a ~500-token
prompt, and aggregate generated tokens/s at several concurrencies. Tokens are counted as
streamed chunks with text (both servers send one chunk per token), the same way for both.

Usage: llm_load.py NAME BASE_URL MODEL [--json OUT]
"""
import asyncio
import json
import statistics
import sys
import time

import httpx

SINGLE_TOKENS = 256
STREAM_TOKENS = 128
TTFT_RUNS = 5
CONCURRENCY = (1, 4, 8)
# A paragraph of ~100 tokens; six of them make the ~500-token prompt.
PARAGRAPH = (
    "The harbour town woke slowly under a grey sky. Fishermen checked their nets, the baker "
    "opened his shutters, and children ran along the sea wall towards the old school. Gulls "
    "circled the boats while the tide turned, and somewhere a radio played an old song about "
    "the sea. By nine the market square was full of voices, crates of fish and baskets of "
    "apples from the farms inland. "
)


async def stream(client, url, model, prompt, max_tokens):
    """Streams one completion; returns (time to first token, time of last token, tokens)."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "stream": True}
    started = time.perf_counter()
    first = last = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if any(c.get("text") for c in chunk.get("choices", [])):
                now = time.perf_counter() - started
                first = now if first is None else first
                last = now
                tokens += 1
    return first, last, tokens


async def run(name, url, model):
    results = {"server": name}
    async with httpx.AsyncClient(timeout=600) as client:
        # Warm-up (also loads the model where loading is lazy).
        await stream(client, url, model, "Hello", 8)

        first, last, tokens = await stream(client, url, model, "Once upon a time", SINGLE_TOKENS)
        results["single_stream_tokens"] = tokens
        results["decode_tok_s"] = (tokens - 1) / (last - first)

        ttfts = []
        for i in range(TTFT_RUNS):
            # A different first word each run: no server may answer from a cached prefix.
            prompt = f"Report {i}. " + PARAGRAPH * 6 + "Summarise the report:"
            first, _, _ = await stream(client, url, model, prompt, 1)
            ttfts.append(first)
        results["ttft_500_ms"] = statistics.median(ttfts) * 1e3

        for n in CONCURRENCY:
            prompts = [f"Story {k}: once upon a time in a town by the sea," for k in range(n)]
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(stream(client, url, model, p, STREAM_TOKENS) for p in prompts))
            elapsed = time.perf_counter() - started
            results[f"aggregate_tok_s_{n}"] = sum(t for _, _, t in outcomes) / elapsed
    return results


def main():
    name, url, model = sys.argv[1:4]
    results = asyncio.run(run(name, url, model))
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(results, f)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
