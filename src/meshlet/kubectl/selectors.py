"""Label selectors as ``-l`` takes them, parsed and matched as Kubernetes does.

Grammar: requirements joined by commas; each is ``key``, ``!key``, ``key=value``,
``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a)``, ``key>1`` or
``key<1``. A lexer splits on whitespace and the symbols ``=!(),<>``; the words
``in`` and ``notin`` are operators after a key and plain values inside a list.
Keys must be qualified names and values label values, with Kubernetes' messages.
An empty selector matches everything. ``!=`` and ``notin`` match objects without
the key; ``in``, ``=`` and ``==`` need it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Operator", "Requirement", "Selector", "SelectorError", "matches", "parse_selector"]


class SelectorError(ValueError):
    """A selector that does not parse; the text is Kubernetes' own message."""


class Operator(enum.Enum):
    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = "gt"
    LESS_THAN = "lt"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.key not in labels or len(self.values) != 1:
            return False
        try:
            have, want = _go_int(labels[self.key]), _go_int(self.values[0])
        except ValueError:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        symbol = {
            Operator.IN: " in ",
            Operator.NOT_IN: " notin ",
            Operator.GREATER_THAN: ">",
            Operator.LESS_THAN: "<",
        }.get(op, op.value)
        values = ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            values = f"({values})"
        return f"{self.key}{symbol}{values}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements, sorted by key; all must match."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def matches(selector: Selector | str, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy ``selector`` (a parsed one or ``-l`` text)."""
    parsed = parse_selector(selector) if isinstance(selector, str) else selector
    return parsed.matches(labels)


def _go_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    number = int(text)
    if not -(2**63) <= number < 2**63:
        raise ValueError(text)
    return number


# --- validation messages (apimachinery's util/validation) ---------------------------

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    shown = "".join(("'" if i == 0 else " or '") + e + "', " for i, e in enumerate(examples))
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


_QUALIFIED_NAME_MSG = _regex_error(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character",
    "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
    "MyName",
    "my.name",
    "123-abc",
)


def _label_key_errors(key: str) -> list[str]:
    errors: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN.match(prefix):
                errors.append(
                    "prefix part "
                    + _regex_error(
                        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                        "characters, '-' or '.', and must start and end with an alphanumeric "
                        "character",
                        r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                        "example.com",
                    )
                )
    else:
        return [
            "a qualified name "
            + _QUALIFIED_NAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME.match(name):
        errors.append("name part " + _QUALIFIED_NAME_MSG)
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errors.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
                "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errors


def _go_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


def _invalid(path: str, value: str, detail: str) -> str:
    return f"{path}: Invalid value: {_go_quote(value)}: {detail}"


# --- lexer and parser ---------------------------------------------------------------


class _Tok(enum.Enum):
    ERROR = 0
    END = 1
    CLOSE = 2
    COMMA = 3
    NOT = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GT = 7
    IDENT = 8
    IN = 9
    LT = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN = 13


_SYMBOLS = {
    ")": _Tok.CLOSE,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GT,
    "in": _Tok.IN,
    "<": _Tok.LT,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[_Tok, str]]:
    items: list[tuple[_Tok, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text) or text[pos] == "\0":
            items.append((_Tok.END, ""))
            return items
        if text[pos] in _SPECIAL:
            buffer = ""
            last: tuple[_Tok, str] | None = None
            while pos < len(text) and text[pos] in _SPECIAL:
                buffer += text[pos]
                token = _SYMBOLS.get(buffer)
                if token is not None:
                    last = (token, buffer)
                    pos += 1
                elif last is not None:
                    break
                else:
                    pos += 1
            if last is None:
                items.append((_Tok.ERROR, f"error expected: keyword found '{buffer}'"))
            else:
                items.append(last)
        else:
            start = pos
            while pos < len(text) and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                pos += 1
            word = text[start:pos]
            token = _SYMBOLS.get(word)
            items.append((token, word) if token is not None else (_Tok.IDENT, word))


_BINARY = "in, notin, =, ==, !=, gt, lt"


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def _get(self, values: bool, advance: bool) -> tuple[_Tok, str]:
        token, literal = self.items[self.position]
        if advance:
            self.position += 1
        if values and token in (_Tok.IN, _Tok.NOT_IN):
            token = _Tok.IDENT
        return token, literal

    def lookahead(self, values: bool = True) -> tuple[_Tok, str]:
        return self._get(values, advance=False)

    def consume(self, values: bool = True) -> tuple[_Tok, str]:
        return self._get(values, advance=True)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token, literal = self.lookahead()
            if token in (_Tok.IDENT, _Tok.NOT):
                try:
                    requirements.append(self.requirement())
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}") from None
                token, literal = self.consume()
                if token is _Tok.END:
                    return requirements
                if token is _Tok.COMMA:
                    after, after_literal = self.lookahead()
                    if after not in (_Tok.IDENT, _Tok.NOT):
                        raise SelectorError(
                            f"found '{after_literal}', expected: identifier after ','"
                        )
                else:
                    raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            elif token is _Tok.END:
                return requirements
            else:
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )

    def requirement(self) -> Requirement:
        operator: Operator | None = None
        token, key = self.consume()
        if token is _Tok.NOT:
            operator = Operator.DOES_NOT_EXIST
            token, key = self.consume()
        if token is not _Tok.IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        key_errors = _label_key_errors(key)
        if key_errors:
            raise SelectorError(_invalid("<nil>", key, "; ".join(key_errors)))
        if self.lookahead()[0] in (_Tok.END, _Tok.COMMA) and operator is None:
            operator = Operator.EXISTS
        if operator is not None:
            return Requirement(key, operator)
        token, literal = self.consume(values=False)
        ops = {
            _Tok.IN: Operator.IN,
            _Tok.EQUALS: Operator.EQUALS,
            _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            _Tok.GT: Operator.GREATER_THAN,
            _Tok.LT: Operator.LESS_THAN,
            _Tok.NOT_IN: Operator.NOT_IN,
            _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
        }
        found = ops.get(token)
        if found is None:
            raise SelectorError(f"found '{literal}', expected: {_BINARY}")
        values = self.set_values() if found in (Operator.IN, Operator.NOT_IN) else self.exact()
        errors: list[str] = []
        if found in (Operator.GREATER_THAN, Operator.LESS_THAN):
            for index, value in enumerate(values):
                try:
                    _go_int(value)
                except ValueError:
                    errors.append(
                        _invalid(
                            f"values[{index}]",
                            value,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        )
                    )
        for index, value in enumerate(values):
            value_errors = _label_value_errors(value)
            if value_errors:
                errors.append(_invalid(f"values[{index}][{key}]", value, "; ".join(value_errors)))
        if errors:
            raise SelectorError(errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")
        return Requirement(key, found, values)

    def set_values(self) -> tuple[str, ...]:
        token, literal = self.consume()
        if token is not _Tok.OPEN:
            raise SelectorError(f"found '{literal}' expected: '('")
        token, literal = self.lookahead()
        if token in (_Tok.IDENT, _Tok.COMMA):
            values = self.identifiers()
            closing, _ = self.consume()
            if closing is not _Tok.CLOSE:
                raise SelectorError(f"found '{literal}', expected: ')'")
            return values
        if token is _Tok.CLOSE:
            self.consume()
            return ("",)
        raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")

    def identifiers(self) -> tuple[str, ...]:
        found: set[str] = set()
        while True:
            token, literal = self.consume()
            if token is _Tok.IDENT:
                found.add(literal)
                after, after_literal = self.lookahead()
                if after is _Tok.COMMA:
                    continue
                if after is _Tok.CLOSE:
                    return tuple(sorted(found))
                raise SelectorError(f"found '{after_literal}', expected: ',' or ')'")
            if token is _Tok.COMMA:
                if not found:
                    found.add("")
                after, _ = self.lookahead()
                if after is _Tok.CLOSE:
                    found.add("")
                    return tuple(sorted(found))
                if after is _Tok.COMMA:
                    found.add("")
                continue
            raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def exact(self) -> tuple[str, ...]:
        token, _ = self.lookahead()
        if token in (_Tok.END, _Tok.COMMA):
            return ("",)
        token, literal = self.consume()
        if token is _Tok.IDENT:
            return (literal,)
        raise SelectorError(f"found '{literal}', expected: identifier")


def parse_selector(text: str) -> Selector:
    """``-l`` text to a selector; raises ``SelectorError`` with Kubernetes' message."""
    requirements = _Parser(text).parse()
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))
