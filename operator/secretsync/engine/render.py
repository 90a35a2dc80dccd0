"""Target templates: Jinja2 in an immutable sandbox, with the fetched values and a few
pure filters. No environment, files, network, globals or other objects are reachable."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from secretsync.errors import ConfigError


def _b64enc(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def _b64dec(value: str) -> str:
    return base64.b64decode(value).decode()


def _fromjson(value: str) -> Any:
    return json.loads(value)


def _tojson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,  # a typo is an error, not an empty password
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(): only the values
    env.filters.update(b64enc=_b64enc, b64dec=_b64dec, fromjson=_fromjson, tojson=_tojson)
    return env


_ENV = _environment()


def render(templates: Mapping[str, str], values: Mapping[str, bytes]) -> dict[str, bytes]:
    """Render each template over the values (text where UTF-8, else raw bytes)."""
    context: dict[str, Any] = {}
    for key, raw in values.items():
        try:
            context[key] = raw.decode()
        except UnicodeDecodeError:
            context[key] = raw
    out: dict[str, bytes] = {}
    for key, source in templates.items():
        where = f"spec.target.template.data[{key!r}]"
        try:
            text = _ENV.from_string(source).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{where}: syntax error at line {exc.lineno}") from None
        except jinja2.UndefinedError:
            known = ", ".join(sorted(context)) or "none"
            raise ConfigError(f"{where}: uses an undefined name; the values are: {known}") from None
        except jinja2.exceptions.SecurityError:
            raise ConfigError(f"{where}: refused by the template sandbox") from None
        except Exception as exc:  # noqa: BLE001 - a filter's error text could quote a value
            raise ConfigError(f"{where}: rendering failed ({type(exc).__name__})") from None
        out[key] = text.encode()
    return out
