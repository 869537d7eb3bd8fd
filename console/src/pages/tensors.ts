// v2 tensors from a model's signature: how many values one row of an input holds, and an
// inference request built from form values.

import type { TensorSpec } from "./models";

/** Values per row of an input: the product of its shape after the batch dimension. */
export function rowWidth(spec: TensorSpec): number {
  return spec.shape.slice(1).reduce((n, d) => n * (d > 0 ? d : 1), 1);
}

export function isText(spec: TensorSpec): boolean {
  return spec.datatype === "BYTES";
}

/** One row per input: `values[input][j]` as typed in a form (strings). */
export function inferRequest(signature: { inputs: TensorSpec[] }, values: Record<string, string[]>) {
  return {
    inputs: signature.inputs.map((spec) => {
      const row = values[spec.name] ?? [];
      const width = rowWidth(spec);
      const data = Array.from({ length: width }, (_, j) => {
        const raw = row[j] ?? "";
        if (isText(spec)) return raw;
        if (spec.datatype === "BOOL") return raw === "true" || raw === "1";
        return raw.trim() === "" ? 0 : Number(raw);
      });
      return { name: spec.name, datatype: spec.datatype, shape: [1, ...spec.shape.slice(1).map((d) => (d > 0 ? d : 1))], data };
    }),
  };
}

/** A request of one all-zero (or empty-text) row: what the routing probe sends. */
export function exampleRequest(signature: { inputs: TensorSpec[] }) {
  return inferRequest(signature, {});
}
