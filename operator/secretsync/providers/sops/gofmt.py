"""Numbers and times written and read as Go's strconv and time packages do.

sops is a Go program: its MAC hashes numbers in Go's spelling, and `sops decrypt`
prints them in Go's (yaml.v3's, encoding/json's). Python's spellings differ
(`1.0` vs `1`, `1e+21` vs `1e21`), so each one sops uses is rebuilt here from the
shortest round-trip digits, which Python's repr and Go's -1 precision share.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
import re


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits of a finite, non-zero |value| and the decimal point's
    position: value = 0.DIGITS x 10**point."""
    exact = decimal.Decimal(repr(abs(value))).normalize()
    _sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    return text, len(text) + exponent


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def format_f(value: float) -> str:
    """strconv.FormatFloat(value, 'f', -1, 64): what sops hashes and encrypts."""
    special = _special(value)
    if special is not None:
        return special
    return format(decimal.Decimal(repr(value)).normalize(), "f")


def _format_e(sign: str, digits: str, point: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exponent = point - 1
    return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _format_plain(sign: str, digits: str, point: int) -> str:
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def format_g(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64): how yaml.v3 writes a float."""
    special = _special(value)
    if special is not None:
        return special
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    if point - 1 < -4 or point - 1 >= 6:
        return _format_e(sign, digits, point)
    return _format_plain(sign, digits, point)


def format_json(value: float) -> str:
    """A float as encoding/json writes it (sops's JSON output)."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        digits, point = _digits(value)
        text = _format_e(sign, digits, point)
        # encoding/json shortens a two-digit negative exponent: e-07 -> e-7.
        return re.sub(r"e-0(\d)$", r"e-\1", text)
    return format_f(value)


def format_val(value: float) -> str:
    """A float as sops's stores.ValToString writes it (a dotenv value): Go's 'G' format,
    with ".0" added to a whole number."""
    text = format_g(value).replace("e", "E")
    if "." not in text and "E" not in text and _special(value) is None:
        text = f"{value:.1f}"
    return text


@dataclasses.dataclass(frozen=True)
class GoTime:
    """A time.Time as sops holds it: RFC 3339 with nanoseconds and a fixed offset.

    Python's datetime has microseconds only, so the text is kept: it is what sops
    hashes (MarshalText) and prints (yaml.v3 writes RFC3339Nano too).
    """

    text: str  # time.RFC3339Nano: 2006-01-02T15:04:05.999999999Z07:00

    def to_datetime(self) -> datetime.datetime:
        """The nearest datetime (nanoseconds truncated to microseconds)."""
        match = _RFC3339.fullmatch(self.text)
        assert match is not None
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        micros = int((fraction or "").ljust(6, "0")[:6])
        return datetime.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micros,
            tzinfo=_zone(zone),
        )


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)
# yaml.v3's timestamp layouts (resolve.go allowedTimestampFormats): one- or two-digit
# month, day, hour, minute and second; a fraction; a zone only with the T form.
_YAML_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:([Tt])|( ))(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?)?"
)


def _zone(zone: str) -> datetime.timezone:
    if zone in ("Z", "z"):
        return datetime.UTC
    sign = -1 if zone[0] == "-" else 1
    return datetime.timezone(
        sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    )


def _build(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    fraction: str,
    zone: str,
) -> GoTime | None:
    try:
        datetime.datetime(year, month, day, hour, minute, second)
        tz = _zone(zone) if zone else datetime.UTC
    except ValueError:
        return None
    offset = tz.utcoffset(None)
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    if abs(minutes) >= 24 * 60:
        return None
    # RFC3339Nano drops trailing zeros of the fraction, and the fraction if it is zero;
    # a zero offset is written Z (time.Format with Z07:00).
    fraction = fraction.rstrip("0")
    zone_text = (
        "Z"
        if minutes == 0
        else f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    return GoTime(
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        f"{'.' + fraction if fraction else ''}{zone_text}"
    )


def parse_rfc3339(text: str) -> GoTime | None:
    """time.Parse(time.RFC3339, text) (which also takes a fraction); None if it fails."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    return _build(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        fraction or "",
        zone,
    )


def parse_yaml_timestamp(text: str) -> GoTime | None:
    """yaml.v3's parseTimestamp: a date, or a date and time, in the layouts it accepts."""
    match = _YAML_TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, tee, space, hour, minute, second, fraction, zone = match.groups()
    if hour is None:
        return _build(int(year), int(month), int(day), 0, 0, 0, "", "")
    if space and zone:
        return None  # the space-separated layout has no zone
    if tee and not zone:
        return None  # the T layouts require one
    return _build(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        fraction or "",
        zone or "",
    )


def rfc3339(time: GoTime) -> str:
    """time.Format(time.RFC3339): the fraction dropped (sops's MAC additional data)."""
    return re.sub(r"\.\d+", "", time.text, count=1)
