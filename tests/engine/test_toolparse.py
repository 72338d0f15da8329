"""The text tool-call parser and prompt rendering, wherever token boundaries fall."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.toolparse import (
    OPEN,
    ToolCallParser,
    render_messages,
    render_tool_call,
    tools_system_prompt,
)
from engine.types import CONTENT, TOOL, Chunk
from tests.support import WEATHER_TOOL as WEATHER


def run(pieces: list[str]) -> list[Chunk]:
    parser = ToolCallParser()
    out: list[Chunk] = []
    for piece in pieces:
        out += parser.feed(piece)
    return out + parser.finish()


def content_of(chunks: list[Chunk]) -> str:
    return "".join(c.data["content"] for c in chunks if c.type == CONTENT)


def calls_of(chunks: list[Chunk]) -> list[dict[str, Any]]:
    """Reassemble tool calls from fragments, checking the fragment shape on the way."""
    calls: list[dict[str, Any]] = []
    for chunk in chunks:
        if chunk.type != TOOL:
            continue
        data = chunk.data
        if "id" in data:
            assert data["index"] == len(calls), "calls are numbered 0, 1, ... in order"
            assert data["id"].startswith("call_")
            assert set(data) <= {"index", "id", "name", "arguments"}
            calls.append({"id": data["id"], "name": data["name"], "arguments": ""})
            calls[-1]["arguments"] += data.get("arguments", "")
        else:
            assert set(data) == {"index", "arguments"}
            assert data["index"] == len(calls) - 1, "fragments follow their call's first fragment"
            assert data["arguments"], "no empty argument fragments"
            calls[-1]["arguments"] += data["arguments"]
    return calls


def assert_well_formed(chunks: list[Chunk], texts: list[str], calls: list[tuple[str, Any]]) -> None:
    """texts[i] precedes call i; texts[-1] follows the last call."""
    assert all(c.data.get("content") != "" for c in chunks if c.type == CONTENT)
    seen = ""
    for chunk in chunks:  # each call starts exactly after the text written before it
        if chunk.type == CONTENT:
            seen += chunk.data["content"]
        elif "id" in chunk.data:
            assert seen == "".join(texts[: chunk.data["index"] + 1])
    assert content_of(chunks) == "".join(texts)
    got = calls_of(chunks)
    assert [c["name"] for c in got] == [name for name, _ in calls]
    assert [json.loads(c["arguments"]) for c in got] == [args for _, args in calls]
    assert len({c["id"] for c in got}) == len(got)


# -- property: every split of markup into tokens --------------------------------------------


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    _containers,
    max_leaves=8,
)
arguments = st.dictionaries(
    st.text(max_size=8) | st.sampled_from(["name", "arguments", "<tool_call>", '"', "\\"]),
    json_values | st.sampled_from(["</tool_call>", "<tool_call>", '{"a": "}"}', "\\u0041"]),
    max_size=4,
)
names = st.text(min_size=1, max_size=12) | st.sampled_from(["get_current_weather", "f"])
texts = (
    st.lists(
        st.text(max_size=6)
        | st.sampled_from(["<", "<tool", "<tool_call", "tool_call>", "</tool_call>", "{", '"', "\n"]),
        max_size=5,
    )
    .map("".join)
    .filter(lambda s: OPEN not in s)
)


@st.composite
def markup(draw: st.DrawFn) -> tuple[str, list[str], list[tuple[str, Any]], list[str]]:
    calls = draw(st.lists(st.tuples(names, arguments), max_size=3))
    pieces = [draw(texts) for _ in range(len(calls) + 1)]
    text = pieces[0]
    raw_args = []
    for (name, args), after in zip(calls, pieces[1:], strict=True):
        ascii_only = draw(st.booleans())
        obj = {"name": name, "arguments": args}
        if draw(st.booleans()):  # the model may write the arguments before the name
            obj = {"arguments": args, "name": name}
        body = json.dumps(obj, ensure_ascii=ascii_only)
        raw_args.append(json.dumps(args, ensure_ascii=ascii_only))
        inner, outer = draw(st.sampled_from([("", ""), ("\n", "\n"), (" ", "\n  ")]))
        text += f"{OPEN}{inner}{body}{outer}</tool_call>{after}"
    return text, pieces, calls, raw_args


@settings(max_examples=300, deadline=None)
@given(markup(), st.data())
def test_markup_split_anywhere_yields_the_same_content_and_calls(example, data) -> None:
    text, pieces, calls, raw_args = example
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    tokens = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    chunks = run(tokens)
    assert_well_formed(chunks, pieces, calls)
    # the concatenated fragments are the arguments exactly as written, not just equal JSON
    assert [c["arguments"] for c in calls_of(chunks)] == raw_args


EXAMPLE_TEXTS = ["Sure <tool_c>, checking: ", "\n", " <done>"]
EXAMPLE_CALLS = [
    ("get_current_weather", {"location": 'Bo"st<on', "unit": "celsius"}),
    ("lookup", {"q": "</tool_call>", "nested": {"a": [1, {"b": "}"}]}, "ü": "東京"}),
]
EXAMPLE = (
    EXAMPLE_TEXTS[0]
    + render_tool_call(*EXAMPLE_CALLS[0])
    + EXAMPLE_TEXTS[1]
    + f"{OPEN}\n"
    + json.dumps({"arguments": EXAMPLE_CALLS[1][1], "name": "lookup"}, ensure_ascii=False)
    + "\n</tool_call>"
    + EXAMPLE_TEXTS[2]
)


def test_one_example_split_at_every_single_point_parses_the_same() -> None:
    for cut in range(len(EXAMPLE) + 1):
        chunks = run([EXAMPLE[:cut], EXAMPLE[cut:]])
        assert_well_formed(chunks, EXAMPLE_TEXTS, EXAMPLE_CALLS)


def test_one_example_split_at_every_pair_of_points_parses_the_same() -> None:
    for first in range(0, len(EXAMPLE) + 1, 3):
        for second in range(first, len(EXAMPLE) + 1):
            chunks = run([EXAMPLE[:first], EXAMPLE[first:second], EXAMPLE[second:]])
            assert_well_formed(chunks, EXAMPLE_TEXTS, EXAMPLE_CALLS)


def test_one_example_fed_a_character_at_a_time_parses_the_same() -> None:
    assert_well_formed(run(list(EXAMPLE)), EXAMPLE_TEXTS, EXAMPLE_CALLS)


# -- streaming behaviour ---------------------------------------------------------------------


def test_plain_text_comes_out_at_once_and_only_a_possible_tag_start_is_held() -> None:
    parser = ToolCallParser()
    assert content_of(parser.feed("Hello")) == "Hello"
    assert content_of(parser.feed(" a <tool")) == " a "
    assert content_of(parser.feed("box>!")) == "<toolbox>!"
    assert content_of(parser.feed("1 < 2")) == "1 < 2"
    assert parser.finish() == []


def test_a_held_tag_start_is_flushed_at_finish() -> None:
    parser = ToolCallParser()
    assert content_of(parser.feed("x <tool_ca")) == "x "
    assert content_of(parser.finish()) == "<tool_ca"


def test_arguments_stream_before_the_call_closes() -> None:
    parser = ToolCallParser()
    first = parser.feed('<tool_call>{"name": "f", "arguments": {"city": "Bos')
    assert [c.data for c in first][0]["name"] == "f"
    assert "".join(c.data.get("arguments", "") for c in first) == '{"city": "Bos'
    second = parser.feed('ton"}}</tool_call>')
    assert [c.data for c in second] == [{"index": 0, "arguments": 'ton"}'}]
    assert parser.called


def test_arguments_written_before_the_name_are_sent_once_the_name_is_read() -> None:
    parser = ToolCallParser()
    assert parser.feed('<tool_call>{"arguments": {"a": 1}, ') == []
    chunks = parser.feed('"name": "g"}</tool_call>') + parser.finish()
    assert [c.data.get("name") for c in chunks if "id" in c.data] == ["g"]
    assert calls_of(chunks)[0]["arguments"] == '{"a": 1}'


def test_the_parameters_key_counts_as_arguments_and_missing_arguments_are_an_empty_object() -> None:
    chunks = run(['<tool_call>{"name": "a", "parameters": {"x": [1]}}</tool_call>'])
    chunks += run(['<tool_call>{"name": "b"}</tool_call>'])
    assert [c["arguments"] for c in calls_of(chunks[:2])] == ['{"x": [1]}']
    assert [c["arguments"] for c in calls_of(chunks[2:])] == ["{}"]


def test_arguments_written_as_a_json_string_are_unwrapped() -> None:
    chunks = run(['<tool_call>{"name": "a", "arguments": "{\\"x\\": 1}"}</tool_call>'])
    assert json.loads(calls_of(chunks)[0]["arguments"]) == {"x": 1}


def test_malformed_markup_is_flushed_back_as_content() -> None:
    for text in [
        "see <tool_call>not json</tool_call> ok",
        'a <tool_call>{"arguments": {}}</tool_call> no name',
        "<tool_call>{'name': 'f'}</tool_call>",
        '<tool_call>{"name": 3}</tool_call>',
    ]:
        chunks = run([text])
        assert content_of(chunks) == text
        assert not [c for c in chunks if c.type == TOOL]


def test_markup_still_open_without_a_name_at_finish_is_content() -> None:
    text = 'Calling <tool_call>\n{"argu'
    chunks = run([text])
    assert content_of(chunks) == text
    assert not [c for c in chunks if c.type == TOOL]


def test_a_missing_closing_tag_is_forgiven() -> None:
    chunks = run(['<tool_call>{"name": "f", "arguments": {}} and then <tool_call>{"name": "g"}'])
    assert [c["name"] for c in calls_of(chunks)] == ["f", "g"]
    assert content_of(chunks) == " and then "


def test_a_call_cut_off_after_its_name_stays_a_call() -> None:
    chunks = run(['ok <tool_call>{"name": "f", "arguments": {"a": "tru'])
    assert content_of(chunks) == "ok "
    assert calls_of(chunks) == [{"id": calls_of(chunks)[0]["id"], "name": "f", "arguments": '{"a": "tru'}]


def test_a_call_broken_after_its_name_ends_there_and_the_rest_is_content() -> None:
    chunks = run(['<tool_call>{"name": "f" oops</tool_call>'])
    assert [c["name"] for c in calls_of(chunks)] == ["f"]
    assert content_of(chunks) == "oops</tool_call>"


# -- prompting -------------------------------------------------------------------------------


def test_the_system_prompt_describes_each_tool_and_the_markup() -> None:
    prompt = tools_system_prompt([WEATHER])
    assert '"name": "get_current_weather"' in prompt
    assert '"required": ["location"]' in prompt
    assert "<tool_call>" in prompt and "</tool_call>" in prompt
    assert "must" not in prompt
    assert "must call the tool 'get_current_weather'" in tools_system_prompt(
        [WEATHER], {"type": "function", "function": {"name": "get_current_weather"}}
    )
    assert "must call at least one tool" in tools_system_prompt([WEATHER], "required")


def test_rendered_messages_have_no_tool_roles_and_merge_the_prompt_into_the_system_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Boston and Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location": "Boston"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location": "Tokyo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "18 C"}]},
    ]
    out = render_messages(messages, [WEATHER])
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith(tools_system_prompt([WEATHER]))
    assert out[0]["content"].endswith("Be brief.")
    assert all(set(m) == {"role", "content"} for m in out)
    assert 'name="get_current_weather" id="call_1"' in out[3]["content"]
    assert "22 C" in out[3]["content"] and "18 C" in out[3]["content"]
    # what we write for an earlier call, the parser reads back as that call
    calls = calls_of(run([out[2]["content"]]))
    assert [json.loads(c["arguments"]) for c in calls] == [{"location": "Boston"}, {"location": "Tokyo"}]
    assert messages[0]["content"] == "Be brief.", "the request's messages are not modified"


def test_without_a_system_message_one_is_added_first() -> None:
    out = render_messages([{"role": "user", "content": "hi"}], [WEATHER])
    assert out[0] == {"role": "system", "content": tools_system_prompt([WEATHER])}
    assert out[1] == {"role": "user", "content": "hi"}
