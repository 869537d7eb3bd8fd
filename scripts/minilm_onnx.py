#!/usr/bin/env python3
"""Build an ONNX graph of a BERT encoder (e.g. all-MiniLM-L6-v2) from safetensors.

    python3 scripts/minilm_onnx.py MODEL_DIR OUT.onnx

Reads MODEL_DIR/config.json and MODEL_DIR/model.safetensors (HF BertModel
tensor names, without a "bert." prefix) and writes an opset-17 ONNX model with

    inputs   input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
    output   last_hidden_state                           float32 [batch, sequence, hidden]

computing exactly what transformers' BertModel computes in eval mode
(absolute position embeddings, post-LayerNorm layers, exact erf GELU).
Pooling and normalisation are left to the caller, as in an optimum export.

Needs only `numpy` and `onnx`; the safetensors file is parsed by hand.
Used by scripts/fetch-models.sh to make the ONNX-only MiniLM test folder.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from safetensors_np import load_safetensors

OPSET = 17  # first opset with LayerNormalization

class GraphBuilder:
    """Collects nodes and initializers; every helper returns its output's name."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counter = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        """A float32 initializer from the checkpoint (linear weights transposed for MatMul)."""
        w = self.weights[name].astype(np.float32)
        return self.const(name, w.T if transpose else w)

    # --- building blocks -------------------------------------------------

    def linear(self, x: str, prefix: str) -> str:
        """x @ W^T + b, like torch.nn.Linear."""
        y = self.op("MatMul", [x, self.weight(prefix + ".weight", transpose=True)], prefix + ".matmul")
        return self.op("Add", [y, self.weight(prefix + ".bias")], prefix + ".add")

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias")],
            prefix,
            axis=-1,
            epsilon=eps,
        )

    def gelu(self, x: str, prefix: str) -> str:
        """Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2)))."""
        scaled = self.op("Mul", [x, "const.inv_sqrt2"], prefix + ".gelu_scale")
        erf = self.op("Erf", [scaled], prefix + ".gelu_erf")
        one_plus = self.op("Add", [erf, "const.one"], prefix + ".gelu_add")
        half_x = self.op("Mul", [x, "const.half"], prefix + ".gelu_half")
        return self.op("Mul", [half_x, one_plus], prefix + ".gelu")

    def split_heads(self, x: str, perm: list[int], hint: str) -> str:
        """[B, S, H] -> [B, S, heads, head_dim] -> transposed by perm."""
        y = self.op("Reshape", [x, "const.heads_shape"], hint + ".reshape")
        return self.op("Transpose", [y], hint + ".transpose", perm=perm)

    def self_attention(self, x: str, mask_bias: str, prefix: str) -> str:
        q = self.split_heads(self.linear(x, prefix + ".query"), [0, 2, 1, 3], prefix + ".q")  # [B,h,S,d]
        k = self.split_heads(self.linear(x, prefix + ".key"), [0, 2, 3, 1], prefix + ".k")  # [B,h,d,S]
        v = self.split_heads(self.linear(x, prefix + ".value"), [0, 2, 1, 3], prefix + ".v")  # [B,h,S,d]
        scores = self.op("MatMul", [q, k], prefix + ".scores")  # [B,h,S,S]
        scores = self.op("Mul", [scores, "const.attn_scale"], prefix + ".scaled")
        scores = self.op("Add", [scores, mask_bias], prefix + ".masked")
        probs = self.op("Softmax", [scores], prefix + ".probs", axis=-1)
        context = self.op("MatMul", [probs, v], prefix + ".context")  # [B,h,S,d]
        context = self.op("Transpose", [context], prefix + ".context_t", perm=[0, 2, 1, 3])
        return self.op("Reshape", [context, "const.hidden_shape"], prefix + ".merged")  # [B,S,H]

    def bert_layer(self, x: str, mask_bias: str, prefix: str, eps: float) -> str:
        attn = self.self_attention(x, mask_bias, prefix + ".attention.self")
        attn = self.linear(attn, prefix + ".attention.output.dense")
        x = self.layer_norm(self.op("Add", [attn, x], prefix + ".attn_residual"),
                            prefix + ".attention.output.LayerNorm", eps)
        hidden = self.gelu(self.linear(x, prefix + ".intermediate.dense"), prefix + ".intermediate")
        out = self.linear(hidden, prefix + ".output.dense")
        return self.layer_norm(self.op("Add", [out, x], prefix + ".ffn_residual"),
                               prefix + ".output.LayerNorm", eps)


def build_model(weights: dict[str, np.ndarray], config: dict) -> onnx.ModelProto:
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise SystemExit("only absolute position embeddings are supported")
    if config.get("hidden_act", "gelu") != "gelu":
        raise SystemExit(f"unsupported hidden_act {config['hidden_act']!r} (only exact gelu)")

    g = GraphBuilder(weights)
    f32 = np.float32
    g.const("const.one", np.array(1.0, f32))
    g.const("const.half", np.array(0.5, f32))
    g.const("const.inv_sqrt2", np.array(1.0 / math.sqrt(2.0), f32))
    g.const("const.attn_scale", np.array(1.0 / math.sqrt(head_dim), f32))
    # Masked keys get the most negative float32 added, as transformers does.
    g.const("const.mask_min", np.array(np.finfo(f32).min, f32))
    g.const("const.heads_shape", np.array([0, 0, heads, head_dim], np.int64))  # 0 = keep dim
    g.const("const.hidden_shape", np.array([0, 0, hidden], np.int64))
    g.const("const.zero_1d", np.array([0], np.int64))
    g.const("const.mask_axes", np.array([1, 2], np.int64))

    # Embeddings: word + position (0..S-1) + token type, then LayerNorm.
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "word_emb")
    # Position embeddings of 0..S-1 are the first S rows of the table: a Slice, not
    # Range + Gather (onnxruntime 1.31's GatherToSliceFusion breaks on the latter).
    seq_len = g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)  # [S], 1-D
    pos = g.op("Slice", [g.weight("embeddings.position_embeddings.weight"), "const.zero_1d", seq_len,
                         "const.zero_1d"], "pos_emb")  # starts=[0], ends=[S], axes=[0]
    types = g.op("Gather", [g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], "type_emb")
    x = g.op("Add", [g.op("Add", [words, pos], "emb_sum"), types], "emb_sum")
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)

    # Additive attention mask [B, 1, 1, S]: 0 where attended, float32 min where padded.
    mask = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inverted = g.op("Sub", ["const.one", mask], "mask_inv")
    bias = g.op("Mul", [inverted, "const.mask_min"], "mask_bias")
    mask_bias = g.op("Unsqueeze", [bias, "const.mask_axes"], "mask_bias4d")

    for i in range(config["num_hidden_layers"]):
        x = g.bert_layer(x, mask_bias, f"encoder.layer.{i}", eps)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))

    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims)
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="modelbay scripts/minilm_onnx.py")
    model.ir_version = 8  # readable by any onnxruntime >= 1.14
    return model


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} MODEL_DIR OUT.onnx")
    model_dir, out_path = sys.argv[1], sys.argv[2]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = build_model(weights, config)
    onnx.checker.check_model(model, full_check=True)
    # Write under a temporary name so an interrupted run leaves no file that looks done.
    tmp_path = out_path + ".tmp"
    onnx.save_model(model, tmp_path)
    os.replace(tmp_path, out_path)
    print(f"wrote {out_path}: {len(model.graph.node)} nodes, "
          f"{len(model.graph.initializer)} initializers, {os.path.getsize(out_path)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
