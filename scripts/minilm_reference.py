#!/usr/bin/env python3
"""Reference sentence embeddings for all-MiniLM-L6-v2, computed in float64 numpy.

    python3 scripts/minilm_reference.py MODEL_DIR OUT.json

An implementation of the sentence-transformers pipeline that is independent of
ONNX: BERT encoder straight from MODEL_DIR/model.safetensors (parsed by hand),
mean pooling over the attention mask, L2 normalisation. Text is tokenized with
the `tokenizers` package from MODEL_DIR/tokenizer.json, with the file's own
padding/truncation settings replaced by: no padding, truncation to
sentence_bert_config.json's max_seq_length (capped at max_position_embeddings).
Each sentence runs alone, so no padding is involved here.

Writes JSON: model, max_seq_length, sentences, token_counts (incl. [CLS]/[SEP],
after truncation), embeddings (one list of floats per sentence), related_pairs
and unrelated_pairs (sentence indices). Every related pair is checked to be
more similar than every unrelated pair. Needs `numpy` and `tokenizers`.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
from tokenizers import Tokenizer

from safetensors_np import load_safetensors

# Long enough (well over 256 tokens) to exercise truncation.
LONG_TEXT = " ".join([
    "Returns and refunds policy.",
    "Items bought in store or online may be returned within 30 days of delivery,",
    "provided they are unused, in their original packaging and accompanied by the receipt or order number.",
    "Refunds are issued to the original payment method within 5 to 10 business days after we receive the parcel;",
    "store credit is offered for gifts returned without a receipt.",
    "Final-sale items, opened cosmetics, underwear, swimwear, perishable food, gift cards and personalised products cannot be returned.",
    "Electronics must include all accessories, manuals and cables, and devices must be reset to factory settings and unlocked.",
    "If an item arrives damaged or defective, contact customer service within 48 hours with photos of the product and the packaging,",
    "and we will arrange a free replacement or a full refund including the original shipping costs.",
    "Exchanges for a different size or colour are free of charge once per order, subject to availability.",
    "Large furniture and appliances are collected by our logistics partner; a collection fee of 49.00 EUR applies unless the item is faulty.",
    "Orders paid with instalment plans are refunded to the financing provider, which will recalculate the remaining balance and interest.",
    "For international orders, customs duties and import taxes are not refundable, and the customer pays return postage",
    "unless the return is caused by our error. Loyalty points earned on a returned purchase are deducted from your account,",
    "and promotional discounts are recalculated if the remaining items no longer meet the offer's conditions.",
    "We reserve the right to refuse returns that show signs of wear, misuse or fraud.",
    "This policy does not affect your statutory rights as a consumer.",
])

SENTENCES = [
    "Hello",                                                                     # 0
    "A man is playing a guitar.",                                                # 1
    "Someone plays an instrument.",                                              # 2
    "The quarterly earnings report beat analyst expectations.",                  # 3
    "The company's profits exceeded forecasts this quarter.",                    # 4
    "The patient was prescribed antibiotics for a bacterial infection.",         # 5
    "The doctor gave her medication to treat the infection.",                    # 6
    "Where can I return a pair of shoes I bought online?",                       # 7
    "How do I send back an item I ordered from your web shop?",                  # 8
    "The cat is sleeping on the sofa.",                                          # 9
    "A kitten naps on the couch.",                                               # 10
    "The central bank raised interest rates by 0.25 percentage points to 5.5%.",  # 11
    "Mortgage rates went up after the central bank's decision.",                 # 12
    "Café au lait, crème brûlée et pâtisseries à volonté !",                     # 13
    "Der schnelle braune Fuchs springt über den faulen Hund.",                   # 14
    "東京は日本の首都です。",                                                      # 15
    "I love this product 😍🔥 would buy again!!!",                               # 16
    "Order #48213 shipped on 2024-03-15, total $1,249.99 (incl. 8.25% tax).",    # 17
    "Blood pressure 140/90 mmHg, heart rate 88 bpm, temperature 38.2 °C.",       # 18
    "Add to cart",                                                               # 19
    "Your credit card payment of €350 is due on the 1st of next month.",         # 20
    "Symptoms include fever, dry cough and shortness of breath.",                # 21
    "It is raining heavily in London today.",                                    # 22
    "ñandú, façade, naïve, coöperate, Ångström",                                 # 23
    "MIXED case Text   with\textra\twhitespace\nand a newline",                  # 24
    LONG_TEXT,                                                                   # 25
    "How long do I have to return something I purchased?",                       # 26
]

RELATED_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [7, 26], [25, 26]]
UNRELATED_PAIRS = [[1, 3], [2, 20], [5, 9], [7, 22], [10, 11], [6, 19], [12, 16], [4, 14]]

def load_weights(path: str) -> dict[str, np.ndarray]:
    """The model's tensors, floats widened to float64."""
    return {name: a.astype(np.float64) if a.dtype.kind == "f" else a
            for name, a in load_safetensors(path).items()}


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's "gelu" activation."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Bert:
    """BertModel forward pass for one unpadded sequence, in float64."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict):
        self.w = weights
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = float(config["layer_norm_eps"])

    def linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]

    def norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return layer_norm(x, self.w[prefix + ".weight"], self.w[prefix + ".bias"], self.eps)

    def attention(self, x: np.ndarray, prefix: str) -> np.ndarray:
        seq, hidden = x.shape
        head_dim = hidden // self.heads
        # [seq, hidden] -> [heads, seq, head_dim]
        q, k, v = (self.linear(x, f"{prefix}.{n}").reshape(seq, self.heads, head_dim).transpose(1, 0, 2)
                   for n in ("query", "key", "value"))
        probs = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(head_dim))
        return (probs @ v).transpose(1, 0, 2).reshape(seq, hidden)

    def __call__(self, ids: list[int], type_ids: list[int]) -> np.ndarray:
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][type_ids])
        x = self.norm(x, "embeddings.LayerNorm")
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            attn = self.linear(self.attention(x, p + ".attention.self"), p + ".attention.output.dense")
            x = self.norm(attn + x, p + ".attention.output.LayerNorm")
            ffn = self.linear(gelu(self.linear(x, p + ".intermediate.dense")), p + ".output.dense")
            x = self.norm(ffn + x, p + ".output.LayerNorm")
        return x  # last_hidden_state [seq, hidden]


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} MODEL_DIR OUT.json")
    model_dir, out_path = sys.argv[1], sys.argv[2]

    def read_json(name: str) -> dict:
        with open(os.path.join(model_dir, name)) as f:
            return json.load(f)

    config = read_json("config.json")
    max_len = min(read_json("sentence_bert_config.json")["max_seq_length"], config["max_position_embeddings"])
    modules = [m["type"].rsplit(".", 1)[-1] for m in read_json("modules.json")]
    pooling = read_json("1_Pooling/config.json")
    assert pooling["pooling_mode_mean_tokens"], "only mean pooling is implemented"
    assert modules == ["Transformer", "Pooling", "Normalize"], modules

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.no_padding()  # tokenizer.json itself pads to 128 ...
    tokenizer.enable_truncation(max_length=max_len)  # ... and truncates to 128, not 256
    bert = Bert(load_weights(os.path.join(model_dir, "model.safetensors")), config)

    token_counts, embeddings = [], []
    for text in SENTENCES:
        enc = tokenizer.encode(text)
        hidden = bert(enc.ids, enc.type_ids)
        mask = np.asarray(enc.attention_mask, dtype=np.float64)[:, None]
        pooled = (hidden * mask).sum(axis=0) / max(mask.sum(), 1e-9)  # mean over real tokens
        embeddings.append(pooled / max(np.linalg.norm(pooled), 1e-12))  # Normalize module
        token_counts.append(len(enc.ids))
    assert max(token_counts) == max_len, "the long text must be truncated"

    emb = np.stack(embeddings)

    def cos(pair: list[int]) -> float:
        return float(emb[pair[0]] @ emb[pair[1]])

    related = {tuple(p): cos(p) for p in RELATED_PAIRS}
    unrelated = {tuple(p): cos(p) for p in UNRELATED_PAIRS}
    print(f"{len(SENTENCES)} sentences, {emb.shape[1]} dims, tokens min/max "
          f"{min(token_counts)}/{max(token_counts)} (max_seq_length {max_len})", file=sys.stderr)
    for name, table in (("related", related), ("unrelated", unrelated)):
        print(f"{name} cosines: " + ", ".join(f"{i}-{j}={c:.4f}" for (i, j), c in table.items()), file=sys.stderr)
    if min(related.values()) <= max(unrelated.values()):
        raise SystemExit(f"min related cosine {min(related.values()):.4f} <= "
                         f"max unrelated cosine {max(unrelated.values()):.4f}")

    result = {
        "model": "all-MiniLM-L6-v2",
        "max_seq_length": max_len,
        "sentences": SENTENCES,
        "token_counts": token_counts,
        "embeddings": emb.tolist(),  # json writes floats with repr: full precision
        "related_pairs": RELATED_PAIRS,
        "unrelated_pairs": UNRELATED_PAIRS,
    }
    tmp_path = out_path + ".tmp"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp_path, out_path)
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
