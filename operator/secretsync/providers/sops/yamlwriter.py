"""go-yaml v3's output primitives and scalar styles (emitterc.go), for yamlemitter.

How a scalar may be written (yaml_emitter_analyze_scalar), which style it gets
(yaml_emitter_select_scalar_style) and how each style is written, plus the column and
indentation bookkeeping every write shares. There is no line wrapping: yaml.v3 sets
no width limit, so the Go code's wrapping branches never run.
"""

from __future__ import annotations

import dataclasses
import enum


class Style(enum.Enum):
    """Scalar styles."""

    PLAIN = enum.auto()
    SINGLE = enum.auto()
    DOUBLE = enum.auto()
    LITERAL = enum.auto()
    FOLDED = enum.auto()


_BREAKS = "\r\n\x85\u2028\u2029"
_ESCAPES = {
    0x00: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f",
    0x0D: "r", 0x1B: "e", 0x22: '"', 0x5C: "\\", 0x85: "N", 0xA0: "_",
    0x2028: "L", 0x2029: "P",
}  # fmt: skip


def _printable(ch: str) -> bool:
    c = ord(ch)
    return (
        c == 0x0A
        or 0x20 <= c <= 0x7E
        or 0xA0 <= c <= 0xD7FF
        or (0xE000 <= c <= 0xFFFD and c != 0xFEFF)
    )  # go-yaml's is_printable: nothing above U+FFFF


@dataclasses.dataclass
class Analysis:
    """yaml_emitter_analyze_scalar's verdict."""

    multiline: bool = False
    flow_plain: bool = True
    block_plain: bool = True
    single_quoted: bool = True
    block: bool = True


def analyze_scalar(value: str) -> Analysis:
    """Which styles can write `value` (yaml_emitter_analyze_scalar)."""
    if not value:
        return Analysis(False, False, True, True, False)
    block_ind = flow_ind = value.startswith(("---", "..."))
    line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_by_ws = True
    n = len(value)
    for i, ch in enumerate(value):
        followed_by_ws = i + 1 >= n or value[i + 1] in " \t" + _BREAKS
        if i == 0:
            if ch in "#,[]{}&*!|>'\"%@`":
                flow_ind = block_ind = True
            elif ch in "?:":
                flow_ind = True
                block_ind = block_ind or followed_by_ws
            elif ch == "-" and followed_by_ws:
                flow_ind = block_ind = True
        elif ch in ",?[]{}":
            flow_ind = True
        elif ch == ":":
            flow_ind = True
            block_ind = block_ind or followed_by_ws
        elif ch == "#" and preceded_by_ws:
            flow_ind = block_ind = True
        if ch == "\t":
            tabs = True
        elif not _printable(ch):
            special = True
        if ch == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == n - 1
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in _BREAKS:
            line_breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == n - 1
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = ch in " \t" + _BREAKS
    out = Analysis(multiline=line_breaks)
    if leading_space or leading_break or trailing_space or trailing_break:
        out.flow_plain = out.block_plain = False
    if trailing_space:
        out.block = False
    if break_space or space_break or tabs or special:
        out.flow_plain = out.block_plain = out.single_quoted = False
    if space_break or special:
        out.block = False
    if line_breaks:
        out.flow_plain = out.block_plain = False
    if flow_ind:
        out.flow_plain = False
    if block_ind:
        out.block_plain = False
    return out


def select_style(style: Style, analysis: Analysis, *, simple_key: bool, flow: bool) -> Style:
    """yaml_emitter_select_scalar_style for an implicit (untagged) or tagged scalar."""
    if simple_key and analysis.multiline:
        style = Style.DOUBLE
    if style is Style.PLAIN and (
        (flow and not analysis.flow_plain) or (not flow and not analysis.block_plain)
    ):
        style = Style.SINGLE
    if style is Style.SINGLE and not analysis.single_quoted:
        style = Style.DOUBLE
    if style in (Style.LITERAL, Style.FOLDED) and (not analysis.block or flow or simple_key):
        style = Style.DOUBLE
    return style


class Writer:
    """The output and its column, indentation and whitespace state; the scalar styles."""

    def __init__(self, indent: int) -> None:
        self.best_indent = indent if 2 <= indent <= 9 else 2
        self.out: list[str] = []
        self.indent = -1
        self.column = 0
        self.whitespace = self.indention = True
        self.foot_indent = -1
        self.line_comment = ""

    # --- writing ---------------------------------------------------------------------

    def put(self, ch: str) -> None:
        self.out.append(ch)
        self.column += 1

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0
        self.indention = True

    def write(self, ch: str) -> None:
        self.out.append(ch)
        self.column += 1

    def write_break(self, ch: str) -> None:
        if ch == "\n":
            self.put_break()
        else:
            self.out.append(ch)
            self.column = 0
            self.indention = True

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (
            not self.indention
            or self.column > indent
            or (self.column == indent and not self.whitespace)
        ):
            self.put_break()
        if self.foot_indent == indent:
            self.put_break()
        while self.column < indent:
            self.put(" ")
        self.whitespace = True
        self.foot_indent = -1

    def write_indicator(
        self, indicator: str, need_whitespace: bool, is_whitespace: bool, is_indention: bool
    ) -> None:
        if need_whitespace and not self.whitespace:
            self.put(" ")
        for ch in indicator:
            self.write(ch)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    def write_comment(self, comment: str) -> None:
        breaks = pound = False
        for ch in comment:
            if ch in _BREAKS:
                self.write_break(ch)
                breaks, pound = True, False
            else:
                if breaks:
                    self.write_indent()
                if not pound:
                    if ch != "#":
                        self.put("#")
                        self.put(" ")
                    pound = True
                self.write(ch)
                self.indention = breaks = False
        if not breaks:
            self.put_break()
        self.whitespace = True

    def process_line_comment(self, linebreak: bool = False) -> None:
        if not self.line_comment:
            if linebreak:
                self.put_break()
            return
        if not self.whitespace:
            self.put(" ")
        self.write_comment(self.line_comment)
        self.line_comment = ""

    # --- scalars (no line wrapping: go-yaml v3's width is unlimited) ------------------

    def write_plain(self, value: str) -> None:
        if value and not self.whitespace:
            self.put(" ")
        breaks = False
        for ch in value:
            if ch in _BREAKS:
                if not breaks and ch == "\n":
                    self.put_break()
                self.write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.write(ch)
                self.indention = breaks = False
        if value:
            self.whitespace = False
        self.indention = False

    def write_single_quoted(self, value: str) -> None:
        self.write_indicator("'", True, False, False)
        breaks = False
        for ch in value:
            if ch in _BREAKS:
                if not breaks and ch == "\n":
                    self.put_break()
                self.write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                if ch == "'":
                    self.put("'")
                self.write(ch)
                self.indention = breaks = False
        self.write_indicator("'", False, False, False)
        self.whitespace = self.indention = False

    def write_double_quoted(self, value: str) -> None:
        self.write_indicator('"', True, False, False)
        # go-yaml's is_bom looks at the start of the value, not at the character.
        bom = value.startswith("\ufeff")
        for ch in value:
            if not _printable(ch) or bom or ch in _BREAKS or ch in '"\\':
                self.put("\\")
                code = ord(ch)
                if code in _ESCAPES:
                    self.put(_ESCAPES[code])
                else:
                    letter, width = (
                        ("x", 2) if code <= 0xFF else ("u", 4) if code <= 0xFFFF else ("U", 8)
                    )
                    for out in letter + format(code, f"0{width}X"):
                        self.put(out)
            else:
                self.write(ch)
        self.write_indicator('"', False, False, False)
        self.whitespace = self.indention = False

    def write_block_hints(self, value: str) -> None:
        if value and (value[0] == " " or value[0] in _BREAKS):
            self.write_indicator(str(self.best_indent), False, False, False)
        if not value or value[-1] not in _BREAKS:
            self.write_indicator("-", False, False, False)
        elif len(value) == 1 or value[-2] in _BREAKS:
            self.write_indicator("+", False, False, False)

    def write_literal(self, value: str) -> None:
        self.write_indicator("|", True, False, False)
        self.write_block_hints(value)
        self.process_line_comment(linebreak=True)
        self.whitespace = True
        breaks = True
        for ch in value:
            if ch in _BREAKS:
                self.write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.write(ch)
                self.indention = breaks = False

    def write_folded(self, value: str) -> None:
        self.write_indicator(">", True, False, False)
        self.write_block_hints(value)
        self.process_line_comment(linebreak=True)
        self.whitespace = True
        breaks = leading_spaces = True
        for i, ch in enumerate(value):
            if ch in _BREAKS:
                if not breaks and not leading_spaces and ch == "\n":
                    k = 0
                    while k < len(value) and value[k] in _BREAKS:
                        k += 1
                    if not (k >= len(value) or value[k] in " \t" + _BREAKS):
                        self.put_break()
                self.write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                    leading_spaces = value[i] in " \t"
                self.write(ch)
                self.indention = breaks = False
