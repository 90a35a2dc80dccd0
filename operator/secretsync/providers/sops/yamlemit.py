"""Printing a decrypted tree as `sops decrypt` prints YAML (stores/yaml EmitPlainFile).

Three steps, each a port: sops turns the tree into go-yaml Nodes, putting comments
on them as head, line and foot comments (appendTreeBranch, appendSequence); each
scalar becomes a Node as yaml.v3's Node.Encode makes it (its style chosen as
encode.go's stringv and the emitter decide); the encoder turns Nodes into events
(encode.go node) and the emitter (yamlemitter) writes them, indented by 4.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from secretsync.providers.sops import gofmt, yamlload
from secretsync.providers.sops.tree import Branch, Comment
from secretsync.providers.sops.yamlemitter import Emitter, Event, Kind
from secretsync.providers.sops.yamlwriter import Style, analyze_scalar, select_style

_LONG = "tag:yaml.org,2002:"


@dataclasses.dataclass
class _Node:
    kind: Kind  # SCALAR, SEQUENCE_START or MAPPING_START
    value: str = ""
    tag: str = ""  # a short tag: !!str, !!int, !!binary, ...
    style: Style = Style.PLAIN
    content: list[_Node] = dataclasses.field(default_factory=list)
    head: str = ""
    line: str = ""
    foot: str = ""


def _old_bool(text: str) -> bool:
    return text in ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
                    "n", "N", "no", "No", "NO", "off", "Off", "OFF")  # fmt: skip


def _base60(text: str) -> bool:
    import re

    return (
        ":" in text
        and re.fullmatch(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?", text) is not None
    )


def _resolved_tag(text: str) -> str:
    """The short tag yaml.v3 would give `text` written plain."""
    value = yamlload.resolve_plain(text)
    if value is None:
        return "!!null"
    if isinstance(value, bool):
        return "!!bool"
    if isinstance(value, int):
        return "!!int"
    if isinstance(value, float):
        return "!!float"
    if isinstance(value, gofmt.GoTime):
        return "!!timestamp"
    return "!!str"


def _encode_base64(data: bytes) -> str:
    # yaml.v3 encodeBase64: lines of 70, each ending in a newline when there are several.
    text = base64.b64encode(data).decode()
    if len(text) // 70 + 1 == 1:
        return text
    return "".join(text[i : i + 70] + "\n" for i in range(0, len(text), 70))


def _string_node(text: str) -> _Node:
    """Node.Encode(string): yaml.v3 writes it, then reads it back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        encoded = _encode_base64(text.encode("utf-8", "surrogateescape"))
        style = Style.LITERAL if "\n" in encoded else Style.PLAIN
        return _Node(Kind.SCALAR, encoded, "!!binary", style)
    if "\n" in text:
        style = Style.LITERAL
    elif _resolved_tag(text) == "!!str" and not (_base60(text) or _old_bool(text)):
        style = Style.PLAIN
    else:
        style = Style.DOUBLE
    style = select_style(style, analyze_scalar(text), simple_key=False, flow=False)
    if style is Style.PLAIN:
        return _plain_node(text)
    return _Node(Kind.SCALAR, text, "!!str", style)


def _plain_node(text: str) -> _Node:
    # The Node is read back from the text, so its tag is what the text resolves to
    # (a float 1.0 is written "1" and comes back an !!int; a plain "<<", a merge).
    return _Node(Kind.SCALAR, text, "!!merge" if text == "<<" else _resolved_tag(text))


def _scalar_node(value: Any) -> _Node:
    """Node.Encode(value) for a leaf."""
    if isinstance(value, str):
        return _string_node(value)
    if value is None:
        return _plain_node("null")
    if isinstance(value, bool):
        return _plain_node("true" if value else "false")
    if isinstance(value, int):
        return _plain_node(str(value))
    if isinstance(value, float):
        text = gofmt.format_g(value)
        return _plain_node({"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text))
    if isinstance(value, gofmt.GoTime):
        return _plain_node(value.text)
    if isinstance(value, bytes):
        # A Go []byte is a list of numbers to yaml.v3.
        return _Node(Kind.SEQUENCE_START, content=[_plain_node(str(b)) for b in value])
    raise TypeError(type(value).__name__)


# --- stores/yaml: the tree to Nodes, with its comments -----------------------------------


def _join(comments: list[str]) -> str:
    return "#" + "\n#".join(comments)


def _add_head(node: _Node, comments: list[str]) -> list[str]:
    if comments:
        node.head = _join(comments) + ("\n" + node.head if node.head else "")
    return []


def _add_foot(node: _Node, comments: list[str]) -> None:
    if comments:
        node.foot = node.foot + "\n" + _join(comments) if node.foot else _join(comments)


def _add_line(node: _Node, comments: list[str]) -> list[str]:
    if comments:
        node.line = node.line + "\n" + _join(comments) if node.line else _join(comments)
    return []


def _node(value: Any) -> _Node:
    if isinstance(value, Branch):
        mapping = _Node(Kind.MAPPING_START)
        _append_branch(value, mapping)
        return mapping
    if isinstance(value, list):
        sequence = _Node(Kind.SEQUENCE_START)
        _append_sequence(value, sequence)
        return sequence
    return _scalar_node(value)


def _append_sequence(items: list[Any], sequence: _Node) -> None:
    head: list[str] = []
    inline: list[str] = []
    beginning = True
    for item in items:
        if isinstance(item, Comment):
            (inline if item.inline else head).append(item.value)
            continue
        if beginning:
            head = _add_head(sequence, head)
            beginning = False
        node = _node(item)
        head = _add_head(node, head)
        inline = _add_line(node, inline)
        sequence.content.append(node)
    head += inline
    if head:
        if beginning:
            _add_head(sequence, head)
        else:
            _add_foot(sequence.content[-1], head)


def _append_branch(branch: Branch, mapping: _Node) -> None:
    head: list[str] = []
    inline: list[str] = []
    beginning = True
    for key, value in branch.items:
        if isinstance(key, Comment):
            (inline if key.inline else head).append(key.value)
            continue
        if beginning:
            head = _add_head(mapping, head)
            beginning = False
        key_node = _string_node(key)
        head = _add_head(key_node, head)
        value_node = _node(value)
        inline = _add_line(value_node, inline)
        mapping.content += [key_node, value_node]
    head += inline
    if head:
        if beginning:
            _add_head(mapping, head)
        else:
            _add_foot(mapping.content[-2], head)


# --- encode.go: Nodes to events --------------------------------------------------------


def _events(node: _Node, tail: str, out: list[Event]) -> None:
    if node.kind is Kind.MAPPING_START:
        out.append(Event(Kind.MAPPING_START, head=node.head, tail=tail))
        # encode.go moves a key's foot comment after its value: the next key's "tail".
        pending = ""
        for key, value in zip(node.content[::2], node.content[1::2], strict=True):
            foot = key.foot
            if foot:
                key = dataclasses.replace(key, foot="")
            _events(key, pending, out)
            pending = foot
            _events(value, "", out)
        out.append(Event(Kind.MAPPING_END, tail=pending, line=node.line, foot=node.foot))
        return
    if node.kind is Kind.SEQUENCE_START:
        out.append(Event(Kind.SEQUENCE_START, head=node.head))
        for item in node.content:
            _events(item, "", out)
        out.append(Event(Kind.SEQUENCE_END, line=node.line, foot=node.foot))
        return
    tag = node.tag
    style = node.style
    quoted = style in (Style.SINGLE, Style.DOUBLE, Style.LITERAL, Style.FOLDED)
    if (tag == "!!str" and quoted) or _resolved_tag(node.value) == tag:
        tag = ""
    elif tag == "!!str":
        tag = ""
        style = Style.DOUBLE if style is Style.PLAIN and "\n" not in node.value else style
    if style is Style.PLAIN and "\n" in node.value:
        style = Style.LITERAL
    out.append(
        Event(
            Kind.SCALAR,
            value=node.value,
            tag=_LONG + tag[2:] if tag.startswith("!!") else tag,
            implicit=tag == "",
            style=style,
            head=node.head,
            line=node.line,
            foot=node.foot,
            tail=tail,
        )
    )


def emit(branches: list[Branch], *, indent: int = 4) -> bytes:
    """The YAML `sops decrypt` prints for these (decrypted) branches."""
    events: list[Event] = []
    for branch in branches:
        mapping = _Node(Kind.MAPPING_START)
        _append_branch(branch, mapping)
        events.append(Event(Kind.DOCUMENT_START))
        _events(mapping, "", events)
        events.append(Event(Kind.DOCUMENT_END))
    events.append(Event(Kind.STREAM_END))
    return Emitter(indent).run(events).encode("utf-8", "surrogateescape")
