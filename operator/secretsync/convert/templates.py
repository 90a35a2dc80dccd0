"""ESO's Go templates (engine v2, sprig functions) to secretsync's Jinja2 templates.

Only what maps one to one is translated: field references (`{{ .password }}`), `index .
"key"`, literals, parentheses, and pipelines of functions with a Jinja filter of the same
meaning in secretsync's sandbox (engine/render.py: Jinja's built-ins plus b64enc, b64dec,
fromjson, tojson). Anything else (if, range, with, variables, other sprig functions) is
reported and the template left untranslated. A problem names the construct, never the
template text, which may embed a literal secret.
"""

from __future__ import annotations

import dataclasses
import json
import keyword
import re
from collections.abc import Callable, Sequence

# Go function name -> how its (Jinja-translated) arguments become a Jinja expression.
# The piped value is the last argument, as in Go.
Filter = Callable[[Sequence[str]], str]


def _filter(name: str, arity: int) -> tuple[int, Filter]:
    def build(args: Sequence[str]) -> str:
        *params, value = args
        call = f"{name}({', '.join(params)})" if params else name
        return f"{value} | {call}"

    return arity, build


def _default(args: Sequence[str]) -> str:
    # sprig's default replaces empty values as well as missing ones: Jinja's with boolean=true.
    fallback, value = args
    return f"{value} | default({fallback}, true)"


def _index(args: Sequence[str]) -> str:
    value, *keys = args
    return value + "".join(f"[{k}]" for k in keys)


FUNCTIONS: dict[str, tuple[int, Filter]] = {
    "upper": _filter("upper", 1),
    "lower": _filter("lower", 1),
    "trim": _filter("trim", 1),
    "b64enc": _filter("b64enc", 1),
    "b64dec": _filter("b64dec", 1),
    "toString": _filter("string", 1),
    "toJson": _filter("tojson", 1),
    "mustToJson": _filter("tojson", 1),
    "toRawJson": _filter("tojson", 1),
    "fromJson": _filter("fromjson", 1),
    "mustFromJson": _filter("fromjson", 1),
    "replace": _filter("replace", 3),
    "default": (2, _default),
}
# Functions that look alike in both but differ: reported with the reason.
DIFFERENT = {
    "quote": "Go's %q escaping differs from any Jinja filter",
    "squote": "no Jinja filter quotes a value",
    "title": "Jinja's title lower-cases the rest of each word, Go's does not",
    "trimPrefix": "no Jinja filter removes a prefix",
    "trimSuffix": "no Jinja filter removes a suffix",
    "indent": "Jinja's indent skips the first line, sprig's does not",
    "nindent": "no Jinja filter matches nindent",
    "len": "Go counts bytes, Jinja counts characters",
}
CONTROL = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
JINJA_RESERVED = {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is"}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TEMPLATE = 4096  # the CRD's maxLength of one template


class Untranslatable(Exception):  # noqa: N818 - internal control flow, never raised outside
    """Why an action cannot be translated (a construct name, never template text)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Translation:
    """A Jinja template, or None with the reasons it could not be made."""

    text: str | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def variable(key: str) -> str | None:
    """The Jinja name a value's key is reachable as, if any."""
    if IDENTIFIER.match(key) and key not in JINJA_RESERVED and not keyword.iskeyword(key):
        return key
    return None


# --- lexing one action ---------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)*')
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<number>-?[0-9][0-9._xXa-fA-F]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<assign>:?=)
  | (?P<punct>[()|,])
    )""",
    re.VERBOSE,
)


def _tokens(body: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    body = body.strip()
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            raise Untranslatable("an expression the translator does not know")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


# --- parsing and translating ---------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.notes: list[str] = []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def pipeline(self) -> str:
        value = self.command(None)
        while (tok := self.peek()) is not None and tok == ("punct", "|"):
            self.take()
            value = self.command(value)
        return value

    def command(self, piped: str | None) -> str:
        tok = self.peek()
        if tok is None:
            raise Untranslatable("an empty pipeline stage")
        kind, text = tok
        if kind == "ident" and text not in ("true", "false", "nil"):
            self.take()
            return self.call(text, piped)
        if piped is not None:
            raise Untranslatable("a pipeline into a value that is not a function")
        value = self.operand()
        if (nxt := self.peek()) is not None and nxt not in (("punct", "|"), ("punct", ")")):
            raise Untranslatable("a value followed by arguments")
        return value

    def call(self, name: str, piped: str | None) -> str:
        if name in CONTROL:
            raise Untranslatable(f"the {name!r} action")
        args: list[str] = []
        if name == "index":
            return self.index(piped)
        while (tok := self.peek()) is not None and tok not in (("punct", "|"), ("punct", ")")):
            args.append(self.operand())
        if piped is not None:
            args.append(piped)
        if name in DIFFERENT:
            raise Untranslatable(f"the function {name!r} ({DIFFERENT[name]})")
        if name not in FUNCTIONS:
            raise Untranslatable(f"the function {name!r}, which has no Jinja equivalent here")
        arity, build = FUNCTIONS[name]
        if len(args) != arity:
            raise Untranslatable(f"the function {name!r} with {len(args)} arguments")
        if name in ("toJson", "mustToJson", "toRawJson"):
            self.notes.append(
                "toJson becomes tojson: non-ASCII and <, >, & are escaped differently"
            )
        return build(args)

    def index(self, piped: str | None) -> str:
        tok = self.peek()
        if tok == ("field", "."):
            # index . "key": a value by a key that is not a Go identifier.
            self.take()
            keys = []
            while (t := self.peek()) is not None and t[0] in ("string", "raw"):
                keys.append(_go_string(self.take()))
            if len(keys) != 1 or piped is not None:
                raise Untranslatable("'index .' with other than one key")
            name = variable(keys[0])
            if name is None:
                raise Untranslatable(
                    "'index .' of a key that is not a Jinja name (letters, digits, '_')"
                )
            return name
        args = []
        while (t := self.peek()) is not None and t not in (("punct", "|"), ("punct", ")")):
            args.append(self.operand())
        if piped is not None:
            args.append(piped)
        if len(args) < 2:
            raise Untranslatable("'index' without a key")
        return _index(args)

    def operand(self) -> str:
        kind, text = self.take()
        if kind == "field":
            if text == ".":
                raise Untranslatable("the whole context '.' (Jinja has no name for it)")
            parts = text[1:].split(".")
            if len(parts) > 1:
                raise Untranslatable("a field of a value ('.a.b'): ESO's values are strings")
            name = variable(parts[0])
            if name is None:
                raise Untranslatable(f"the field of a key that is a Jinja keyword ({parts[0]!r})")
            return name
        if kind in ("string", "raw", "char"):
            if kind == "char":
                raise Untranslatable("a Go character constant")
            return json.dumps(_go_string((kind, text)))
        if kind == "number":
            if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
                raise Untranslatable("a Go number literal Jinja does not read")
            return text
        if kind == "ident" and text in ("true", "false"):
            return text
        if kind == "var":
            raise Untranslatable("template variables ('$')")
        if kind == "assign":
            raise Untranslatable("a variable assignment")
        if (kind, text) == ("punct", "("):
            inner = self.pipeline()
            if self.peek() != ("punct", ")"):
                raise Untranslatable("an unclosed parenthesis")
            self.take()
            expr = f"({inner})"
            # (x | fromJson).field: a field of the parsed JSON.
            while (t := self.peek()) is not None and t[0] == "field" and t[1] != ".":
                self.take()
                expr += "".join(f"[{json.dumps(p)}]" for p in t[1][1:].split("."))
            return expr
        raise Untranslatable(f"the token {kind!r} here")


def _go_string(tok: tuple[str, str]) -> str:
    kind, text = tok
    if kind == "raw":
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError:
        raise Untranslatable("a Go string escape JSON does not share") from None
    if not isinstance(value, str):
        raise Untranslatable("a Go string literal")
    return value


def _action_end(source: str, start: int) -> int:
    """The index of the `}}` closing the action opened at start, skipping quoted text."""
    i = start + 2
    while i < len(source):
        ch = source[i]
        if ch in "\"'`":
            close = source.find(ch, i + 1) if ch == "`" else _quote_end(source, i)
            if close < 0:
                return -1
            i = close + 1
            continue
        if source.startswith("}}", i):
            return i
        i += 1
    return -1


def _quote_end(source: str, i: int) -> int:
    quote, j = source[i], i + 1
    while j < len(source):
        if source[j] == "\\":
            j += 2
            continue
        if source[j] == quote:
            return j
        j += 1
    return -1


def _literal(text: str) -> str:
    # Text outside actions must not open Jinja blocks or comments.
    return re.sub(r"(\{[%#{])", lambda m: "{{ " + json.dumps(m.group(1)) + " }}", text)


def translate(source: str) -> Translation:
    """The Jinja2 template for one ESO template, or why it has none."""
    out: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            out.append(_literal(source[pos:]))
            break
        out.append(_literal(source[pos:start]))
        end = _action_end(source, start)
        if end < 0:
            problems.append("an unclosed '{{' action")
            break
        body = source[start + 2 : end]
        pos = end + 2
        left = body.startswith("- ") or body == "-"
        right = body.endswith(" -")
        body = body[2 if left else 0 : len(body) - 2 if right else len(body)]
        stripped = body.strip()
        if stripped.startswith("/*") and stripped.endswith("*/"):
            if left or right:
                out.append(("{{- " if left else "{{ ") + "''" + (" -}}" if right else " }}"))
            continue
        try:
            parser = _Parser(_tokens(body))
            expr = parser.pipeline()
            if parser.peek() is not None:
                raise Untranslatable("an unbalanced ')'")
        except Untranslatable as exc:
            problems.append(str(exc))
            continue
        notes.extend(n for n in parser.notes if n not in notes)
        out.append(("{{- " if left else "{{ ") + expr + (" -}}" if right else " }}"))
    if problems:
        return Translation(None, tuple(dict.fromkeys(problems)), tuple(notes))
    text = "".join(out)
    if len(text) > MAX_TEMPLATE:
        return Translation(None, (f"longer than {MAX_TEMPLATE} characters once translated",))
    return Translation(text, (), tuple(notes))
