"""Semantic product search and basket recommendations: the catalogue embedded once with
all-MiniLM-L6-v2 through the OpenAI embeddings API, shoppers' words matched by cosine
similarity, and the next product suggested from a basket's mean vector. See README.md.

Needs the `openai` and `numpy` packages."""
import csv
import os
import sys
from pathlib import Path

import numpy as np
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import KEY, SERVER, expect, push_once  # noqa: E402

MODEL = "product-embeddings"

print("1. publish all-MiniLM-L6-v2 (ONNX) as an embedding model, once")
folder = Path(os.environ.get("MODELBAY_MINILM_ONNX",
                             Path(__file__).resolve().parents[2] / ".cache/models/all-MiniLM-L6-v2-onnx"))
version = push_once(MODEL, folder)["version"]
print(f"   {MODEL} version {version}")
client = OpenAI(base_url=f"{SERVER}/v1", api_key=KEY)


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text."""
    answer = client.embeddings.create(model=MODEL, input=texts)
    vectors = np.array([item.embedding for item in answer.data], dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


with open(Path(__file__).with_name("catalogue.csv")) as f:
    products = list(csv.DictReader(f))
print(f"2. embed the catalogue: {len(products)} products in one request")
catalogue = embed([f"{p['name']}. {p['description']}" for p in products])
expect(catalogue.shape == (len(products), 384), "one 384-dimension vector per product")


def top(query_vector: np.ndarray, k: int, exclude=()) -> list[tuple[dict, float]]:
    scores = catalogue @ query_vector
    ranked = [i for i in np.argsort(-scores) if products[i]["sku"] not in exclude]
    return [(products[i], float(scores[i])) for i in ranked[:k]]


print("3. search in the shoppers' own words (top 3 by cosine similarity)")
searches = {
    "something to keep me dry on a rainy hike": "camping",
    "gift for parents of a newborn": "baby",
    "my puppy keeps chewing the sofa": "pets",
    "set up for video meetings from home": "electronics",
    "grow tomatoes on my balcony": "garden",
}
queries = embed(list(searches))
for (query, department), vector in zip(searches.items(), queries):
    hits = top(vector, 3)
    print(f"   {query!r}")
    for product, score in hits:
        print(f"      {score:.3f}  {product['sku']}  {product['name']}  ({product['department']})")
    expect(hits[0][0]["department"] == department, f"the best match is in {department}")

print("4. recommend from a basket: the products nearest the basket's mean vector")
basket = [p for p in products if p["name"] in ("lightweight tent", "waterproof sleeping bag")]
basket_skus = {p["sku"] for p in basket}
centre = catalogue[[products.index(p) for p in basket]].mean(axis=0)
# Other variants of what is already in the basket are not a recommendation.
kinds = {p["product"] for p in basket}
suggestions = [(p, s) for p, s in top(centre / np.linalg.norm(centre), 20, basket_skus)
               if p["product"] not in kinds][:5]
print(f"   basket: {', '.join(p['name'] for p in basket)}")
for product, score in suggestions:
    print(f"      {score:.3f}  {product['sku']}  {product['name']}  ({product['department']})")
expect(all(p["department"] == "camping" for p, _ in suggestions),
       "all five suggestions are camping gear")
