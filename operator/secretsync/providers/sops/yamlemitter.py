"""go-yaml v3's emitter (emitterc.go), ported for the events sops's YAML output makes.

`sops decrypt` prints YAML with go-yaml v3; byte-for-byte equal output needs its
indentation, quoting and comment placement, which no Python YAML library shares.
This is a port of its state machine restricted to what sops emits: block mappings
and sequences (flow only for empty ones), scalars in any style (yamlwriter),
head/line/foot comments, no anchors. Names follow the Go functions so the two can be read side by
side.
"""

from __future__ import annotations

import dataclasses
import enum

from secretsync.providers.sops.yamlwriter import (
    Analysis,
    Style,
    Writer,
    analyze_scalar,
    select_style,
)


class Kind(enum.Enum):
    """Event types."""

    DOCUMENT_START = enum.auto()
    DOCUMENT_END = enum.auto()
    SCALAR = enum.auto()
    SEQUENCE_START = enum.auto()
    SEQUENCE_END = enum.auto()
    MAPPING_START = enum.auto()
    MAPPING_END = enum.auto()
    STREAM_END = enum.auto()


@dataclasses.dataclass
class Event:
    """One emitter event (yaml_event_t), with the fields sops's output uses."""

    kind: Kind
    value: str = ""
    tag: str = ""  # a long tag, only when not implicit
    implicit: bool = True
    style: Style = Style.PLAIN
    flow: bool = False  # a flow collection
    head: str = ""
    line: str = ""
    foot: str = ""
    tail: str = ""


TAG_DIRECTIVES = (("!", "!"), ("!!", "tag:yaml.org,2002:"))


class State(enum.Enum):
    """Emitter states."""

    FIRST_DOCUMENT_START = enum.auto()
    DOCUMENT_START = enum.auto()
    DOCUMENT_CONTENT = enum.auto()
    DOCUMENT_END = enum.auto()
    FLOW_SEQUENCE_FIRST_ITEM = enum.auto()
    FLOW_MAPPING_FIRST_KEY = enum.auto()
    BLOCK_SEQUENCE_FIRST_ITEM = enum.auto()
    BLOCK_SEQUENCE_ITEM = enum.auto()
    BLOCK_MAPPING_FIRST_KEY = enum.auto()
    BLOCK_MAPPING_KEY = enum.auto()
    BLOCK_MAPPING_SIMPLE_VALUE = enum.auto()
    BLOCK_MAPPING_VALUE = enum.auto()
    END = enum.auto()


class Emitter(Writer):
    """The state machine; `run` emits a whole event list and returns the text."""

    def __init__(self, indent: int) -> None:
        super().__init__(indent)
        self.events: list[Event] = []
        self.head_index = 0
        self.state = State.FIRST_DOCUMENT_START
        self.states: list[State] = []
        self.indents: list[int] = []
        self.flow_level = 0
        self.mapping_context = self.simple_key_context = False
        self.head_comment = self.foot_comment = ""
        self.tail_comment = self.key_line_comment = ""
        self.tag_handle = self.tag_suffix = ""
        self.scalar = Analysis()
        self.scalar_value = ""

    # --- comments --------------------------------------------------------------------

    def process_head_comment(self) -> None:
        if self.tail_comment:
            self.write_indent()
            self.write_comment(self.tail_comment)
            self.tail_comment = ""
            self.foot_indent = max(self.indent, 0)
        if not self.head_comment:
            return
        self.write_indent()
        self.write_comment(self.head_comment)
        self.head_comment = ""

    def process_foot_comment(self) -> None:
        if not self.foot_comment:
            return
        self.write_indent()
        self.write_comment(self.foot_comment)
        self.foot_comment = ""
        self.foot_indent = max(self.indent, 0)

    # --- driving ---------------------------------------------------------------------

    def run(self, events: list[Event]) -> str:
        self.events = events
        while self.head_index < len(events):
            event = events[self.head_index]
            self.analyze_event(event)
            self.state_machine(event)
            self.head_index += 1
        return "".join(self.out)

    def analyze_event(self, event: Event) -> None:
        self.tag_handle = self.tag_suffix = ""
        if event.head:
            self.head_comment = event.head
        if event.line:
            self.line_comment = event.line
        if event.foot:
            self.foot_comment = event.foot
        if event.tail:
            self.tail_comment = event.tail
        if event.tag and not event.implicit:
            for handle, prefix in TAG_DIRECTIVES[::-1]:
                if event.tag.startswith(prefix):
                    self.tag_handle, self.tag_suffix = handle, event.tag[len(prefix) :]
                    break
            else:
                self.tag_suffix = event.tag
        if event.kind is Kind.SCALAR:
            self.scalar_value = event.value
            self.scalar = analyze_scalar(event.value)

    def pop_state(self) -> None:
        self.state = self.states.pop()

    def pop_indent(self) -> None:
        self.indent = self.indents.pop()

    def increase_indent(self, flow: bool, indentless: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = self.best_indent if flow else 0
        elif not indentless:
            if self.states[-1] is State.BLOCK_SEQUENCE_ITEM:
                self.indent += 2  # the first indent inside a sequence skips the "- "
            else:
                self.indent = self.best_indent * (
                    (self.indent + self.best_indent) // self.best_indent
                )

    def state_machine(self, event: Event) -> None:
        state = self.state
        if state is State.FIRST_DOCUMENT_START or state is State.DOCUMENT_START:
            self.emit_document_start(event, first=state is State.FIRST_DOCUMENT_START)
        elif state is State.DOCUMENT_CONTENT:
            self.states.append(State.DOCUMENT_END)
            self.process_head_comment()
            self.emit_node(event, mapping=False, simple_key=False)
            self.process_line_comment()
            self.process_foot_comment()
        elif state is State.DOCUMENT_END:
            self.emit_document_end(event)
        elif state is State.FLOW_SEQUENCE_FIRST_ITEM:
            self.emit_flow_empty(event, "[", "]")
        elif state is State.FLOW_MAPPING_FIRST_KEY:
            self.emit_flow_empty(event, "{", "}")
        elif state is State.BLOCK_SEQUENCE_FIRST_ITEM or state is State.BLOCK_SEQUENCE_ITEM:
            self.emit_block_sequence_item(event, first=state is State.BLOCK_SEQUENCE_FIRST_ITEM)
        elif state is State.BLOCK_MAPPING_FIRST_KEY or state is State.BLOCK_MAPPING_KEY:
            self.emit_block_mapping_key(event, first=state is State.BLOCK_MAPPING_FIRST_KEY)
        elif state is State.BLOCK_MAPPING_SIMPLE_VALUE or state is State.BLOCK_MAPPING_VALUE:
            self.emit_block_mapping_value(event, simple=state is State.BLOCK_MAPPING_SIMPLE_VALUE)
        else:
            raise ValueError(f"unexpected {event.kind.name} in state {state.name}")

    def emit_document_start(self, event: Event, *, first: bool) -> None:
        if event.kind is Kind.STREAM_END:
            self.state = State.END
            return
        if not first:  # every document after the first is marked
            self.write_indent()
            self.write_indicator("---", True, False, False)
            self.write_indent()
        if self.head_comment:
            self.process_head_comment()
            self.put_break()
        self.state = State.DOCUMENT_CONTENT

    def emit_document_end(self, event: Event) -> None:
        self.foot_indent = 0  # [Go] force document foot separation
        self.process_foot_comment()
        self.foot_indent = -1
        self.write_indent()
        self.state = State.DOCUMENT_START

    def emit_flow_empty(self, event: Event, start: str, end: str) -> None:
        # Only empty collections are written in flow style here: "[]" and "{}".
        self.write_indicator(start, True, True, False)
        self.increase_indent(True, False)
        self.flow_level += 1
        if event.kind is Kind.MAPPING_END:
            self.process_head_comment()
        self.flow_level -= 1
        self.pop_indent()
        self.write_indicator(end, False, False, False)
        self.process_line_comment()
        self.process_foot_comment()
        self.pop_state()

    def emit_block_sequence_item(self, event: Event, *, first: bool) -> None:
        if first:
            self.increase_indent(False, False)
        if event.kind is Kind.SEQUENCE_END:
            self.pop_indent()
            self.pop_state()
            return
        self.process_head_comment()
        self.write_indent()
        self.write_indicator("-", True, False, True)
        self.states.append(State.BLOCK_SEQUENCE_ITEM)
        self.emit_node(event, mapping=False, simple_key=False)
        self.process_line_comment()
        self.process_foot_comment()

    def emit_block_mapping_key(self, event: Event, *, first: bool) -> None:
        if first:
            self.increase_indent(False, False)
        self.process_head_comment()
        if event.kind is Kind.MAPPING_END:
            self.pop_indent()
            self.pop_state()
            return
        self.write_indent()
        if self.line_comment:
            # [Go] a line comment for the key: rendered with the value.
            self.key_line_comment, self.line_comment = self.line_comment, ""
        if self.check_simple_key():
            self.states.append(State.BLOCK_MAPPING_SIMPLE_VALUE)
            self.emit_node(event, mapping=True, simple_key=True)
        else:
            self.write_indicator("?", True, False, True)
            self.states.append(State.BLOCK_MAPPING_VALUE)
            self.emit_node(event, mapping=True, simple_key=False)

    def emit_block_mapping_value(self, event: Event, *, simple: bool) -> None:
        if simple:
            self.write_indicator(":", False, False, False)
        else:
            self.write_indent()
            self.write_indicator(":", True, False, True)
        if self.key_line_comment:
            if event.kind is Kind.SCALAR:
                if not self.line_comment:
                    self.line_comment, self.key_line_comment = self.key_line_comment, ""
            elif event.kind in (Kind.MAPPING_START, Kind.SEQUENCE_START) and not (
                event.kind is Kind.SEQUENCE_START and event.flow
            ):
                self.line_comment, self.key_line_comment = self.key_line_comment, self.line_comment
                self.process_line_comment()
                self.line_comment, self.key_line_comment = self.key_line_comment, self.line_comment
        self.states.append(State.BLOCK_MAPPING_KEY)
        self.emit_node(event, mapping=True, simple_key=False)
        self.process_line_comment()
        self.process_foot_comment()

    def emit_node(self, event: Event, *, mapping: bool, simple_key: bool) -> None:
        self.mapping_context = mapping
        self.simple_key_context = simple_key
        if event.kind is Kind.SCALAR:
            self.emit_scalar(event)
        elif event.kind is Kind.SEQUENCE_START:
            empty = self.next_is(Kind.SEQUENCE_END)
            flow = self.flow_level > 0 or event.flow or empty
            self.state = State.FLOW_SEQUENCE_FIRST_ITEM if flow else State.BLOCK_SEQUENCE_FIRST_ITEM
        elif event.kind is Kind.MAPPING_START:
            empty = self.next_is(Kind.MAPPING_END)
            flow = self.flow_level > 0 or event.flow or empty
            self.state = State.FLOW_MAPPING_FIRST_KEY if flow else State.BLOCK_MAPPING_FIRST_KEY
        else:
            raise ValueError(f"expected a node, got {event.kind.name}")

    def next_is(self, kind: Kind) -> bool:
        following = self.head_index + 1
        return following < len(self.events) and self.events[following].kind is kind

    def check_simple_key(self) -> bool:
        event = self.events[self.head_index]
        if event.kind is Kind.SCALAR:
            if self.scalar.multiline:
                return False
            length = (
                len(self.tag_handle)
                + len(self.tag_suffix)
                + len(self.scalar_value.encode("utf-8", "surrogateescape"))
            )
        elif event.kind is Kind.SEQUENCE_START:
            if not self.next_is(Kind.SEQUENCE_END):
                return False
            length = len(self.tag_handle) + len(self.tag_suffix)
        elif event.kind is Kind.MAPPING_START:
            if not self.next_is(Kind.MAPPING_END):
                return False
            length = len(self.tag_handle) + len(self.tag_suffix)
        else:
            return False
        return length <= 128

    def emit_scalar(self, event: Event) -> None:
        style = select_style(
            event.style, self.scalar, simple_key=self.simple_key_context, flow=self.flow_level > 0
        )
        if (
            style is Style.PLAIN
            and not self.scalar_value
            and (self.simple_key_context or self.flow_level > 0)
        ):
            style = Style.SINGLE
            if not self.scalar.single_quoted:
                style = Style.DOUBLE
        if self.tag_handle or self.tag_suffix:
            if not self.whitespace:
                self.put(" ")
            for ch in self.tag_handle + self.tag_suffix:
                self.write(ch)
            self.whitespace = self.indention = False
        self.increase_indent(True, False)
        value = self.scalar_value
        if style is Style.PLAIN:
            self.write_plain(value)
        elif style is Style.SINGLE:
            self.write_single_quoted(value)
        elif style is Style.DOUBLE:
            self.write_double_quoted(value)
        elif style is Style.LITERAL:
            self.write_literal(value)
        else:
            self.write_folded(value)
        self.pop_indent()
        self.pop_state()
