"""kubectl's JSONPath templates (``-o jsonpath=…``), as client-go evaluates them.

Theory of operation. A template is text with actions in braces:
``{.items[*].metadata.name}``, ``{range .items[*]}{.metadata.name}{"\\n"}{end}``.
``parse_template`` turns it into a tree of nodes (fields, ``..`` recursive descent,
``[i]``/``[a:b:c]`` slices, ``[*]``, unions ``[a,b]``, filters ``[?(@.x=="y")]``,
quoted text, numbers, ``range``/``end``), with client-go's parse errors. Executing
it walks each top-level node over the current values and collects one list of
results per node; ``range`` re-runs the nodes up to its ``end`` once per item, with
client-go's own bookkeeping (so its corner cases, such as nothing after ``{end}``
being printed when the range is empty, are kept). Results print joined by a
space; maps and lists print as compact JSON; ``null`` prints as ``<nil>``.
Map keys are visited in sorted order. Missing keys give nothing (kubectl's
``--allow-missing-template-keys`` default) unless asked otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshlet.kubectl.encode import go_float, to_json_compact
from meshlet.kubectl.messages import KubectlError

__all__ = [
    "JSONPathError",
    "Template",
    "execute",
    "find_results",
    "format_value",
    "parse_template",
    "render_jsonpath",
]


class JSONPathError(ValueError):
    """A template that does not parse or cannot run; the text is client-go's."""


# --- nodes ---------------------------------------------------------------------------


@dataclass(slots=True)
class _List:
    nodes: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Field:
    name: str


@dataclass(frozen=True, slots=True)
class _Param:
    value: int = 0
    known: bool = False
    derived: bool = False


@dataclass(frozen=True, slots=True)
class _Array:
    params: tuple[_Param, _Param, _Param]


@dataclass(frozen=True, slots=True)
class _Filter:
    left: _List
    right: _List
    operator: str


@dataclass(frozen=True, slots=True)
class _Number:
    value: int | float


@dataclass(frozen=True, slots=True)
class _Bool:
    value: bool


@dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class _Recursive:
    pass


@dataclass(frozen=True, slots=True)
class _Union:
    lists: tuple[_List, ...]


@dataclass(frozen=True, slots=True)
class _Identifier:
    name: str


# --- parser --------------------------------------------------------------------------

_EOF = ""
_DICT_KEY = re.compile(r"^'([^']*)'$")
_SLICE = re.compile(r"^(-?\d*)(:-?\d*)?(:-?\d*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.DOTALL)
_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


def _unquote(text: str) -> str:
    """client-go's ``UnquoteExtend``: Go's unquoting, for double or single quotes."""
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "\"'":
        raise JSONPathError("invalid syntax")
    quote, body = text[0], text[1:-1]
    if "\\" not in body and quote not in body:
        return body
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            raise JSONPathError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise JSONPathError("invalid syntax")
        code = body[i + 1]
        i += 2
        if code in simple:
            out.append(simple[code])
        elif code in "\\'\"":
            if code in "'\"" and code != quote:
                raise JSONPathError("invalid syntax")
            out.append(code)
        elif code in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[code]
            digits = body[i : i + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise JSONPathError("invalid syntax")
            out.append(chr(int(digits, 16)))
            i += size
        elif code in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise JSONPathError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 2
        else:
            raise JSONPathError("invalid syntax")
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.input = text
        self.root = _List()
        self.pos = 0
        self.start = 0
        self.width = 0

    # reading

    def consume(self) -> str:
        value = self.input[self.start : self.pos]
        self.start = self.pos
        return value

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.width = 0
            return _EOF
        ch = self.input[self.pos]
        self.width = 1
        self.pos += 1
        return ch

    def peek(self) -> str:
        ch = self.next()
        self.backup()
        return ch

    def backup(self) -> None:
        self.pos -= self.width

    # grammar (a loop where client-go recurses, so long templates do not nest deeply)

    def parse(self) -> _List:
        cur = self.root
        in_action = False
        while True:
            if not in_action:
                if not self.text(cur):
                    return self.root
                self.pos += 1  # the "{"
                self.consume()
                action = _List()
                cur.nodes.append(action)
                cur = action
                in_action = True
                continue
            if self.input.startswith("}", self.pos):
                self.pos += 1
                self.consume()
                cur = self.root
                in_action = False
                continue
            self.inside_action(cur)

    def text(self, cur: _List) -> bool:
        """Plain text up to the next ``{``; whether an action starts there."""
        while True:
            if self.input.startswith("{", self.pos):
                if self.pos > self.start:
                    cur.nodes.append(_Text(self.consume()))
                return True
            if self.next() == _EOF:
                break
        if self.pos > self.start:
            cur.nodes.append(_Text(self.consume()))
        return False

    def inside_action(self, cur: _List) -> None:
        if self.input.startswith("[?(", self.pos):
            self.filter(cur)
            return
        if self.input.startswith("..", self.pos):
            self.recursive(cur)
            return
        ch = self.next()
        if ch == _EOF or ch in "\r\n":
            raise JSONPathError("unclosed action")
        if ch in " @$":
            self.consume()
        elif ch == "[":
            self.array(cur)
        elif ch in "\"'":
            self.quote(cur, ch)
        elif ch == ".":
            self.field(cur)
        elif ch in "+-" or ch.isdigit():
            self.backup()
            self.number(cur)
        elif _is_alnum(ch):
            self.backup()
            self.identifier(cur)
        else:
            raise JSONPathError(f"unrecognized character in action: U+{ord(ch):04X} '{ch}'")

    def identifier(self, cur: _List) -> None:
        while True:
            ch = self.next()
            if ch == _EOF or ch in _TERMINATORS:
                self.backup()
                break
        value = self.consume()
        if value in ("true", "false"):
            cur.nodes.append(_Bool(value == "true"))
        else:
            cur.nodes.append(_Identifier(value))

    def recursive(self, cur: _List) -> None:
        if cur.nodes and isinstance(cur.nodes[-1], _Recursive):
            raise JSONPathError("invalid multiple recursive descent")
        self.pos += 2
        self.consume()
        cur.nodes.append(_Recursive())
        if _is_alnum(self.peek()) and self.peek() != _EOF:
            self.field(cur)

    def number(self, cur: _List) -> None:
        if self.peek() in ("+", "-") and self.peek() != _EOF:
            self.next()
        while True:
            ch = self.next()
            if ch != "." and not (ch != _EOF and ch.isdigit()):
                self.backup()
                break
        value = self.consume()
        if re.fullmatch(r"[+-]?\d+", value):
            cur.nodes.append(_Number(int(value)))
            return
        try:
            if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
                raise ValueError(value)
            cur.nodes.append(_Number(float(value)))
        except ValueError:
            raise JSONPathError(f"cannot parse number {value}") from None

    def array(self, cur: _List) -> None:
        while True:
            ch = self.next()
            if ch in (_EOF, "\n"):
                raise JSONPathError("unterminated array")
            if ch == "]":
                break
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            lists = tuple(_parse_action(f"[{part.strip(' ')}]") for part in parts)
            cur.nodes.append(_Union(lists))
            return
        key = _DICT_KEY.match(text)
        if key is not None:
            cur.nodes.extend(_parse_action(f".{key.group(1)}").nodes)
            return
        match = _SLICE.match(text)
        if match is None:
            raise JSONPathError(f"invalid array index {text}")
        groups = list(match.groups())
        params: list[_Param] = []
        for index in range(3):
            raw = groups[index] or ""
            if raw:
                if index > 0:
                    raw = raw[1:]
                if index > 0 and raw == "":
                    params.append(_Param())
                else:
                    try:
                        params.append(_Param(int(raw), known=True))
                    except ValueError:
                        raise JSONPathError(f"array index {raw} is not a number") from None
            elif index == 1:
                params.append(_Param(params[0].value + 1, known=True, derived=True))
            else:
                params.append(_Param())
        cur.nodes.append(_Array((params[0], params[1], params[2])))

    def filter(self, cur: _List) -> None:
        self.pos += 3
        self.consume()
        begin = end = False
        pair = ""
        while True:
            ch = self.next()
            if ch in (_EOF, "\n"):
                raise JSONPathError("unterminated filter")
            if ch in "\"'":
                if not begin:
                    begin, pair = True, ch
                    continue
                if self.input[self.pos - 2] != "\\" and ch == pair:
                    end = True
            elif ch == ")" and begin == end:
                break
        if self.next() != "]":
            raise JSONPathError("unclosed array expect ]")
        text = self.consume()[:-2]
        match = _FILTER.match(text)
        if match is None:
            cur.nodes.append(_Filter(_parse_action(text), _List(), "exists"))
        else:
            left = _parse_action(match.group(1))
            right = _parse_action(match.group(3))
            cur.nodes.append(_Filter(left, right, match.group(2)))

    def quote(self, cur: _List, end: str) -> None:
        while True:
            ch = self.next()
            if ch in (_EOF, "\n"):
                raise JSONPathError("unterminated quoted string")
            if ch == end and self.input[self.pos - 2] != "\\":
                break
        value = self.consume()
        try:
            cur.nodes.append(_Text(_unquote(value)))
        except JSONPathError as exc:
            raise JSONPathError(f"unquote string {value} error {exc}") from None

    def field(self, cur: _List) -> None:
        self.consume()
        while True:
            ch = self.next()
            if ch == "\\":
                self.next()
            elif ch == _EOF or ch in _TERMINATORS:
                self.backup()
                break
        value = self.consume()
        if value == "*":
            cur.nodes.append(_Wildcard())
        else:
            cur.nodes.append(_Field(value.replace("\\", "")))


def _parse_action(text: str) -> _List:
    root = _Parser("{" + text + "}").parse()
    first = root.nodes[0]
    assert isinstance(first, _List)
    return first


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; ``execute`` it over an object or a ``List``."""

    text: str
    root: _List

    def execute(self, data: Any, *, allow_missing_keys: bool = True) -> str:
        return execute(self, data, allow_missing_keys=allow_missing_keys)


def parse_template(text: str) -> Template:
    """Parse ``text``; raises ``JSONPathError`` with client-go's message."""
    return Template(text, _Parser(text).parse())


# --- evaluation ----------------------------------------------------------------------


def _go_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "interface {}"


def _children(value: Any) -> list[Any] | None:
    """The items of a map (by sorted key) or list; ``None`` when not iterable."""
    if isinstance(value, Mapping):
        return [value[k] for k in sorted(value)]
    if isinstance(value, list | tuple):
        return list(value)
    return None


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _compare(operator: str, left: Any, right: Any) -> bool:
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return False  # client-go ignores comparisons of incompatible types
    if operator == "==":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if kind == "bool":
        return False
    if operator == "<":
        return bool(left < right)
    if operator == ">":
        return bool(left > right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">=":
        return bool(left >= right)
    raise JSONPathError(f"unrecognized filter operator {operator}")


class _Run:
    def __init__(self, allow_missing_keys: bool) -> None:
        self.allow_missing_keys = allow_missing_keys
        self.stack: list[list[Any]] = []
        self.cur: list[Any] = []
        self.begin_range = 0
        self.in_range = 0
        self.end_range = 0

    def find_results(self, data: Any, nodes: Sequence[Any]) -> list[list[Any]]:
        self.cur = [data]
        full: list[list[Any]] = []
        for index, node in enumerate(nodes):
            results = self.walk(self.cur, node)
            if self.end_range > 0 and self.end_range <= self.in_range:
                self.end_range -= 1
                break
            if self.begin_range > 0:
                self.begin_range -= 1
                self.in_range += 1
                for position, value in enumerate(results):
                    if position == len(results) - 1:
                        self.in_range -= 1
                    full.extend(self.find_results(value, nodes[index + 1 :]))
                break
            full.append(results)
        return full

    def walk(self, values: list[Any], node: Any) -> list[Any]:
        if isinstance(node, _List):
            current = values
            for child in node.nodes:
                current = self.walk(current, child)
            return current
        if isinstance(node, _Text):
            return [node.text]
        if isinstance(node, _Field):
            return self.field(values, node)
        if isinstance(node, _Array):
            return self.array(values, node)
        if isinstance(node, _Filter):
            return self.filter(values, node)
        if isinstance(node, _Number | _Bool):
            return [node.value for _ in values]
        if isinstance(node, _Wildcard):
            out: list[Any] = []
            for value in values:
                out.extend(_children(value) or [])
            return out
        if isinstance(node, _Recursive):
            return self.recursive(values)
        if isinstance(node, _Union):
            out = []
            for branch in node.lists:
                out.extend(self.walk(values, branch))
            return out
        if isinstance(node, _Identifier):
            return self.identifier(values, node)
        raise JSONPathError(f"unexpected Node {node}")

    def identifier(self, values: list[Any], node: _Identifier) -> list[Any]:
        if node.name == "range":
            self.stack.append(self.cur)
            self.begin_range += 1
            return values
        if node.name == "end":
            if self.end_range < self.in_range:
                self.end_range += 1
                return []
            if not self.stack:
                raise JSONPathError("not in range, nothing to end")
            self.cur = self.stack.pop()
            return []
        raise JSONPathError(f"unrecognized identifier {node.name}")

    def field(self, values: list[Any], node: _Field) -> list[Any]:
        results = [
            value[node.name]
            for value in values
            if isinstance(value, Mapping) and node.name in value
        ]
        if not results and values and not self.allow_missing_keys:
            raise JSONPathError(f"{node.name} is not found")
        return results

    def array(self, values: list[Any], node: _Array) -> list[Any]:
        result: list[Any] = []
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list | tuple):
                raise JSONPathError(f"{_go_type(value)} is not array or slice")
            length = len(value)
            first, last, step_param = node.params
            start = first.value if first.known else 0
            if start < 0:
                start += length
            end = last.value if last.known else length
            if end < 0 or (end == 0 and last.derived):
                end += length
            if end == start:
                return result
            if start >= length or start < 0:
                raise JSONPathError(f"array index out of bounds: index {start}, length {length}")
            if end > length or end < 0:
                raise JSONPathError(f"array index out of bounds: index {end - 1}, length {length}")
            if start > end:
                raise JSONPathError(f"starting index {start} is greater than ending index {end}")
            step = 1
            if step_param.known:
                if step_param.value <= 0:
                    raise JSONPathError("step must be > 0")
                step = step_param.value
            result.extend(list(value[start:end])[::step])
        return result

    def recursive(self, values: list[Any]) -> list[Any]:
        result: list[Any] = []
        for value in values:
            children = _children(value)
            if children:
                result.append(value)
                result.extend(self.recursive(children))
        return result

    def filter(self, values: list[Any], node: _Filter) -> list[Any]:
        results: list[Any] = []
        for value in values:
            items = _children(value) if isinstance(value, list | tuple | Mapping) else [value]
            for item in items or []:
                try:
                    lefts = self.walk([item], node.left)
                except JSONPathError:
                    if not self.allow_missing_keys:
                        raise
                    lefts = []
                rights = self.walk([item], node.right)
                if not lefts:
                    continue
                if len(lefts) > 1:
                    raise JSONPathError("can only compare one element at a time")
                if node.operator == "exists":
                    results.append(item)
                    continue
                if not rights:
                    continue
                if len(rights) > 1:
                    raise JSONPathError("can only compare one element at a time")
                if _compare(node.operator, lefts[0], rights[0]):
                    results.append(item)
        return results


def format_value(value: Any) -> str:
    """One result as client-go prints it: maps and lists as JSON, ``null`` as ``<nil>``."""
    if isinstance(value, Mapping | list | tuple):
        return to_json_compact(value)
    if value is None:
        return "<nil>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value, "g")
    return str(value)


def find_results(
    template: Template, data: Any, *, allow_missing_keys: bool = True
) -> list[list[Any]]:
    """The raw results of ``template`` over ``data``: one list per top-level node."""
    return _Run(allow_missing_keys).find_results(data, template.root.nodes)


def execute(template: Template, data: Any, *, allow_missing_keys: bool = True) -> str:
    """Run ``template`` over ``data``; raises ``JSONPathError`` with client-go's message."""
    run = _Run(allow_missing_keys)
    results = run.find_results(data, template.root.nodes)
    return "".join(" ".join(format_value(value) for value in group) for group in results)


def render_jsonpath(text: str, data: Any, *, allow_missing_keys: bool = True) -> str:
    """``-o jsonpath=TEXT`` over ``data`` (an object, or a ``List`` for several).

    Raises ``KubectlError`` with kubectl's message for a template that does not
    parse (``error parsing jsonpath {.x, unclosed action``) or cannot run.
    """
    try:
        template = parse_template(text)
    except JSONPathError as exc:
        raise KubectlError(f"error parsing jsonpath {text}, {exc}") from None
    try:
        return template.execute(data, allow_missing_keys=allow_missing_keys)
    except JSONPathError as exc:
        detail = (
            f"Error executing template: {exc}. Printing more information for debugging "
            f"the template:\n\ttemplate was:\n\t\t{text}\n\tobject given to jsonpath "
            f"engine was:\n\t\t{to_json_compact(data)}\n\n"
        )
        raise KubectlError(f'error executing jsonpath "{text}": {detail}') from None
