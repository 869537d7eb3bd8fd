"""Checks that what people point at an OpenAI-compatible server works unchanged against
modelbay, with the real SmolLM2-135M-Instruct (GGUF):

- the `openai` SDK: forced tool calls (whole and streamed, reassembled from deltas) whose
  arguments validate against the function's JSON Schema, a tool-result round trip,
  `chat.completions.parse` with a Pydantic model (strict json_schema), logprobs, and
  `responses.create` (plain, streamed, with a function tool, with `text.format`);
- LangChain (`langchain-openai`): `bind_tools(..., tool_choice="required")` and
  `with_structured_output(PydanticModel)` (its default method, json_schema);
- the OpenAI Agents SDK: an agent with a function tool run through `/v1/responses`.

Usage: tests/openai_frameworks_check.py [path/to/modelbay]   (needs MODELBAY_SMOLLM2)
"""
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

import jsonschema
import openai
from pydantic import BaseModel, Field

import modelbay_server
from modelbay_server import push, start_server

ROOT = Path(__file__).resolve().parent.parent
checks = 0

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


def valid_arguments(arguments):
    jsonschema.validate(json.loads(arguments), WEATHER)
    return True


class Colour(BaseModel):
    name: Literal["red", "green", "blue"]
    shades: list[str] = Field(min_length=1, max_length=3)


def openai_sdk(client):
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        chat = client.chat.completions.create(model="chat", messages=ASK, tools=TOOLS, tool_choice=choice,
                                              max_tokens=100, temperature=0)
        check(chat.choices[0].message.tool_calls, chat)
        call = chat.choices[0].message.tool_calls[0]
        check(chat.choices[0].finish_reason == "tool_calls", chat)
        check(call.function.name == "get_weather" and valid_arguments(call.function.arguments), call)
        # Streamed: the deltas reassemble into a valid call.
        streamed, finish = {}, None
        for chunk in client.chat.completions.create(model="chat", messages=ASK, tools=TOOLS, tool_choice=choice,
                                                    max_tokens=100, temperature=0, stream=True):
            if not chunk.choices:
                continue
            for piece in chunk.choices[0].delta.tool_calls or []:
                name, arguments = streamed.get(piece.index, ("", ""))
                streamed[piece.index] = (name + (piece.function.name or ""),
                                         arguments + (piece.function.arguments or ""))
            finish = chunk.choices[0].finish_reason or finish
        whole = [(c.function.name, c.function.arguments) for c in chat.choices[0].message.tool_calls]
        check([streamed[i] for i in sorted(streamed)] == whole and finish == "tool_calls", (streamed, whole))

    # The tool's result goes back as a `tool` turn; the assistant turn has content null.
    turns = ASK + [chat.choices[0].message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    answer = client.chat.completions.create(model="chat", messages=turns, tools=TOOLS, max_tokens=40, temperature=0)
    check(answer.choices[0].message.content or answer.choices[0].message.tool_calls, answer)

    parsed = client.chat.completions.parse(model="chat", messages=[{"role": "user", "content": "Pick a colour."}],
                                           response_format=Colour, max_tokens=120, temperature=0)
    colour = parsed.choices[0].message.parsed
    check(isinstance(colour, Colour) and 1 <= len(colour.shades) <= 3, parsed)

    chat = client.chat.completions.create(model="chat", messages=ASK, max_tokens=8, temperature=0,
                                          logprobs=True, top_logprobs=5)
    for entry in chat.choices[0].logprobs.content:
        values = [t.logprob for t in entry.top_logprobs]
        check(len(values) == 5 and values == sorted(values, reverse=True) and values[0] <= 0, entry)
        check(entry.top_logprobs[0].token == entry.token, entry)
    try:
        client.chat.completions.create(model="chat", messages=ASK, logprobs=True, top_logprobs=21)
        check(False, "top_logprobs 21 was accepted")
    except openai.BadRequestError as e:
        check("top_logprobs" in str(e), e)

    response = client.responses.create(model="chat", input="Say hello.", max_output_tokens=16, temperature=0)
    check(response.output_text, response)
    events = list(client.responses.create(model="chat", input="Say hello.", max_output_tokens=16,
                                          temperature=0, stream=True))
    kinds = [e.type for e in events]
    check(kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds)
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    check(streamed == response.output_text, (streamed, response.output_text))
    flat = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}]
    response = client.responses.create(model="chat", input="Weather in Oslo?", tools=flat, tool_choice="required",
                                       max_output_tokens=100, temperature=0)
    calls = [item for item in response.output if item.type == "function_call"]
    check(calls and calls[0].name == "get_weather" and valid_arguments(calls[0].arguments), response)
    response = client.responses.create(
        model="chat", input="Pick a colour.", max_output_tokens=120, temperature=0,
        text={"format": {"type": "json_schema", "name": "colour", "strict": True, "schema": Colour.model_json_schema()}})
    check(Colour.model_validate_json(response.output_text), response)


def langchain(address):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="chat", base_url=f"http://{address}/v1", api_key=modelbay_server.API_KEY,
                     temperature=0, max_tokens=120, max_retries=0)

    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
        """Weather in a city."""
        return "sunny"

    message = llm.bind_tools([get_weather], tool_choice="required").invoke("What is the weather in Paris?")
    check(message.tool_calls and message.tool_calls[0]["name"] == "get_weather", message)
    check(message.tool_calls[0]["args"].get("unit") in ("celsius", "fahrenheit"), message.tool_calls)
    colour = llm.with_structured_output(Colour).invoke("Pick a colour.")
    check(isinstance(colour, Colour), colour)


def agents_sdk(address):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from agents.model_settings import ModelSettings

    set_tracing_disabled(True)
    called = []

    @function_tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        called.append(city)
        return f"It is sunny in {city}."

    client = openai.AsyncOpenAI(base_url=f"http://{address}/v1", api_key=modelbay_server.API_KEY, max_retries=0)
    agent = Agent(name="weather", instructions="Answer with the weather tool.", tools=[get_weather],
                  model=OpenAIResponsesModel(model="chat", openai_client=client),
                  model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=100),
                  tool_use_behavior="stop_on_first_tool")
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=3))
    check(called and result.final_output.startswith("It is sunny in"), (called, result.final_output))


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/modelbay")
    model = os.environ.get("MODELBAY_SMOLLM2", str(ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    with tempfile.TemporaryDirectory() as data_dir:
        proc, address = start_server(binary, data_dir, "--llm-threads", "2")
        try:
            push(address, "chat", model)
            client = openai.OpenAI(base_url=f"http://{address}/v1", api_key=modelbay_server.API_KEY, max_retries=0)
            openai_sdk(client)
            langchain(address)
            agents_sdk(address)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"openai SDK, LangChain and Agents SDK check: {checks} checks passed")


if __name__ == "__main__":
    main()
