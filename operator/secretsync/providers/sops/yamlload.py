"""Reading a YAML document into sops's tree as sops's YAML store does (stores/yaml).

sops parses with go-yaml v3, so this follows it, not PyYAML's defaults:

- Plain scalars resolve by YAML 1.2 rules as yaml.v3's resolve.go does (`yes` and
  `on` are strings, `0777` is octal, `1_000` is 1000, dates are timestamps), because
  an unencrypted leaf's type decides what the MAC hashes.
- Comments become items of the mapping (or elements of the list) they sit in, in
  document order, as yaml.v3 attaches them and sops flattens them: a comment after a
  scalar on its line is "inline", one before or beside a key is not. PyYAML's scanner
  finds the structure; a comment's place is worked out from its line and column.
- Anchors and aliases are expanded; `<<` is an ordinary key; duplicate keys, a
  top-level list or scalar, and keys that are not strings are refused, as sops does.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import re
from typing import Any

import yaml
from yaml import nodes
from yaml.composer import Composer
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from secretsync.providers.sops import gofmt
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.tree import Branch, Comment, Uint64

_PLAIN = "?plain"  # the tag we give an untagged plain scalar, to resolve it as yaml.v3 does
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_BREAKS = "\0\r\n\x85\u2028\u2029"


@dataclasses.dataclass(frozen=True)
class _Comment:
    index: int  # position in the text, for order
    line: int
    column: int
    text: str  # after the '#'
    trailing: bool  # something precedes it on its line


class _Loader(Reader, Scanner, Parser, Composer, BaseResolver):
    """PyYAML's pure-Python pipeline, keeping the comments and the '-' marks it skips."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)
        self.text = text
        self.comments: list[_Comment] = []
        self.dashes: list[int] = []  # text index of every block sequence '-'
        self.markers: list[int] = []  # text index of every "---"

    def _skip_comment(self) -> None:
        start = self.index
        while self.peek() not in _BREAKS:
            self.forward()
        line_start = self.text.rfind("\n", 0, start) + 1
        self.comments.append(
            _Comment(
                index=start,
                line=self.line,
                column=start - line_start,
                text=self.text[start + 1 : self.index],
                trailing=self.text[line_start:start].strip(" \t\ufeff") != "",
            )
        )

    def scan_to_next_token(self) -> None:
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() == " ":
                self.forward()
            if self.peek() == "#":
                self._skip_comment()
            if self.scan_line_break():  # type: ignore[no-untyped-call]  # PyYAML's own, untyped
                if not self.flow_level:
                    self.allow_simple_key = True
            else:
                return

    def scan_block_scalar_ignored_line(self, start_mark: Any) -> None:
        while self.peek() == " ":
            self.forward()
        if self.peek() == "#":
            self._skip_comment()
        if self.peek() not in _BREAKS:
            raise yaml.scanner.ScannerError(
                "while scanning a block scalar",
                start_mark,
                "expected a comment or a line break",
                self.get_mark(),
            )
        self.scan_line_break()  # type: ignore[no-untyped-call]  # PyYAML's own, untyped

    def fetch_document_start(self) -> None:
        self.markers.append(self.index)  # a "---": where the next document starts
        super().fetch_document_start()

    def fetch_block_entry(self) -> None:
        super().fetch_block_entry()
        self.dashes.append(self.tokens[-1].start_mark.index)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is nodes.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return "tag:yaml.org,2002:seq" if kind is nodes.SequenceNode else "tag:yaml.org,2002:map"


# --- scalars: yaml.v3 resolve.go --------------------------------------------------------

_SPECIAL: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
_GO_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_UNSIGNED = re.compile(r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*")


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), then ParseUint: None if neither takes it."""
    match = _GO_INT.fullmatch(text)
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567":
        value = int(digits, 8)  # Go's base 0: a leading 0 is octal
    else:
        value = int(digits, 0) if digits != "0" else 0
    value = -value if sign == "-" else value
    if -(2**63) <= value < 2**63:
        return value
    if sign == "" and value < 2**64 and _UNSIGNED.fullmatch(digits):
        return Uint64(value)
    return None


def _finite(text: str) -> float | None:
    value = float(text)
    return None if value in (float("inf"), float("-inf")) else value  # Go: ErrRange


def resolve_plain(text: str) -> Any:
    """yaml.v3 resolve("", text) for an untagged plain scalar."""
    hint = text[:1]
    if (hint == "" or hint in "+-0123456789yYnNtTfFoO~.") and text in _SPECIAL:
        return _SPECIAL[text]  # (a plain "<<" is looked up by the parser, not here)
    if hint == ".":
        if _DOT_FLOAT.fullmatch(text):
            value = _finite(text)
            if value is not None:
                return value
    elif hint in "+-0123456789":
        timestamp = gofmt.parse_yaml_timestamp(text)
        if timestamp is not None:
            return timestamp
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.fullmatch(plain):
            value = _finite(plain)
            if value is not None:
                return value
    return text


def _binary(text: str) -> str:
    try:
        data = base64.b64decode(re.sub(r"[\r\n]", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise _RefusedError("a !!binary value is not base64") from None
    return data.decode("utf-8", "surrogateescape")


_RESOLVABLE = {
    "tag:yaml.org,2002:" + t: t for t in ("str", "bool", "int", "float", "null", "timestamp")
}


def _scalar(node: nodes.ScalarNode) -> Any:
    tag = node.tag
    if tag == _PLAIN:
        return resolve_plain(node.value)
    if tag == "tag:yaml.org,2002:binary":
        return _binary(node.value)
    kind = _RESOLVABLE.get(tag)
    if kind is None:
        return node.value  # an unknown tag: yaml.v3 keeps the text
    if kind == "str":
        return node.value
    if kind == "timestamp":
        value: Any = gofmt.parse_yaml_timestamp(node.value)
        if value is not None:
            return value
    value = resolve_plain(node.value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {"bool": bool, "int": int, "float": float, "null": type(None)}.get(kind)
    if (
        expected is not None
        and isinstance(value, expected)
        and not (kind == "int" and isinstance(value, bool))
    ):
        return value
    raise _RefusedError(f"a value tagged !!{kind} is not one")


class _RefusedError(Exception):
    """A document sops's YAML store refuses; the reason names no value."""


# --- comments ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    line: int  # where the entry starts: its key, or its '-'
    column: int
    index: int
    value: nodes.Node


@dataclasses.dataclass
class _Slots:
    """Comments to insert before each entry of one collection (and after the last)."""

    before: dict[int, list[tuple[int, Comment]]] = dataclasses.field(default_factory=dict)

    def add(self, position: int, comment: _Comment, *, inline: bool) -> None:
        self.before.setdefault(position, []).append((comment.index, Comment(comment.text, inline)))

    def at(self, position: int) -> list[Comment]:
        return [c for _, c in sorted(self.before.get(position, []), key=lambda x: x[0])]


class _Placer:
    """Where yaml.v3 (and then sops) puts each comment of a document."""

    def __init__(self, dashes: list[int], text: str) -> None:
        self.dashes = dashes
        self.text = text
        self.slots: dict[int, _Slots] = {}

    def entries(self, node: nodes.Node) -> list[_Entry]:
        if isinstance(node, nodes.MappingNode):
            return [
                _Entry(k.start_mark.line, k.start_mark.column, k.start_mark.index, v)
                for k, v in node.value
            ]
        assert isinstance(node, nodes.SequenceNode)
        out = []
        for item in node.value:
            # The item's '-' is the last one before it in the sequence's column.
            start = item.start_mark.index
            dash = start
            position = bisect.bisect_left(self.dashes, start)
            while position > 0:
                position -= 1
                candidate = self.dashes[position]
                line_start = self.text.rfind("\n", 0, candidate) + 1
                if candidate - line_start == node.start_mark.column:
                    dash = candidate
                    break
            line = self.text.count("\n", 0, dash)
            column = dash - (self.text.rfind("\n", 0, dash) + 1)
            out.append(_Entry(line, column, dash, item))
        return out

    @staticmethod
    def is_block(node: nodes.Node) -> bool:
        return (
            isinstance(node, nodes.MappingNode | nodes.SequenceNode)
            and not node.flow_style
            and bool(node.value)
        )

    def place(self, node: nodes.Node, comment: _Comment) -> None:
        slots = self.slots.setdefault(id(node), _Slots())
        entries = self.entries(node)
        # Entries that start before the comment.
        i = sum(1 for e in entries if e.index < comment.index)
        if i == 0:
            slots.add(0, comment, inline=False)
            return
        prev = entries[i - 1]
        value = prev.value
        if comment.trailing:
            if prev.line == comment.line and not self.is_block(value):
                # key: value  # c   /   - value  # c   (a scalar's line comment)
                scalar = isinstance(value, nodes.ScalarNode)
                slots.add(i - 1, comment, inline=scalar)
                return
            if self.is_block(value) and value.start_mark.line <= comment.line:
                self.place(value, comment)
                return
            if prev.line == comment.line:
                # key:  # c   (the block value below): a comment of the key
                slots.add(i - 1, comment, inline=False)
                return
            slots.add(i - 1, comment, inline=isinstance(value, nodes.ScalarNode))
            return
        if self.is_block(value) and comment.column > prev.column:
            self.place(value, comment)
            return
        slots.add(i, comment, inline=False)

    def comments(self, node: nodes.Node, position: int) -> list[Comment]:
        slots = self.slots.get(id(node))
        return slots.at(position) if slots else []


# --- nodes to the tree -----------------------------------------------------------------


def _value(node: nodes.Node, placer: _Placer) -> Any:
    if isinstance(node, nodes.ScalarNode):
        return _scalar(node)
    if isinstance(node, nodes.SequenceNode):
        items: list[Any] = []
        for index, item in enumerate(node.value):
            items.extend(placer.comments(node, index))
            items.append(_value(item, placer))
        items.extend(placer.comments(node, len(node.value)))
        return items
    assert isinstance(node, nodes.MappingNode)
    return _branch(node, placer)


def _branch(node: nodes.MappingNode, placer: _Placer) -> Branch:
    branch = Branch()
    seen: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        branch.items.extend((c, None) for c in placer.comments(node, index))
        key = _scalar(key_node) if isinstance(key_node, nodes.ScalarNode) else None
        if not isinstance(key, str):
            raise _RefusedError(f"the key at line {key_node.start_mark.line + 1} is not a string")
        if key in seen:
            raise _RefusedError(
                f"the key {key!r} is repeated at line {key_node.start_mark.line + 1}"
            )
        seen.add(key)
        if key == "<<" and key_node.tag in (_PLAIN, _MERGE) and not _mergeable(value_node):
            # yaml.v3 (sops's first, checking decode) refuses such a merge.
            raise _RefusedError(
                f"the merge key at line {key_node.start_mark.line + 1} is not a mapping"
            )
        branch.items.append((key, _value(value_node, placer)))
    branch.items.extend((c, None) for c in placer.comments(node, len(node.value)))
    return branch


def _mergeable(node: nodes.Node) -> bool:
    if isinstance(node, nodes.SequenceNode):
        return all(isinstance(item, nodes.MappingNode) for item in node.value)
    return isinstance(node, nodes.MappingNode)


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8")


def load(raw: bytes, *, where: str) -> list[Branch]:
    """The document's branches (one per YAML document), comments included."""
    try:
        text = _decode(raw)
    except UnicodeDecodeError:
        raise SopsDocumentError(
            f"{where}: not valid YAML: it is not UTF-8; it is not synced"
        ) from None
    loader = _Loader(text)
    try:
        roots: list[nodes.Node] = []
        while loader.check_node():
            root = loader.get_node()
            if root is not None:
                roots.append(root)
    except yaml.MarkedYAMLError as error:
        # PyYAML's message quotes the document: say only where it broke.
        mark = error.problem_mark or error.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SopsDocumentError(f"{where}: not valid YAML{at}; it is not synced") from None
    except yaml.YAMLError:
        raise SopsDocumentError(f"{where}: not valid YAML; it is not synced") from None
    finally:
        loader.dispose()
    placer = _Placer(loader.dashes, text)
    # Where each document starts: its "---", or its content for the implicit first one.
    markers = loader.markers
    starts = [0, *markers] if len(markers) < len(roots) else list(markers)
    for comment in loader.comments:
        # A comment belongs to the last document that starts before it.
        index = max(bisect.bisect_right(starts, comment.index) - 1, 0)
        owner = roots[index] if index < len(roots) else None
        if isinstance(owner, nodes.MappingNode):
            placer.place(owner, comment)
    branches = []
    try:
        for root in roots:
            if isinstance(root, nodes.MappingNode):
                branches.append(_branch(root, placer))
            elif isinstance(root, nodes.ScalarNode) and _scalar(root) is None:
                branches.append(Branch())  # an empty document
            else:
                raise _RefusedError("a YAML document is a list or a value, not a mapping")
    except _RefusedError as refused:
        raise SopsDocumentError(
            f"{where}: not a document sops reads: {refused}; it is not synced"
        ) from None
    return branches
