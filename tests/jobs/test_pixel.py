"""Tests for jobs.protocols.pixel: parsing and checking the pixels the SEMOSS SDK and frontend send."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.protocols.pixel import (
    REACTORS,
    EmbeddingsCall,
    LLMCall,
    MetaCall,
    ModelAPICall,
    Pixel,
    PixelError,
    RoomMessagesCall,
    ValueKind,
    llm_call,
    model_api_call,
    parse_call,
    parse_pixel,
    room_messages_call,
    validate_pixel,
)


def sdk_llm_pixel(
    engine_id: str,
    command: str | None = None,
    room_id: str | None = None,
    context: str | None = None,
    image: list[str] | None = None,
    url: list[str] | None = None,
    use_history: bool | None = True,
    param_dict: dict[str, Any] | None = None,
) -> str:
    """The pixel exactly as ai-server-sdk's ModelEngine.ask builds it (same f-strings)."""
    command_param = f', command="<encode>{command}</encode>"' if (command is not None) else ""
    optional_room_id_param = f', roomId="<encode>{room_id}</encode>"' if (room_id is not None) else ""
    optional_context = f', context=["<encode>{context}</encode>"]' if (context is not None) else ""
    optional_param_dict = (
        f", paramValues=[{json.dumps(param_dict, ensure_ascii=False)}]" if (param_dict is not None) else ""
    )
    optional_image_param = f",image={image}" if (image is not None) else ""
    optional_url_param = f",url={url}" if (url is not None) else ""
    optional_use_history_param = (
        f", useHistory={str(use_history).lower()}" if (use_history is not None) else ""
    )
    return (
        f'LLM(engine="{engine_id}"{command_param}{optional_context}{optional_use_history_param}'
        f"{optional_param_dict}{optional_room_id_param}{optional_image_param}{optional_url_param});"
    )


def sdk_model_api_pixel(engine_id: str) -> str:
    return f'GetModelAPI(model="{engine_id}");'


def sdk_room_messages_pixel(insight_id: str) -> str:
    return f'GetRoomMessages(roomId="{insight_id}");'


def command_of(text: str) -> str:
    return parse_pixel(f'LLM(engine="e", command="<encode>{text}</encode>");').args["command"]


RICH_PARAMS: dict[str, Any] = {
    "temperature": 0.2,
    "max_new_tokens": 256,
    "stop": ["\n\n", "END"],
    "seed": 7,
    "logit_bias": {"50256": -100},
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ],
    "metadata": {"note": 'quote " bracket ] brace } paren ) </encode> ünïcødé 🙂'},
    "full_prompt": [
        {"role": "system", "content": "You are terse.\nAnswer in French."},
        {"role": "user", "content": 'Say "bonjour", (please) [now] {ok}\\ 日本語 🎉'},
    ],
    "stream": True,
    "n": None,
}


# -- what the SDK sends ------------------------------------------------------------------------


def test_it_parses_meta_true_as_a_new_insight() -> None:
    assert parse_pixel("META | true") == Pixel("META", {})


@pytest.mark.parametrize("text", ["META | true;", "  META|true ; \n", "\tMETA  |  true\n"])
def test_it_accepts_meta_with_spacing_and_a_trailing_semicolon(text: str) -> None:
    assert parse_pixel(text) == Pixel("META", {})
    assert parse_call(text) == MetaCall()


def test_it_parses_the_sdk_ask_pixel_with_every_argument() -> None:
    pixel_text = sdk_llm_pixel(
        "2c8c41da-391a-4aa8-a170-9a6ac2c6a16d",
        command="What is 2+2?",
        room_id="room-1",
        context="Be brief.",
        image=["data:image/png;base64,iVBORw0KGgo="],
        url=["https://example.com/cat.png", "https://example.com/dog.png"],
        use_history=False,
        param_dict=RICH_PARAMS,
    )

    pixel = parse_pixel(pixel_text)

    assert pixel == Pixel(
        "LLM",
        {
            "engine": "2c8c41da-391a-4aa8-a170-9a6ac2c6a16d",
            "command": "What is 2+2?",
            "context": ["Be brief."],
            "useHistory": False,
            "paramValues": [RICH_PARAMS],
            "roomId": "room-1",
            "image": ["data:image/png;base64,iVBORw0KGgo="],
            "url": ["https://example.com/cat.png", "https://example.com/dog.png"],
        },
    )
    assert llm_call(pixel) == LLMCall(
        engine="2c8c41da-391a-4aa8-a170-9a6ac2c6a16d",
        command="What is 2+2?",
        context="Be brief.",
        use_history=False,
        param_values=RICH_PARAMS,
        room_id="room-1",
        image=["data:image/png;base64,iVBORw0KGgo="],
        url=["https://example.com/cat.png", "https://example.com/dog.png"],
    )


def test_it_parses_the_sdk_pixel_with_only_an_engine_and_a_command() -> None:
    call = parse_call(sdk_llm_pixel("gpt", command="hi"))

    assert call == LLMCall(engine="gpt", command="hi", use_history=True)


def test_it_fills_defaults_when_the_sdk_leaves_optional_arguments_out() -> None:
    call = llm_call(parse_pixel(sdk_llm_pixel("gpt", command="hi", use_history=None)))

    assert call.use_history is True
    assert (call.context, call.room_id, call.param_values, call.image, call.url) == (
        None,
        None,
        {},
        [],
        [],
    )


def test_it_parses_a_full_prompt_pixel_without_a_command() -> None:
    params = {"full_prompt": RICH_PARAMS["full_prompt"], "temperature": 0}

    call = llm_call(parse_pixel(sdk_llm_pixel("gpt", param_dict=params)))

    assert call.command is None
    assert call.param_values == params


def test_it_parses_the_stream_ask_pixel_with_stream_true() -> None:
    params = {"max_new_tokens": 10, "stream": True}

    call = llm_call(parse_pixel(sdk_llm_pixel("gpt", command="hi", room_id="r", param_dict=params)))

    assert call.param_values == {"max_new_tokens": 10, "stream": True}
    assert call.room_id == "r"


def test_it_reads_python_list_reprs_with_single_and_double_quoted_items() -> None:
    image = ["it's a quote", "plain", "back\\slash", "tab\there"]

    call = llm_call(parse_pixel(sdk_llm_pixel("gpt", command="hi", image=image, url=[])))

    assert call.image == image
    assert call.url == []


def test_it_parses_the_sdk_get_model_api_pixel() -> None:
    pixel = parse_pixel(sdk_model_api_pixel("abc-123"))

    assert pixel == Pixel("GetModelAPI", {"model": "abc-123"})
    assert model_api_call(pixel) == ModelAPICall(model="abc-123")


def test_it_parses_the_sdk_get_room_messages_pixel_without_encode_tags() -> None:
    pixel = parse_pixel(sdk_room_messages_pixel("d6c7-insight"))

    assert pixel == Pixel("GetRoomMessages", {"roomId": "d6c7-insight"})
    assert room_messages_call(pixel) == RoomMessagesCall(room_id="d6c7-insight")


def test_it_parses_pixels_captured_from_the_real_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    server_client = pytest.importorskip("ai_server.server_resources.server_client")
    model_module = pytest.importorskip("ai_server.py_client.gaas.model")
    sent: list[str] = []

    class RecordingServer:
        def run_pixel(self, payload: str, **_: Any) -> dict[str, Any]:
            sent.append(payload)
            return {"pixelReturn": [{"operationType": ["OPERATION"], "output": "ok"}]}

    monkeypatch.setattr(server_client.ServerClient, "da_server", RecordingServer(), raising=False)
    model = model_module.ModelEngine(engine_id="eng", insight_id="ins")
    model.ask(
        command='He said "hi" (twice), then [left]\n',
        room_id="room",
        context="ctx 🙂",
        image=["it's"],
        url=["https://x.test/a.png"],
        param_dict={"temperature": 0.5, "full_prompt": [{"role": "user", "content": "é"}]},
    )
    model.get_model_type()
    model.get_conversation_history()

    assert parse_call(sent[0]) == LLMCall(
        engine="eng",
        command='He said "hi" (twice), then [left]\n',
        context="ctx 🙂",
        use_history=True,
        param_values={"temperature": 0.5, "full_prompt": [{"role": "user", "content": "é"}]},
        room_id="room",
        image=["it's"],
        url=["https://x.test/a.png"],
    )
    assert parse_call(sent[1]) == ModelAPICall(model="eng")
    assert parse_call(sent[2]) == RoomMessagesCall(room_id="ins")


# -- encoded text is raw -------------------------------------------------------------------------


def test_it_keeps_quotes_and_newlines_inside_encode() -> None:
    assert command_of("line one \"quoted\"\nline 'two'\r\n") == "line one \"quoted\"\nline 'two'\r\n"


@pytest.mark.parametrize(
    "text",
    [
        "f(x, y) = [1, 2]; {a: b}",
        'ends with a quote"',
        "ends with a paren)",
        "ends with a bracket]",
        "ends with a brace}",
        "C:\\path\\to\\file \\n is not a newline \\u0041",
        "naïve café — 日本語 — עברית",
        "emoji 🙂👩‍👩‍👧 and \u200b zero width",
        "",
        "   ",
        "<encode>nested opener",
    ],
)
def test_it_passes_encoded_text_through_untouched(text: str) -> None:
    assert command_of(text) == text


def test_it_does_not_read_encoded_text_that_looks_like_more_arguments_as_arguments() -> None:
    sneaky = '", roomId="evil", useHistory=false, paramValues=[{"stream": true}]); META | true; x("'

    pixel = parse_pixel(sdk_llm_pixel("gpt", command=sneaky, context=sneaky))

    assert pixel.args == {
        "engine": "gpt",
        "command": sneaky,
        "context": [sneaky],
        "useHistory": True,
    }


def test_it_ends_encoded_text_at_the_first_closing_tag() -> None:
    with pytest.raises(PixelError, match=r"Expected \" right after '</encode>'"):
        parse_pixel(sdk_llm_pixel("gpt", command="a</encode>b"))


def test_it_decodes_backslash_escapes_in_quoted_strings() -> None:
    pixel = parse_pixel(r'LLM(engine="a\"b\\c\nd\te\u00e9\ud83d\ude42\/", command=' + "'it\\'s')")

    assert pixel.args == {"engine": 'a"b\\c\nd\teé🙂/', "command": "it's"}


def test_it_reads_numbers_null_and_nested_lists_as_values() -> None:
    pixel = parse_pixel('X(a=-1.5e3, b=0, c=null, d=[[1], [], [\'x\', "y"]], e={"k": [1, {}]})')

    assert pixel.args == {
        "a": -1500.0,
        "b": 0,
        "c": None,
        "d": [[1], [], ["x", "y"]],
        "e": {"k": [1, {}]},
    }


def test_it_accepts_an_empty_argument_list_and_spaces_around_tokens() -> None:
    assert parse_pixel("  Foo ( ) ; ") == Pixel("Foo", {})
    assert parse_pixel('LLM ( engine = "a" , useHistory = true )').args == {
        "engine": "a",
        "useHistory": True,
    }


def test_it_keeps_argument_names_case_sensitive() -> None:
    pixel = parse_pixel('LLM(engine="a", Engine="b")')

    assert pixel.args == {"engine": "a", "Engine": "b"}
    with pytest.raises(PixelError, match="Unknown argument 'Engine' for LLM"):
        validate_pixel(pixel)


# -- syntax errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The pixel is empty"),
        ("   \n", "The pixel is empty"),
        (";", "Expected a reactor name"),
        ('LLM(engine="a"); LLM(engine="b");', "Expected the end of the pixel after one reactor"),
        ("META | true; META | true", "Expected the end of the pixel after one reactor"),
        ('Storage("x")|Foo()', "Expected an argument name"),
        ('GetModelAPI(model="m")|Foo()', "Pipes are not supported"),
        ('LLM(engine="a"', "Expected ',' or ')' after argument 'engine' at position 14"),
        ('LLM(engine="a"))', "after one reactor at position 15"),
        ('LLM(engine="a" command="b")', "Expected ',' or ')' after argument 'engine'"),
        ('LLM engine="a")', "Expected '(' after reactor name 'LLM'"),
        ('LLM(engine="a", context=["x")', "Expected ',' or ']' in the list for argument 'context'"),
        ('LLM(engine="a",)', "Expected an argument name"),
        ('LLM(engine "a")', "Expected '=' after argument name 'engine'"),
        ("LLM(engine=)", "Expected a value for argument 'engine'"),
        ("LLM(useHistory=True)", "Expected a value for argument 'useHistory'"),
        ('LLM(engine="a) x', 'Unterminated string: no closing " for the quote at position 11'),
        ("LLM(engine='a)", "Unterminated string: no closing ' for the quote"),
        ('LLM(engine="a\\', "Unterminated string: the text ends inside an escape"),
        ('LLM(engine="a", command="<encode>never closed)', "Unterminated <encode>"),
        ('LLM(engine="a", command="<encode>x</encode>)', "Expected \" right after '</encode>'"),
        ('LLM(engine="a\\q")', "Unknown escape '\\q'"),
        ('LLM(engine="\\u12")', "Expected 4 hex digits after '\\u'"),
        ('LLM(engine="\\ud800")', "Escape does not name a character (U+D800)"),
        ('LLM(engine="\\ud83d\\u0041")', "Escape does not name a character (U+D83D)"),
        ('LLM(engine="\\U00110000")', "Escape does not name a character (U+110000)"),
        ("META | false", "Expected '| true' after 'META'"),
        ("META()", "Expected '| true' after 'META'"),
        ("META | true garbage", "Expected the end of the pixel after one reactor"),
        ('LLM(engine="a") x', "after one reactor at position 16 (near 'x')"),
        ("LLM(a=" + "[" * 40 + "]" * 40 + ")", "Lists nested more than 32 deep"),
        ("LLM(a=" + "9" * 5000 + ")", "Number too long"),
    ],
)
def test_it_rejects_malformed_pixels_with_a_message_saying_what_and_where(text: str, message: str) -> None:
    with pytest.raises(PixelError) as caught:
        parse_pixel(text)

    assert message in str(caught.value)


def test_it_reports_the_position_and_an_excerpt_of_a_syntax_error() -> None:
    with pytest.raises(PixelError) as caught:
        parse_pixel('LLM(engine="abc" junk junk junk junk junk junk)')

    assert caught.value.position == 17
    assert str(caught.value) == (
        "Expected ',' or ')' after argument 'engine' at position 17 (near 'junk junk junk junk junk...')"
    )


def test_it_rejects_an_argument_given_twice() -> None:
    with pytest.raises(PixelError, match="Argument 'engine' is given twice at position 16"):
        parse_pixel('LLM(engine="a", engine="b")')


@pytest.mark.parametrize(
    "param_text",
    [
        "[{'temperature': 0.1}]",
        '[{"temperature": 0.1,}]',
        '[{"temperature": NaN}]',
        '[{"a": ' + "[" * 100_000 + "]",
        '[{"a": ' + "1" * 5000 + "}]",
        '[{"a": "unterminated}]',
    ],
)
def test_it_rejects_param_values_that_are_not_json(param_text: str) -> None:
    with pytest.raises(PixelError, match="Invalid JSON object in argument 'paramValues'"):
        parse_pixel(f'LLM(engine="a", paramValues={param_text})')


def test_it_points_at_the_spot_where_the_json_breaks() -> None:
    text = 'LLM(engine="a", paramValues=[{"t": 1 "u": 2}])'

    with pytest.raises(PixelError) as caught:
        parse_pixel(text)

    assert caught.value.position == text.index('"u"')
    assert "Expecting ',' delimiter" in str(caught.value)


def test_it_refuses_input_that_is_not_text() -> None:
    with pytest.raises(PixelError, match="Expected the pixel as text, got bytes"):
        parse_pixel(b"META | true")  # type: ignore[arg-type]


# -- validation ----------------------------------------------------------------------------------


def test_it_lists_the_supported_reactors_with_their_arguments() -> None:
    assert sorted(REACTORS) == ["Embeddings", "GetModelAPI", "GetRoomMessages", "LLM", "META"]
    assert REACTORS["Embeddings"].required == ("engine", "values")
    assert set(REACTORS["LLM"].arguments) == {
        "engine",
        "command",
        "context",
        "useHistory",
        "paramValues",
        "roomId",
        "image",
        "url",
    }
    assert REACTORS["LLM"].required == ("engine",)
    assert REACTORS["LLM"].arguments["paramValues"].kind is ValueKind.JSON_OBJECT_LIST
    assert REACTORS["GetModelAPI"].required == ("model",)
    assert REACTORS["GetRoomMessages"].required == ("roomId",)
    assert dict(REACTORS["META"].arguments) == {}


def test_it_rejects_an_unknown_reactor_and_names_the_supported_ones() -> None:
    with pytest.raises(PixelError) as caught:
        validate_pixel(parse_pixel('Foo(engine="a")'))

    assert str(caught.value) == (
        "Unknown reactor 'Foo'. Supported: Embeddings, GetModelAPI, GetRoomMessages, LLM, META"
    )


def test_it_rejects_an_unknown_argument_and_names_the_allowed_ones() -> None:
    with pytest.raises(PixelError) as caught:
        validate_pixel(parse_pixel('LLM(engine="a", temperature=0.2)'))

    assert str(caught.value) == (
        "Unknown argument 'temperature' for LLM. Allowed: command, context, engine, image, "
        "paramValues, roomId, url, useHistory"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('LLM(command="<encode>hi</encode>")', "LLM requires argument 'engine'"),
        ("GetModelAPI()", "GetModelAPI requires argument 'model'"),
        ("GetRoomMessages()", "GetRoomMessages requires argument 'roomId'"),
        ('LLM(engine="")', "engine must not be empty"),
    ],
)
def test_it_rejects_a_missing_required_argument(text: str, message: str) -> None:
    with pytest.raises(PixelError, match=message):
        validate_pixel(parse_pixel(text))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('paramValues={"a": 1}', "paramValues must be a list holding one JSON object, got a JSON"),
        ('paramValues=[{"a": 1}, {"b": 2}]', "paramValues must be a list holding one JSON object"),
        ("paramValues=[]", "paramValues must be a list holding one JSON object, got an empty"),
        ('paramValues=["{}"]', "paramValues must be a list holding one JSON object, got a list"),
        ("paramValues=[[{}]]", "paramValues must be a list holding one JSON object"),
        ('useHistory="true"', "useHistory must be true or false, got a string"),
        ("useHistory=1", "useHistory must be true or false, got a number"),
        ('context="<encode>x</encode>"', "context must be a list of strings, got a string"),
        ("image=['a', 1]", "image must be a list of strings, got a list holding a number, a str"),
        ("url=null", "url must be a list of strings, got null"),
        ("command=true", "command must be a string, got a boolean"),
        ('roomId=["r"]', "roomId must be a string, got a list holding a string"),
    ],
)
def test_it_rejects_an_argument_of_the_wrong_kind(args: str, message: str) -> None:
    with pytest.raises(PixelError, match=message):
        validate_pixel(parse_pixel(f'LLM(engine="e", {args})'))


def test_it_rejects_engine_given_as_a_number() -> None:
    with pytest.raises(PixelError, match="engine must be a string, got a number"):
        parse_call("LLM(engine=5)")


def test_it_takes_the_first_context_entry_as_the_context() -> None:
    call = llm_call(parse_pixel('LLM(engine="e", context=["<encode>one</encode>", "two"])'))

    assert call.context == "one"
    assert llm_call(parse_pixel('LLM(engine="e", context=[])')).context is None


def test_it_refuses_a_typed_view_of_another_reactor() -> None:
    with pytest.raises(PixelError, match="Expected a pixel for LLM, got one for 'GetModelAPI'"):
        llm_call(parse_pixel('GetModelAPI(model="m")'))


def test_it_validates_before_building_a_typed_view() -> None:
    with pytest.raises(PixelError, match="LLM requires argument 'engine'"):
        llm_call(Pixel("LLM", {"command": "hi"}))


def test_it_rejects_an_unknown_reactor_in_parse_call() -> None:
    with pytest.raises(PixelError, match="Unknown reactor 'CreateEmbeddingsFromDocuments'"):
        parse_call('CreateEmbeddingsFromDocuments(engine="e", filePaths=["a.pdf"])')


# -- properties ----------------------------------------------------------------------------------


@given(st.text().filter(lambda text: "</encode>" not in text))
@example('"), x=(')
@example("\\")
@example("</encod")
def test_any_text_without_a_closing_tag_round_trips_through_encode(text: str) -> None:
    assert command_of(text) == text
    assert llm_call(parse_pixel(sdk_llm_pixel("e", command=text, context=text))).context == text


def _outcome(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except PixelError as err:
        return err


@given(st.text())
@example("LLM(a=" + "[" * 2000)
@example('LLM(a={"x":' + "[" * 5000)
def test_parsing_arbitrary_text_returns_a_pixel_or_raises_pixel_error(text: str) -> None:
    assert isinstance(_outcome(parse_pixel, text), Pixel | PixelError)


_VALID_PIXELS = [
    "META | true",
    sdk_model_api_pixel("m-1"),
    sdk_room_messages_pixel("room"),
    sdk_llm_pixel(
        "e",
        command='q "x" (y)',
        room_id="r",
        context="c",
        image=["it's"],
        url=["u"],
        param_dict={"full_prompt": [{"role": "user", "content": "hi"}], "temperature": 0.1},
    ),
]
_PIXEL_CHARACTERS = st.sampled_from(list("\"'\\()[]{},=;|<>/: \nencodeLLMtrue0-.9\ud83d🙂"))


@st.composite
def mutated_pixels(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_VALID_PIXELS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        if action == "insert":
            text = text[:at] + draw(_PIXEL_CHARACTERS) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        elif action == "replace":
            text = text[:at] + draw(_PIXEL_CHARACTERS) + text[at + 1 :]
        else:
            text = text[:at]
    return text


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pixels())
def test_parsing_a_mutated_pixel_returns_a_pixel_or_raises_pixel_error(text: str) -> None:
    assert isinstance(_outcome(parse_pixel, text), Pixel | PixelError)
    # Whatever parses must also get through validation and typing without any other exception.
    assert isinstance(
        _outcome(parse_call, text),
        MetaCall | LLMCall | ModelAPICall | RoomMessagesCall | PixelError,
    )


# ---- Embeddings, as ModelEngine.embeddings builds it ----------------------------------------


def sdk_embeddings_pixel(engine_id: str, values: list[str], param_dict: dict[str, Any] | None = None) -> str:
    """The pixel exactly as ai-server-sdk's ModelEngine.embeddings writes it (values by repr())."""
    params = f",paramValues=[{json.dumps(param_dict, ensure_ascii=False)}]" if param_dict is not None else ""
    return f'Embeddings(engine="{engine_id}", values={values}{params});'


@given(st.lists(st.text(st.characters(codec="utf-8")), max_size=5))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@example(["a", "b"])
@example(["it's", 'say "hi"', "both ' and \"", "tab\tnew\nline", "\x00\x07\x7f", "☃ 東京", "\\"])
def test_the_sdks_embeddings_pixel_gives_back_every_string_exactly(values: list[str]) -> None:
    call = parse_call(sdk_embeddings_pixel("eng-1", values))
    assert isinstance(call, EmbeddingsCall)
    assert call == EmbeddingsCall(engine="eng-1", values=values)


def test_embeddings_param_values_are_read_and_encoded_values_are_decoded() -> None:
    call = parse_call(sdk_embeddings_pixel("e", ["x"], {"dimensions": 8}))
    assert call == EmbeddingsCall(engine="e", values=["x"], param_values={"dimensions": 8})
    encoded = parse_call('Embeddings(engine="e", values=["a%20b%27c"], encoded=true);')
    assert encoded == EmbeddingsCall(engine="e", values=["a b'c"])


@pytest.mark.parametrize(
    ("pixel", "message"),
    [
        ('Embeddings(engine="e");', "Embeddings requires argument 'values'"),
        ('Embeddings(values=["a"]);', "Embeddings requires argument 'engine'"),
        ('Embeddings(engine="e", values=["a", 1]);', "values must be a list of strings"),
        ('Embeddings(engine="e", values="a");', "values must be a list of strings"),
        ('Embeddings(engine="e", values=["a"], command="x");', "Unknown argument 'command' for Embeddings"),
    ],
)
def test_a_malformed_embeddings_pixel_says_what_is_wrong(pixel: str, message: str) -> None:
    with pytest.raises(PixelError, match=message):
        parse_call(pixel)
