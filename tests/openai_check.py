"""Checks that the unmodified `openai` Python client works against modelbay's OpenAI API.

Starts the real server binary on 127.0.0.1 port 0 with a temporary data directory, pushes
SmolLM2-135M-Instruct (GGUF) through the management API, then uses the client for the model
list, chat and text completions (whole and streamed, with usage), and its error exceptions.
Then pushes all-MiniLM-L6-v2 (the folder with an ONNX export, packed by `modelbay push`) and
checks `embeddings.create` (the client's default base64 encoding and float) against the
float64 reference embeddings.

Usage: tests/openai_check.py [path/to/modelbay]
  (needs ORT_DYLIB_PATH, MODELBAY_SMOLLM2, MODELBAY_MINILM_ONNX and MODELBAY_MINILM_REFERENCE)
"""
import json
import math
import subprocess
import os
import sys
import tempfile
from pathlib import Path

import openai

import modelbay_server
from modelbay_server import push, start_server

ROOT = Path(__file__).resolve().parent.parent
checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/modelbay")
    model = os.environ.get("MODELBAY_SMOLLM2", str(ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    with tempfile.TemporaryDirectory() as data_dir:
        proc, address = start_server(binary, data_dir, "--llm-threads", "2")
        try:
            push(address, "chat", model)
            client = openai.OpenAI(base_url=f"http://{address}/v1", api_key=modelbay_server.API_KEY, max_retries=0)

            ids = [m.id for m in client.models.list()]
            # The first version is `production`: the model is listed by name and by alias.
            check(ids == ["chat", "chat@production"], f"models: {ids}")

            messages = [{"role": "user", "content": "What is the capital of France?"}]
            chat = client.chat.completions.create(model="chat", messages=messages, max_tokens=24, temperature=0)
            check(chat.object == "chat.completion", chat)
            check(chat.choices[0].message.role == "assistant", chat)
            check(len(chat.choices[0].message.content) > 0, chat)
            check(chat.choices[0].finish_reason in ("stop", "length"), chat)
            check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, chat.usage)

            stream = client.chat.completions.create(
                model="chat", messages=messages, max_tokens=24, temperature=0, stream=True,
                stream_options={"include_usage": True})
            pieces, finish, usage = [], None, None
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
                    finish = choice.finish_reason or finish
            check("".join(pieces) == chat.choices[0].message.content, f"stream {pieces!r}")
            check(finish == chat.choices[0].finish_reason, finish)
            check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens, usage)
            check(len(pieces) > 1, "the stream came in one piece")

            text = client.completions.create(model="chat", prompt="One, two, three,", max_tokens=5, temperature=0)
            check(text.object == "text_completion", text)
            check(text.choices[0].finish_reason == "length" and text.usage.completion_tokens == 5, text)
            streamed = "".join(c.choices[0].text for c in client.completions.create(
                model="chat", prompt="One, two, three,", max_tokens=5, temperature=0, stream=True) if c.choices)
            check(streamed == text.choices[0].text, f"{streamed!r} != {text.choices[0].text!r}")

            stopped = client.completions.create(
                model="chat", prompt="One, two, three,", max_tokens=20, temperature=0, stop=[","])
            check("," not in stopped.choices[0].text and stopped.choices[0].finish_reason == "stop", stopped)

            try:
                client.chat.completions.create(model="missing", messages=messages)
                check(False, "an unknown model was accepted")
            except openai.NotFoundError as e:
                check(e.status_code == 404 and "not found" in e.message, e)
            try:
                client.chat.completions.create(model="chat", messages=messages, temperature=5)
                check(False, "temperature 5 was accepted")
            except openai.BadRequestError as e:
                check("temperature" in e.message, e)
            try:
                client.chat.completions.create(model="chat", messages=[])
                check(False, "empty messages were accepted")
            except openai.BadRequestError as e:
                check("message" in e.message, e)

            check_embeddings(binary, address, client)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"openai client check: {checks} checks passed")


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def check_embeddings(binary, address, client):
    folder = os.environ.get("MODELBAY_MINILM_ONNX", str(ROOT / ".cache/models/all-MiniLM-L6-v2-onnx"))
    reference_path = os.environ.get("MODELBAY_MINILM_REFERENCE", str(ROOT / ".cache/models/minilm-reference.json"))
    reference = json.loads(Path(reference_path).read_text())
    subprocess.run([binary, "push", "minilm", folder, "--server", f"http://{address}"],
                   check=True, capture_output=True)
    ids = sorted(m.id for m in client.models.list())
    check(ids == ["chat", "chat@production", "minilm", "minilm@production"], f"models: {ids}")

    # The client asks for base64 unless told otherwise, and decodes it.
    result = client.embeddings.create(model="minilm", input=reference["sentences"])
    check(len(result.data) == len(reference["sentences"]), result)
    for item, expected in zip(result.data, reference["embeddings"]):
        check(cosine(item.embedding, expected) >= 0.9999, f"sentence {item.index}")
    check(result.usage.prompt_tokens == sum(reference["token_counts"]), result.usage)

    floats = client.embeddings.create(model="minilm", input="A man is playing a guitar.",
                                      encoding_format="float")
    check(len(floats.data[0].embedding) == 384, floats)
    check(reference["sentences"][1] == "A man is playing a guitar.", "reference sentence 1 moved")
    check(cosine(floats.data[0].embedding, reference["embeddings"][1]) >= 0.9999, "float encoding")

    for bad, needle in [({"input": ""}, "empty"), ({"input": "a", "dimensions": 16}, "384"),
                        ({"input": "a", "model": "chat"}, "not an embedding model")]:
        try:
            client.embeddings.create(**{"model": "minilm", **bad})
            check(False, f"{bad} was accepted")
        except openai.BadRequestError as e:
            check(needle in e.message, e)


if __name__ == "__main__":
    main()
