"""What a tsquery needs of every row it matches: the adjacent lexeme pairs of its phrases.

Postgres prints a tsquery as text (`'good' <-> 'lord' & !'rome'`); this reads that text back into
a tree and answers which pairs "a b" (`a` at some position p, `b` at p + 1) every matching row must
hold: a phrase's words side by side, required unless they sit under a NOT or in only one branch of
an OR. jobs/search.py filters on them with the pairs index, which is exact about adjacency where the
word index only knows that both words occur somewhere in the row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*('(?:[^']|'')*'(?::[*A-Da-d]+)?|<->|<\d+>|[&|!()])")


@dataclass(frozen=True)
class Node:
    op: str  # "lex", "!", "&", "|", or "<n>" for a phrase operator at distance n
    word: str = ""
    left: Node | None = None
    right: Node | None = None


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        at = 0
        while text[at:].strip():
            found = _TOKEN.match(text, at)
            if not found:
                raise ValueError(f"not a tsquery: {text!r}")
            self.tokens.append(found.group(1))
            at = found.end()
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        if self.at >= len(self.tokens):
            raise ValueError("the query ends too soon")
        self.at += 1
        return self.tokens[self.at - 1]

    # Binding, loosest first: |, &, then the phrase operators, then !.
    def either(self) -> Node:
        node = self.both()
        while self.peek() == "|":
            self.take()
            node = Node("|", left=node, right=self.both())
        return node

    def both(self) -> Node:
        node = self.phrase()
        while self.peek() == "&":
            self.take()
            node = Node("&", left=node, right=self.phrase())
        return node

    def phrase(self) -> Node:
        node = self.unary()
        while (token := self.peek()) is not None and token.startswith("<"):
            self.take()
            distance = "1" if token == "<->" else token[1:-1]
            node = Node(f"<{distance}>", left=node, right=self.unary())
        return node

    def unary(self) -> Node:
        token = self.take()
        if token == "!":
            return Node("!", left=self.unary())
        if token == "(":
            node = self.either()
            if self.take() != ")":
                raise ValueError("unbalanced parentheses")
            return node
        if token.startswith("'"):
            word, _, flags = token[1:].rpartition("'")
            # A prefix (:*) or weight (:A) term stands for several lexemes: no exact pair.
            return Node("lex" if not flags else "lex:", word=word.replace("''", "'"))
        raise ValueError(f"unexpected {token!r}")


def parse(text: str) -> Node | None:
    """The tree of a tsquery's text; None for the empty query (only stop words)."""
    reader = _Reader(text)
    if reader.peek() is None:
        return None
    node = reader.either()
    if reader.peek() is not None:
        raise ValueError(f"trailing {reader.peek()!r}")
    return node


def _last(node: Node) -> str | None:
    """The lexeme a phrase chain ends with (where Postgres places its match), if it is one; only
    left-nested chains (`'a' <-> 'b' <-> 'c'`), as websearch_to_tsquery makes them."""
    if node.op == "lex":
        return node.word
    if node.op.startswith("<") and node.right is not None and node.right.op == "lex":
        return node.right.word
    return None


def required_pairs(node: Node | None) -> set[str]:
    """Pairs "a b" every row matching `node` holds (a at position p, b at p + 1)."""
    if node is None or node.op in ("lex", "lex:", "!"):
        return set()
    assert node.left is not None and node.right is not None
    left, right = required_pairs(node.left), required_pairs(node.right)
    if node.op == "|":
        return left & right
    if node.op == "&":
        return left | right
    pairs = left | right
    before, after = _last(node.left), node.right.word if node.right.op == "lex" else None
    if node.op == "<1>" and before is not None and after is not None:
        pairs.add(f"{before} {after}")
    return pairs


def is_one_pair(node: Node | None) -> bool:
    """Whether the query is one pair and nothing else ('a' <-> 'b'): the rows holding the pair
    are then exactly its matches."""
    return (
        node is not None
        and node.op == "<1>"
        and node.left is not None
        and node.right is not None
        and node.left.op == node.right.op == "lex"
    )
