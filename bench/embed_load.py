"""Embedding throughput, in sentences per second, for bench/embeddings.sh.

Subcommands (each prints one JSON object on stdout):

  matmul THREADS
      float32 matrix-multiply throughput (GFLOP/s) of this machine through ONNX Runtime's MatMul
      (2048x2048x2048), with THREADS intra-op threads: the compute ceiling the figures are read
      against.
  python MODEL_DIR THREADS
      What a Python user gets in-process with `onnxruntime` on the same ONNX graph: tokenize with
      `tokenizers`, run, mean-pool, normalise, at batch 1 and 32 (`end_to_end`); and the graph
      alone on pre-tokenized inputs at batch 32 (`raw`, the in-process ceiling).
  http URL MODEL
      modelbay's /v1/embeddings from one client over a kept-alive connection: requests of 1 and
      of 32 sentences, one at a time; and 8 clients at once sending 1 sentence each (batching
      across requests).
"""
import http.client
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

# Typical short texts (10-20 tokens), cycled: search queries, reviews, support messages.
SENTENCES = [
    "How do I reset the password of my online banking account?",
    "The delivery arrived two days late and the box was damaged.",
    "Patient reports mild chest pain after exercise, no fever.",
    "Wireless noise-cancelling headphones with long battery life",
    "What is the interest rate on a thirty-year fixed mortgage?",
    "I would like to return these shoes because they are too small.",
    "The quarterly report shows revenue growth of eight percent.",
    "Can I change the delivery address after placing an order?",
    "Blood pressure readings were normal during the last visit.",
    "A lightweight waterproof jacket for hiking in the mountains",
    "My credit card was charged twice for the same purchase.",
    "Which laptops are best for students on a tight budget?",
]
DURATION = 8.0  # seconds per measurement


def batch(size, offset=0):
    return [SENTENCES[(offset + i) % len(SENTENCES)] for i in range(size)]


def measure(step, sentences_per_step):
    """Runs `step` repeatedly for DURATION seconds (after one warm-up); sentences per second."""
    step()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < DURATION:
        step()
        done += sentences_per_step
    return done / (time.perf_counter() - started)


def matmul(threads):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = 2048
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options)
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    session.run(None, {"a": a, "b": a})
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < 4.0:
        session.run(None, {"a": a, "b": a})
        runs += 1
    seconds = (time.perf_counter() - started) / runs
    return {"threads": threads, "gflops": 2 * n ** 3 / seconds / 1e9}


def python_peer(model_dir, threads):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_dir / "onnx/model.onnx"), options,
                                   providers=["CPUExecutionProvider"])

    def inputs(texts):
        encodings = tokenizer.encode_batch(texts)
        longest = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def embed(texts):
        feed = inputs(texts)
        (states,) = session.run(["last_hidden_state"], feed)
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (states * mask).sum(1) / mask.sum(1)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    one, thirty_two = batch(1), batch(32)
    prepared = inputs(thirty_two)
    return {
        "threads": threads,
        "batch_1": measure(lambda: embed(one), 1),
        "batch_32": measure(lambda: embed(thirty_two), 32),
        "raw_batch_32": measure(lambda: session.run(["last_hidden_state"], prepared), 32),
    }


class Client:
    """One kept-alive HTTP connection posting to /v1/embeddings."""

    def __init__(self, url, model):
        parsed = urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port)
        self.model = model

    def embed(self, texts):
        body = json.dumps({"model": self.model, "input": texts, "encoding_format": "base64"})
        self.connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {payload[:200]!r}")
        return payload


def concurrent(url, model, clients):
    """`clients` threads each sending one sentence at a time; total sentences per second."""
    counts = [0] * clients
    stop = time.perf_counter() + DURATION

    def run(i):
        client = Client(url, model)
        client.embed(batch(1, i))
        while time.perf_counter() < stop:
            client.embed(batch(1, i + counts[i]))
            counts[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def http_load(url, model):
    client = Client(url, model)
    one, thirty_two = batch(1), batch(32)
    return {
        "batch_1": measure(lambda: client.embed(one), 1),
        "batch_32": measure(lambda: client.embed(thirty_two), 32),
        "clients_8_batch_1": concurrent(url, model, 8),
    }


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "matmul":
        result = matmul(int(args[0]))
    elif command == "python":
        result = python_peer(args[0], int(args[1]))
    elif command == "http":
        result = http_load(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
