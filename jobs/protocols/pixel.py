"""Parse and check the SEMOSS pixels Spool runs: META | true, LLM, GetModelAPI, GetRoomMessages,
Embeddings."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import unquote

__all__ = [
    "REACTORS",
    "ArgumentSpec",
    "EmbeddingsCall",
    "LLMCall",
    "MetaCall",
    "ModelAPICall",
    "Pixel",
    "PixelCall",
    "PixelError",
    "ReactorSpec",
    "RoomMessagesCall",
    "ValueKind",
    "llm_call",
    "model_api_call",
    "parse_call",
    "embeddings_call",
    "parse_pixel",
    "room_messages_call",
    "validate_pixel",
]

ENCODE_OPEN = "<encode>"
ENCODE_CLOSE = "</encode>"
# Deeper nesting is never sent by a real client; the cap keeps hostile input from exhausting
# the Python stack (which would surface as RecursionError instead of PixelError).
MAX_LIST_DEPTH = 32
_EXCERPT_LENGTH = 24

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SPACE = re.compile(r"\s*")
_META = re.compile(r"META\s*\|\s*true")
_HEX = re.compile(r"[0-9a-fA-F]+")
# Everything up to the next closing quote or backslash, per quote style.
_PLAIN_RUN = {'"': re.compile(r'[^"\\]*'), "'": re.compile(r"[^'\\]*")}
_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_SIMPLE_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}
# \x and \U appear because the SDK writes image=/url= lists with Python's repr().
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}


class PixelError(ValueError):
    """A pixel that cannot be run; the message says what was expected and where."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Pixel:
    """One reactor call: its name and its arguments by name (as written, case-sensitive)."""

    reactor: str
    args: dict[str, Any] = field(default_factory=dict)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# NaN/Infinity are Python extensions, not JSON; refuse them like any other invalid JSON.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


class _Parser:
    """A cursor over the expression; each method consumes one grammar element."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- low-level helpers -------------------------------------------------------------------

    def fail(self, what: str, at: int | None = None) -> PixelError:
        at = self.pos if at is None else at
        return PixelError(f"{what} at position {at} ({self._near(at)})", at)

    def _near(self, at: int) -> str:
        rest = self.text[at:]
        if not rest:
            return "at end of input"
        excerpt = rest[:_EXCERPT_LENGTH] + ("..." if len(rest) > _EXCERPT_LENGTH else "")
        return f"near {excerpt!r}"

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def take(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, what: str) -> None:
        if not self.take(token):
            raise self.fail(what)

    def identifier(self, what: str) -> str:
        match = _IDENTIFIER.match(self.text, self.pos)
        if not match:
            raise self.fail(what)
        self.pos = match.end()
        return match.group()

    # -- grammar -----------------------------------------------------------------------------

    def pixel(self) -> Pixel:
        self.skip_space()
        if self.at_end():
            raise PixelError("The pixel is empty: expected a reactor such as LLM(...)", 0)
        meta = _META.match(self.text, self.pos)
        if meta:
            self.pos = meta.end()
            result = Pixel("META", {})
        else:
            result = self.call()
        self.finish()
        return result

    def call(self) -> Pixel:
        name = self.identifier("Expected a reactor name such as LLM(...)")
        self.skip_space()
        if name == "META":
            raise self.fail("Expected '| true' after 'META'")
        self.expect("(", f"Expected '(' after reactor name '{name}'")
        return Pixel(name, self.arguments())

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        self.skip_space()
        if self.take(")"):
            return args
        while True:
            start = self.pos
            name = self.identifier("Expected an argument name (like engine=...)")
            if name in args:
                raise self.fail(f"Argument '{name}' is given twice", start)
            self.skip_space()
            self.expect("=", f"Expected '=' after argument name '{name}'")
            self.skip_space()
            args[name] = self.value(name, depth=0)
            self.skip_space()
            if self.take(")"):
                return args
            self.expect(",", f"Expected ',' or ')' after argument '{name}'")
            self.skip_space()

    def finish(self) -> None:
        self.skip_space()
        self.take(";")
        self.skip_space()
        if self.at_end():
            return
        if self.peek() == "|":
            raise self.fail("Pipes are not supported; expected the end of the pixel")
        raise self.fail("Expected the end of the pixel after one reactor")

    def value(self, arg: str, depth: int) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.string()
        if char == "[":
            return self.bracket_list(arg, depth)
        if char == "{":
            return self.json_object(arg)
        if char == "-" or char.isdigit():
            return self.number(arg)
        match = _IDENTIFIER.match(self.text, self.pos)
        if match and match.group() in _KEYWORDS:
            self.pos = match.end()
            return _KEYWORDS[match.group()]
        raise self.fail(
            f"Expected a value for argument '{arg}' "
            "(a string, number, true, false, null, list or JSON object)"
        )

    def string(self) -> str:
        start = self.pos
        quote = self.text[start]
        self.pos += 1
        if self.text.startswith(ENCODE_OPEN, self.pos):
            return self.encoded(quote, start)
        pieces: list[str] = []
        while True:
            run = _PLAIN_RUN[quote].match(self.text, self.pos)
            assert run is not None  # a run of zero characters always matches
            pieces.append(run.group())
            self.pos = run.end()
            if self.at_end():
                raise self.fail(f"Unterminated string: no closing {quote} for the quote", start)
            if self.take(quote):
                return "".join(pieces)
            pieces.append(self.escape())

    def encoded(self, quote: str, start: int) -> str:
        # Encoded text is raw: nothing inside is interpreted until the first </encode>.
        content_start = self.pos + len(ENCODE_OPEN)
        end = self.text.find(ENCODE_CLOSE, content_start)
        if end < 0:
            raise self.fail("Unterminated <encode>: no '</encode>' after the <encode>", start + 1)
        self.pos = end + len(ENCODE_CLOSE)
        self.expect(quote, f"Expected {quote} right after '</encode>'")
        return self.text[content_start:end]

    def escape(self) -> str:
        start = self.pos
        letter = self.text[start + 1 : start + 2]
        if not letter:
            raise self.fail("Unterminated string: the text ends inside an escape", start)
        if letter in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[letter]
        if letter in _HEX_ESCAPE_DIGITS:
            code = self.hex_code(letter)
            return self.surrogate_pair(code, start) if letter == "u" else self.character(code, start)
        raise self.fail(f"Unknown escape '\\{letter}' in string", start)

    def hex_code(self, letter: str) -> int:
        digits = _HEX_ESCAPE_DIGITS[letter]
        start = self.pos
        text = self.text[start + 2 : start + 2 + digits]
        if len(text) != digits or not _HEX.fullmatch(text):
            raise self.fail(f"Expected {digits} hex digits after '\\{letter}'", start)
        self.pos = start + 2 + digits
        return int(text, 16)

    def surrogate_pair(self, high: int, start: int) -> str:
        # JSON spells characters beyond U+FFFF as two \u escapes; join them into one character.
        if 0xD800 <= high <= 0xDBFF and self.text.startswith("\\u", self.pos):
            low = self.hex_code("u")
            if 0xDC00 <= low <= 0xDFFF:
                return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        return self.character(high, start)

    def character(self, code: int, start: int) -> str:
        # A lone surrogate would only fail later, when the text is encoded as UTF-8.
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            raise self.fail(f"Escape does not name a character (U+{code:04X})", start)
        return chr(code)

    def bracket_list(self, arg: str, depth: int) -> list[Any]:
        if depth >= MAX_LIST_DEPTH:
            raise self.fail(f"Lists nested more than {MAX_LIST_DEPTH} deep in argument '{arg}'")
        self.pos += 1
        items: list[Any] = []
        self.skip_space()
        if self.take("]"):
            return items
        while True:
            items.append(self.value(arg, depth + 1))
            self.skip_space()
            if self.take("]"):
                return items
            self.expect(",", f"Expected ',' or ']' in the list for argument '{arg}'")
            self.skip_space()

    def json_object(self, arg: str) -> Any:
        # The JSON decoder gets nested quotes and brackets right and says where JSON breaks.
        try:
            value, end = _JSON.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as err:
            raise self.fail(f"Invalid JSON object in argument '{arg}': {err.msg}", err.pos) from None
        except (ValueError, RecursionError) as err:
            # Non-JSON constants, integers beyond Python's digit limit, absurd nesting.
            raise self.fail(f"Invalid JSON object in argument '{arg}': {err}") from None
        self.pos = end
        return value

    def number(self, arg: str) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            raise self.fail(f"Expected a number for argument '{arg}'")
        try:
            value: int | float = (
                float(match.group()) if match.group(1) or match.group(2) else int(match.group())
            )
        except ValueError:
            raise self.fail(f"Number too long in argument '{arg}'") from None
        self.pos = match.end()
        return value


def parse_pixel(expression: str) -> Pixel:
    """Parse exactly one reactor call (or META | true), with an optional trailing ';'.

    Raises PixelError, and only PixelError, for any text that is not such a pixel.
    """
    if not isinstance(expression, str):
        raise PixelError(f"Expected the pixel as text, got {type(expression).__name__}")
    return _Parser(expression).pixel()


# -- the supported reactors ------------------------------------------------------------------


class ValueKind(Enum):
    """The shape an argument's value must have; the value reads as '<arg> must be <value>'."""

    STRING = "a string"
    BOOL = "true or false"
    STRING_LIST = "a list of strings"
    JSON_OBJECT_LIST = "a list holding one JSON object"

    def accepts(self, value: Any) -> bool:
        if self is ValueKind.STRING:
            return isinstance(value, str)
        if self is ValueKind.BOOL:
            return isinstance(value, bool)
        if self is ValueKind.STRING_LIST:
            return isinstance(value, list) and all(isinstance(item, str) for item in value)
        return isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)


@dataclass(frozen=True)
class ArgumentSpec:
    kind: ValueKind
    required: bool = False


@dataclass(frozen=True)
class ReactorSpec:
    name: str
    arguments: Mapping[str, ArgumentSpec]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.arguments.items() if spec.required)


def _reactor(name: str, **arguments: ArgumentSpec) -> ReactorSpec:
    return ReactorSpec(name, MappingProxyType(arguments))


REACTORS: Mapping[str, ReactorSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _reactor("META"),
            # command may be left out when paramValues carries full_prompt; the caller checks that.
            _reactor(
                "LLM",
                engine=ArgumentSpec(ValueKind.STRING, required=True),
                command=ArgumentSpec(ValueKind.STRING),
                context=ArgumentSpec(ValueKind.STRING_LIST),
                useHistory=ArgumentSpec(ValueKind.BOOL),
                paramValues=ArgumentSpec(ValueKind.JSON_OBJECT_LIST),
                roomId=ArgumentSpec(ValueKind.STRING),
                image=ArgumentSpec(ValueKind.STRING_LIST),
                url=ArgumentSpec(ValueKind.STRING_LIST),
            ),
            _reactor("GetModelAPI", model=ArgumentSpec(ValueKind.STRING, required=True)),
            _reactor("GetRoomMessages", roomId=ArgumentSpec(ValueKind.STRING, required=True)),
            # As the SDK's ModelEngine.embeddings sends it: values=['a', 'b'] (a Python list's
            # repr), paramValues only when given; encoded as SEMOSS's reactor has it.
            _reactor(
                "Embeddings",
                engine=ArgumentSpec(ValueKind.STRING, required=True),
                values=ArgumentSpec(ValueKind.STRING_LIST, required=True),
                paramValues=ArgumentSpec(ValueKind.JSON_OBJECT_LIST),
                encoded=ArgumentSpec(ValueKind.BOOL),
            ),
        )
    }
)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        kinds = sorted({_describe(item) for item in value})
        return f"a list holding {', '.join(kinds)}" if kinds else "an empty list"
    return type(value).__name__


def validate_pixel(pixel: Pixel) -> None:
    """Raise PixelError unless the pixel names a supported reactor with well-formed arguments."""
    spec = REACTORS.get(pixel.reactor)
    if spec is None:
        supported = ", ".join(sorted(REACTORS))
        raise PixelError(f"Unknown reactor '{pixel.reactor}'. Supported: {supported}")
    for name, value in pixel.args.items():
        argument = spec.arguments.get(name)
        if argument is None:
            allowed = ", ".join(sorted(spec.arguments)) or "none"
            raise PixelError(f"Unknown argument '{name}' for {spec.name}. Allowed: {allowed}")
        if not argument.kind.accepts(value):
            raise PixelError(f"{name} must be {argument.kind.value}, got {_describe(value)}")
    for name in spec.required:
        if name not in pixel.args:
            raise PixelError(f"{spec.name} requires argument '{name}'")
        # An empty id can never name an engine, model or room; say so here, not as a lookup miss.
        if pixel.args[name] == "":
            raise PixelError(f"{name} must not be empty")


# -- typed views of valid pixels -------------------------------------------------------------


@dataclass(frozen=True)
class MetaCall:
    """META | true: open a new insight."""


@dataclass(frozen=True)
class LLMCall:
    engine: str
    command: str | None = None
    context: str | None = None
    use_history: bool = True
    param_values: dict[str, Any] = field(default_factory=dict)
    room_id: str | None = None
    image: list[str] = field(default_factory=list)
    url: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelAPICall:
    model: str


@dataclass(frozen=True)
class RoomMessagesCall:
    room_id: str


@dataclass(frozen=True)
class EmbeddingsCall:
    engine: str
    values: list[str]
    param_values: dict[str, Any] = field(default_factory=dict)


PixelCall = MetaCall | LLMCall | ModelAPICall | RoomMessagesCall | EmbeddingsCall


def _checked(pixel: Pixel, reactor: str) -> dict[str, Any]:
    if pixel.reactor != reactor:
        raise PixelError(f"Expected a pixel for {reactor}, got one for '{pixel.reactor}'")
    validate_pixel(pixel)
    return pixel.args


def llm_call(pixel: Pixel) -> LLMCall:
    """The LLM pixel's arguments with defaults filled in; PixelError if it is not a valid LLM."""
    args = _checked(pixel, "LLM")
    context = args.get("context") or [None]
    return LLMCall(
        engine=args["engine"],
        command=args.get("command"),
        context=context[0],
        use_history=args.get("useHistory", True),
        param_values=dict(args["paramValues"][0]) if "paramValues" in args else {},
        room_id=args.get("roomId"),
        image=list(args.get("image", [])),
        url=list(args.get("url", [])),
    )


def model_api_call(pixel: Pixel) -> ModelAPICall:
    return ModelAPICall(model=_checked(pixel, "GetModelAPI")["model"])


def room_messages_call(pixel: Pixel) -> RoomMessagesCall:
    return RoomMessagesCall(room_id=_checked(pixel, "GetRoomMessages")["roomId"])


def embeddings_call(pixel: Pixel) -> EmbeddingsCall:
    """The texts to embed; with encoded=true each was URI-encoded (as SEMOSS's reactor reads it)."""
    args = _checked(pixel, "Embeddings")
    values = list(args["values"])
    if args.get("encoded"):
        values = [unquote(value) for value in values]
    params = dict(args["paramValues"][0]) if "paramValues" in args else {}
    return EmbeddingsCall(engine=args["engine"], values=values, param_values=params)


def _meta_call(pixel: Pixel) -> MetaCall:
    _checked(pixel, "META")
    return MetaCall()


_VIEWS: Mapping[str, Callable[[Pixel], PixelCall]] = MappingProxyType(
    {
        "META": _meta_call,
        "LLM": llm_call,
        "GetModelAPI": model_api_call,
        "GetRoomMessages": room_messages_call,
        "Embeddings": embeddings_call,
    }
)


def parse_call(expression: str) -> PixelCall:
    """Parse, validate and type a pixel in one step; PixelError for anything unsupported."""
    pixel = parse_pixel(expression)
    validate_pixel(pixel)
    return _VIEWS[pixel.reactor](pixel)
