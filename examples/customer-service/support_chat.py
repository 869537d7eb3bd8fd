"""A support chat: a system prompt, answers streamed token by token, and an order lookup the model
asks for as a tool call and this script answers, all through OpenAI's own Python client. See
README.md.

Needs the `openai` package."""
import json
import os
import sys
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import KEY, SERVER, expect, push_once  # noqa: E402

MODEL = "support-chat"
SYSTEM = ("You are the support assistant of Northwind Outdoor, an online shop. Be brief and "
          "friendly. Customers may return any item within 30 days of delivery, free of charge. "
          "Use the lookup_order tool to answer questions about an order.")
ORDERS = {"A1234": {"status": "shipped", "carrier": "DHL", "expected": "Thursday 10 December",
                    "items": ["lightweight tent", "waterproof sleeping bag"]}}
LOOKUP_ORDER = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its number and return its status and delivery date.",
        "parameters": {"type": "object",
                       "properties": {"order_id": {"type": "string",
                                                   "description": "the order number, e.g. A1234"}},
                       "required": ["order_id"], "additionalProperties": False},
    },
}


def lookup_order(order_id: str) -> dict:
    """The shop's order system, as far as this example needs one."""
    return ORDERS.get(order_id.strip().upper(), {"error": f"no order {order_id}"})


print("1. publish SmolLM2-135M-Instruct (GGUF) as a chat model, once")
gguf = Path(os.environ.get("MODELBAY_SMOLLM2", Path(__file__).resolve().parents[2]
                           / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
version = push_once(MODEL, gguf)["version"]
print(f"   {MODEL} version {version}")
client = OpenAI(base_url=f"{SERVER}/v1", api_key=KEY)
messages = [{"role": "system", "content": SYSTEM}]


def stream_answer(**options) -> tuple[str, int]:
    """Streams the assistant's next turn to the terminal; returns its text and how many pieces
    it came in."""
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                            seed=7, temperature=0.2, **options)
    pieces = []
    print("   assistant: ", end="", flush=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            print(pieces[-1], end="", flush=True)
    print()
    return "".join(pieces).strip(), len(pieces)


print("2. a general question, answered from the system prompt, streamed as it is written")
messages.append({"role": "user", "content": "Hello, how long do I have to return something?"})
answer, pieces = stream_answer(max_tokens=60)
expect(answer != "" and pieces > 1, f"the answer streamed in {pieces} pieces")
messages.append({"role": "assistant", "content": answer})

print("3. an order question: the model calls lookup_order (streamed, the call forced)")
messages.append({"role": "user", "content": "Where is my order A1234? I need the tent by Friday."})
stream = client.chat.completions.create(
    model=MODEL, messages=messages, tools=[LOOKUP_ORDER], stream=True, max_tokens=60, seed=7,
    tool_choice={"type": "function", "function": {"name": "lookup_order"}})
calls: dict[int, dict] = {}
finish = None
for chunk in stream:
    choice = chunk.choices[0]
    for delta in choice.delta.tool_calls or []:
        call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
        call["id"] = delta.id or call["id"]
        call["name"] += delta.function.name or ""
        call["arguments"] += delta.function.arguments or ""
    finish = choice.finish_reason or finish
expect(finish == "tool_calls" and len(calls) >= 1, "the answer is a tool call")
call = calls[0]
arguments = json.loads(call["arguments"])
print(f"   {call['name']}({json.dumps(arguments)})  id {call['id']}")
expect(call["name"] == "lookup_order" and isinstance(arguments.get("order_id"), str),
       "it calls lookup_order with an order_id string, as the schema says")

print("4. the script runs the lookup and sends the result back; the model answers in words")
result = lookup_order(arguments["order_id"])
print(f"   lookup_order -> {json.dumps(result)}")
messages += [
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": call["arguments"]}}]},
    {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
]
answer, pieces = stream_answer(tools=[LOOKUP_ORDER], tool_choice="none", max_tokens=80)
expect(answer != "" and not answer.startswith("{"), "the answer is text, not another call")
expect(pieces > 1, f"it streamed in {pieces} pieces")
