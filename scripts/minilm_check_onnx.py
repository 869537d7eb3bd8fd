#!/usr/bin/env python3
"""Check an ONNX BERT encoder against scripts/minilm_reference.py's embeddings.

    python3 scripts/minilm_check_onnx.py MODEL_DIR MODEL.onnx REFERENCE.json

Tokenizes the reference sentences with MODEL_DIR/tokenizer.json (truncation
to the reference's max_seq_length), runs all of them as ONE right-padded batch
through MODEL.onnx with onnxruntime (so padding and the attention mask are
exercised), mean-pools last_hidden_state over the attention mask, L2-normalises,
and compares with the float64 reference. Exits non-zero unless every sentence
has cosine >= 0.9999 and the token counts agree. Needs numpy, tokenizers,
onnxruntime.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MIN_COSINE = 0.9999


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(f"usage: {sys.argv[0]} MODEL_DIR MODEL.onnx REFERENCE.json")
    model_dir, onnx_path, ref_path = sys.argv[1:]
    with open(ref_path, encoding="utf-8") as f:
        ref = json.load(f)

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.enable_truncation(max_length=ref["max_seq_length"])
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
    encodings = tokenizer.encode_batch(ref["sentences"])
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    token_counts = feeds["attention_mask"].sum(axis=1).tolist()
    if token_counts != ref["token_counts"]:
        raise SystemExit(f"token counts differ from the reference:\n{token_counts}\n{ref['token_counts']}")

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2  # keep a shared machine usable
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    (hidden,) = session.run(["last_hidden_state"], feeds)  # [batch, seq, hidden] float32

    mask = feeds["attention_mask"][:, :, None].astype(np.float64)
    pooled = (hidden.astype(np.float64) * mask).sum(axis=1) / mask.sum(axis=1)
    got = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    want = np.array(ref["embeddings"], dtype=np.float64)

    cosines = (got * want).sum(axis=1)  # both sides unit length
    max_abs = np.abs(got - want).max()
    worst = int(cosines.argmin())
    print(f"{len(cosines)} sentences in one batch padded to {feeds['input_ids'].shape[1]} tokens: "
          f"min cosine {cosines.min():.9f} (sentence {worst}), max abs diff {max_abs:.3e}", file=sys.stderr)
    if cosines.min() < MIN_COSINE:
        bad = [i for i, c in enumerate(cosines) if c < MIN_COSINE]
        raise SystemExit(f"ONNX embeddings differ from the reference for sentences {bad}")
    print("ONNX model matches the reference", file=sys.stderr)


if __name__ == "__main__":
    main()
