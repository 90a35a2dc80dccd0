"""Templates render with the fetched values and pure filters, inside a sandbox."""

from __future__ import annotations

import pytest

from secretsync.engine.render import render
from secretsync.errors import ConfigError

VALUES = {"username": b"app", "password": b"s3cr3t"}


def test_template_combines_values() -> None:
    out = render({"DSN": "postgres://{{ username }}:{{ password }}@db:5432/app"}, VALUES)
    assert out == {"DSN": b"postgres://app:s3cr3t@db:5432/app"}


def test_filters_base64_and_json() -> None:
    out = render({"b": "{{ password | b64enc }}", "j": "{{ ('{\"a\": 1}' | fromjson).a }}"}, VALUES)
    assert out == {"b": b"czNjcjN0", "j": b"1"}


@pytest.mark.parametrize(
    "source",
    [
        "{{ username.__class__.__mro__ }}",
        "{{ username.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ range(10) }}",
    ],
)
def test_the_sandbox_refuses_attribute_escapes_and_globals(source: str) -> None:
    with pytest.raises(ConfigError) as err:
        render({"x": source}, VALUES)
    assert "spec.target.template.data['x']" in str(err.value)
    assert "s3cr3t" not in str(err.value)


def test_syntax_errors_give_the_line() -> None:
    with pytest.raises(ConfigError, match="syntax error at line 2"):
        render({"x": "ok\n{{ username "}, VALUES)


def test_undefined_names_are_errors_listing_the_known_names_not_values() -> None:
    with pytest.raises(ConfigError) as err:
        render({"x": "{{ pasword }}"}, VALUES)
    assert "the values are: password, username" in str(err.value)
    assert "s3cr3t" not in str(err.value)
