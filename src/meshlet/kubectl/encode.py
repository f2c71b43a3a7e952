"""Objects to text exactly as kubectl writes them: ``-o yaml`` and ``-o json``.

Theory of operation. kubectl marshals an object to JSON and converts that JSON to
YAML with a Go YAML library (a fork of go-yaml v2); ``-o json`` is Go's
``json.MarshalIndent`` with four spaces. Both are reproduced here for JSON-shaped
values (dicts with string keys, lists, str, int, float, bool, None):

* YAML. Mapping keys are sorted the way go-yaml sorts them (runs of digits compare
  as numbers, non-letters before letters). A string is written plain unless plain
  text would read back as something else (``"true"``, ``"8080"``, a timestamp, an
  empty string): then it is double-quoted. A string with a line break is a literal
  block (``|``, ``|-``, ``|+``). The emitter's own checks then apply, as libyaml's
  do: text that cannot be plain (``: ``, a leading ``-``, ``#`` after a space …) is
  single-quoted, and text that cannot be single-quoted (control characters, a space
  next to a line break) is double-quoted with escapes. Long plain and quoted values
  are folded at spaces past column 80, continuing two columns in from their
  container. Sequences inside mappings are not indented (``key:\\n- item``).
* JSON. Keys sorted bytewise; ``<``, ``>`` and ``&`` escaped as ``\\u003c`` …, as Go
  does; floats formatted as Go formats them.

Pure: no I/O. The same value always gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["go_float", "to_json", "to_json_compact", "to_yaml", "yaml_key_order"]

_BEST_WIDTH = 80
_INDENT = 2

# --- JSON ----------------------------------------------------------------------------


def to_json(value: Any) -> str:
    """``value`` as ``json.MarshalIndent(value, "", "    ")`` plus a newline (``-o json``)."""
    parts: list[str] = []
    _json(value, parts, "", indent="    ")
    parts.append("\n")
    return "".join(parts)


def to_json_compact(value: Any) -> str:
    """``value`` as Go's ``json.Marshal``: no spaces, keys sorted."""
    parts: list[str] = []
    _json(value, parts, "", indent=None)
    return "".join(parts)


def _json(value: Any, out: list[str], prefix: str, *, indent: str | None) -> None:
    if isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        keys = sorted(str(k) for k in value)
        by_str = {str(k): v for k, v in value.items()}
        inner = prefix + indent if indent is not None else ""
        out.append("{")
        for index, key in enumerate(keys):
            if index:
                out.append(",")
            if indent is not None:
                out.append("\n" + inner)
            out.append(_json_string(key))
            out.append(": " if indent is not None else ":")
            _json(by_str[key], out, inner, indent=indent)
        if indent is not None:
            out.append("\n" + prefix)
        out.append("}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = prefix + indent if indent is not None else ""
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            if indent is not None:
                out.append("\n" + inner)
            _json(item, out, inner, indent=indent)
        if indent is not None:
            out.append("\n" + prefix)
        out.append("]")
    else:
        out.append(_json_scalar(value))


def _json_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"json: unsupported value: {value}")
        if value != 0 and (abs(value) < 1e-6 or abs(value) >= 1e21):
            text = go_float(value, "e")
            return re.sub(r"e([-+])0(\d)$", r"e\1\2", text)
        return go_float(value, "f")
    return _json_string(str(value))


_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        escaped = _JSON_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(value: float, fmt: str) -> str:
    """``strconv.FormatFloat(value, fmt, -1, 64)`` for ``fmt`` in ``e``, ``f``, ``g``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        digits, point = "0", 1
    else:
        # repr is the shortest text that reads back as the same float, as Go's is.
        decimal = Decimal(repr(abs(value)))
        _, digit_tuple, exponent = decimal.as_tuple()
        digits = "".join(str(d) for d in digit_tuple).lstrip("0") or "0"
        stripped = digits.rstrip("0")
        assert isinstance(exponent, int)
        point = len(digits) + exponent  # position of the decimal point
        digits = stripped or "0"
    if fmt == "g":
        # Go decides with precision 6 when the shortest digits are asked for.
        exp = point - 1
        fmt = "e" if exp < -4 or exp >= 6 else "f"
    if fmt == "e":
        exp = point - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    # 'f'
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


# --- YAML ----------------------------------------------------------------------------


def to_yaml(value: Any) -> str:
    """``value`` as kubectl's ``-o yaml`` prints it (one document, newline-terminated)."""
    writer = _YamlWriter()
    writer.document(value)
    return writer.text()


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _is_digit(ch: str) -> bool:
    return ch.isdigit()


def yaml_key_order(a: str, b: str) -> bool:
    """go-yaml's ``keyList.Less`` for two string keys: does ``a`` sort before ``b``?"""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = _is_letter(a[i]), _is_letter(b[i])
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and _is_digit(a[ai]):
            a_num = a_num * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and _is_digit(b[bi]):
            b_num = b_num * 10 + int(b[bi])
            bi += 1
        if a_num != b_num:
            return a_num < b_num
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


class _KeyOrder:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __lt__(self, other: _KeyOrder) -> bool:
        return yaml_key_order(self.key, other.key)


def _sorted_keys(mapping: Mapping[Any, Any]) -> list[str]:
    return sorted((str(k) for k in mapping), key=_KeyOrder)


# What plain text reads back as (go-yaml v2's resolver): only "is it a string?" matters.

_RESOLVE_MAP = frozenset(
    (
        *("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"),
        *("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"),
        *("~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF"),
        *("+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"),
    )
)
_MAP_HINT = frozenset("yYnNtTfFoO~")
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_FLOAT_DOT = re.compile(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_TIMESTAMPS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(
        r"^(\d{4})-(\d{1,2})-(\d{1,2})[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?"
        r"(?:Z|[+-](\d{2}):(\d{2}))$"
    ),
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?$"),
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_timestamp(text: str) -> bool:
    for pattern in _TIMESTAMPS:
        match = pattern.match(text)
        if match is None:
            continue
        year, month, day = (int(g) for g in match.groups()[:3])
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if not 1 <= month <= 12 or not 1 <= day <= _DAYS[month - 1]:
            continue
        if month == 2 and day == 29 and not leap:
            continue
        rest = match.groups()[3:]
        if rest:
            hour, minute, second = (int(g) for g in rest[:3])
            if hour > 23 or minute > 59 or second > 59:
                continue
            zone = rest[3:]
            if zone and zone[0] is not None and (int(zone[0]) > 23 or int(zone[1]) > 59):
                continue
        return True
    return False


def _go_parse_int(text: str) -> bool:
    """Whether ``strconv.ParseInt(text, 0, 64)`` or ``ParseUint`` succeeds."""
    body = text
    negative = False
    if body[:1] in "+-":
        negative = body[0] == "-"
        body = body[1:]
    if not body:
        return False
    lower = body.lower()
    if lower.startswith("0x"):
        digits, base = body[2:], 16
    elif lower.startswith("0o"):
        digits, base = body[2:], 8
    elif lower.startswith("0b"):
        digits, base = body[2:], 2
    elif body.startswith("0") and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if not digits:
        return False
    try:
        number = int(digits, base)
    except ValueError:
        return False
    if not all(c in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)] for c in digits):
        return False
    if negative:
        return number <= 2**63
    return number < 2**64


def _resolves_plain_to_string(text: str) -> bool:
    if text == "":
        return False
    hint = text[0]
    if (hint in _MAP_HINT or hint in "+-0123456789.") and text in _RESOLVE_MAP:
        return False
    if hint == ".":
        return _GO_FLOAT_DOT.match(text) is None
    if hint in "+-0123456789":
        if _is_timestamp(text):
            return False
        plain = text.replace("_", "")
        if plain and _go_parse_int(plain):
            return False
        if _YAML_FLOAT.match(plain):
            return False
        if plain.startswith("0b") or plain.startswith("-0b"):
            digits = plain[2:] if plain.startswith("0b") else plain[3:]
            if digits and all(c in "01" for c in digits):
                return False
    return True


def _is_printable(ch: str) -> bool:
    cp = ord(ch)
    return (
        cp == 0x0A
        or 0x20 <= cp <= 0x7E
        or 0xA0 <= cp <= 0xD7FF
        or (0xE000 <= cp <= 0xFFFD and cp != 0xFEFF)
    )


_BREAKS = frozenset("\r\n\x85\u2028\u2029")


class _ScalarAnalysis:
    """libyaml's ``yaml_emitter_analyze_scalar``: which styles can hold this text."""

    __slots__ = ("block_allowed", "block_plain_allowed", "multiline", "single_quoted_allowed")

    def __init__(self, value: str) -> None:
        self.multiline = False
        if not value:
            self.block_plain_allowed = False
            self.single_quoted_allowed = True
            self.block_allowed = False
            return
        block_indicators = False
        special = False
        line_breaks = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = False
        previous_space = previous_break = False
        if value.startswith(("---", "...")):
            block_indicators = True
        preceded_by_whitespace = True
        length = len(value)
        for i, ch in enumerate(value):
            followed_by_whitespace = (
                i + 1 >= length or value[i + 1] in " \t" or value[i + 1] in _BREAKS
            )
            if i == 0:
                starts_indicator = ch in "#,[]{}&*!|>'\"%@`" or (
                    ch in "?:-" and followed_by_whitespace
                )
                block_indicators = block_indicators or starts_indicator
            elif (ch == ":" and followed_by_whitespace) or (ch == "#" and preceded_by_whitespace):
                block_indicators = True
            if not _is_printable(ch):
                special = True
            if ch in _BREAKS:
                line_breaks = True
            if ch == " ":
                if i == 0:
                    leading_space = True
                if i == length - 1:
                    trailing_space = True
                if previous_break:
                    break_space = True
                previous_space, previous_break = True, False
            elif ch in _BREAKS:
                if i == 0:
                    leading_break = True
                if i == length - 1:
                    trailing_break = True
                if previous_space:
                    space_break = True
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = False
            preceded_by_whitespace = ch in " \t" or ch in _BREAKS
        self.multiline = line_breaks
        self.block_plain_allowed = True
        self.single_quoted_allowed = True
        self.block_allowed = True
        if leading_space or leading_break or trailing_space or trailing_break:
            self.block_plain_allowed = False
        if trailing_space:
            self.block_allowed = False
        if break_space:
            self.block_plain_allowed = False
            self.single_quoted_allowed = False
        if space_break or special:
            self.block_plain_allowed = False
            self.single_quoted_allowed = False
            self.block_allowed = False
        if line_breaks or block_indicators:
            self.block_plain_allowed = False


def _string_style(value: str, *, simple_key: bool) -> str:
    """``plain``, ``single``, ``double`` or ``literal``, as go-yaml and libyaml choose."""
    if "\n" in value:
        style = "literal"
    elif _resolves_plain_to_string(value) and _BASE60.match(value) is None:
        style = "plain"
    else:
        style = "double"
    analysis = _ScalarAnalysis(value)
    if style == "plain" and not analysis.block_plain_allowed:
        style = "single"
    if style == "single" and not analysis.single_quoted_allowed:
        style = "double"
    if style == "literal" and (not analysis.block_allowed or simple_key):
        style = "double"
    return style


_DOUBLE_ESCAPES = {
    "\0": "0",
    "\a": "a",
    "\b": "b",
    "\t": "t",
    "\n": "n",
    "\v": "v",
    "\f": "f",
    "\r": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}


class _YamlWriter:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.column = 0
        self.open_ended = False

    def text(self) -> str:
        return "".join(self.parts)

    def put(self, text: str) -> None:
        self.parts.append(text)
        self.column += len(text)

    def newline(self, indent: int) -> None:
        self.parts.append("\n" + " " * indent)
        self.column = indent

    # structure

    def document(self, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            self.mapping(value, indent=0, inline=True)
        elif isinstance(value, list | tuple) and value:
            self.sequence(value, indent=0, inline=True)
        else:
            self.scalar(value, indent=_INDENT, leading_space=False)
        self.parts.append("\n")
        if self.open_ended:
            self.parts.append("...\n")

    def mapping(self, value: Mapping[Any, Any], *, indent: int, inline: bool) -> None:
        by_str = {str(k): v for k, v in value.items()}
        for index, key in enumerate(_sorted_keys(value)):
            if index or not inline:
                self.newline(indent)
            self.key(key)
            self.put(":")
            self.open_ended = False
            item = by_str[key]
            if isinstance(item, Mapping) and item:
                self.mapping(item, indent=indent + _INDENT, inline=False)
            elif isinstance(item, list | tuple) and item:
                self.sequence(item, indent=indent, inline=False)
            else:
                self.scalar(item, indent=indent + _INDENT, leading_space=True)

    def sequence(self, value: Sequence[Any], *, indent: int, inline: bool) -> None:
        for index, item in enumerate(value):
            if index or not inline:
                self.newline(indent)
            self.put("-")
            self.open_ended = False
            if isinstance(item, Mapping) and item:
                self.put(" ")
                self.mapping(item, indent=indent + _INDENT, inline=True)
            elif isinstance(item, list | tuple) and item:
                self.put(" ")
                self.sequence(item, indent=indent + _INDENT, inline=True)
            else:
                self.scalar(item, indent=indent + _INDENT, leading_space=True)

    def key(self, key: str) -> None:
        style = _string_style(key, simple_key=True)
        if style == "plain":
            self.put(key)
        elif style == "single":
            self.single_quoted(key, allow_breaks=False, indent=0)
        else:
            self.double_quoted(key, allow_breaks=False, indent=0)

    # scalars

    def scalar(self, value: Any, *, indent: int, leading_space: bool) -> None:
        lead = " " if leading_space else ""
        if isinstance(value, Mapping):
            self.put(lead + "{}")
        elif isinstance(value, list | tuple):
            self.put(lead + "[]")
        elif value is None:
            self.put(lead + "null")
        elif value is True or value is False:
            self.put(lead + ("true" if value else "false"))
        elif isinstance(value, int):
            self.put(lead + str(value))
        elif isinstance(value, float):
            text = go_float(value, "g")
            text = {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)
            self.put(lead + text)
        else:
            text = str(value)
            style = _string_style(text, simple_key=False)
            self.put(lead)
            if style == "plain":
                self.plain(text, indent=indent)
            elif style == "single":
                self.single_quoted(text, allow_breaks=True, indent=indent)
            elif style == "double":
                self.double_quoted(text, allow_breaks=True, indent=indent)
            else:
                self.literal(text, indent=indent)

    def plain(self, text: str, *, indent: int) -> None:
        spaces = False
        for i, ch in enumerate(text):
            if ch == " ":
                next_is_space = i + 1 < len(text) and text[i + 1] == " "
                if not spaces and self.column > _BEST_WIDTH and not next_is_space:
                    self.newline(indent)
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                spaces = False

    def single_quoted(self, text: str, *, allow_breaks: bool, indent: int) -> None:
        self.put("'")
        spaces = False
        last = len(text) - 1
        for i, ch in enumerate(text):
            if ch == " ":
                if (
                    allow_breaks
                    and not spaces
                    and self.column > _BEST_WIDTH
                    and i not in (0, last)
                    and text[i + 1] != " "
                ):
                    self.newline(indent)
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put("''" if ch == "'" else ch)
                spaces = False
        self.put("'")

    def double_quoted(self, text: str, *, allow_breaks: bool, indent: int) -> None:
        self.put('"')
        spaces = False
        last = len(text) - 1
        for i, ch in enumerate(text):
            if not _is_printable(ch) or ch in _BREAKS or ch in '"\\' or ch == "\ufeff":
                code = _DOUBLE_ESCAPES.get(ch)
                if code is None:
                    cp = ord(ch)
                    if cp <= 0xFF:
                        code = f"x{cp:02X}"
                    elif cp <= 0xFFFF:
                        code = f"u{cp:04X}"
                    else:
                        code = f"U{cp:08X}"
                self.put("\\" + code)
                spaces = False
            elif ch == " ":
                if allow_breaks and not spaces and self.column > _BEST_WIDTH and i not in (0, last):
                    self.newline(indent)
                    if text[i + 1] == " ":
                        self.put("\\")
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                spaces = False
        self.put('"')

    def literal(self, text: str, *, indent: int) -> None:
        hints = "|"
        if text[0] == " " or text[0] in _BREAKS:
            hints += str(_INDENT)
        if text[-1] not in _BREAKS:
            hints += "-"
        elif len(text) == 1 or text[-2] in _BREAKS:
            hints += "+"
        self.put(hints)
        self.open_ended = hints.endswith("+")
        lines = re.split("\r\n|[\r\n\x85\u2028\u2029]", text)
        if lines and lines[-1] == "":
            lines.pop()  # the final line break ends the last line
        for line in lines:
            if line:
                self.newline(indent)
                self.put(line)
            else:
                self.parts.append("\n")
                self.column = 0
