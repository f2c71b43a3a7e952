"""Label selectors: kubectl's -l grammar, matching rules and messages."""

from __future__ import annotations

import pytest

from meshlet.kubectl.selectors import Operator, SelectorError, matches, parse_selector

LABELS = {"app": "sleep", "version": "v1", "tier": "3"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=sleep", True),
        ("app==sleep", True),
        ("app=httpbin", False),
        ("app!=httpbin", True),
        ("app!=sleep", False),
        ("missing!=x", True),  # != matches objects without the key
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app in (sleep,httpbin)", True),
        ("app in (httpbin)", False),
        ("missing in (x)", False),
        ("app notin (httpbin)", True),
        ("app notin (sleep)", False),
        ("missing notin (x)", True),
        ("app=sleep,version=v1", True),
        ("app=sleep,version=v2", False),
        ("app=sleep, version in (v1, v2)", True),
        ("tier>2", True),
        ("tier<3", False),
        ("app>2", False),  # not a number: no match
        ("missing=", False),
        ("app in (in,notin)", False),  # keywords are plain values inside a list
    ],
)
def test_matches(selector: str, expected: bool) -> None:
    assert matches(selector, LABELS) is expected


def test_parsed_form_is_sorted_and_prints_back() -> None:
    selector = parse_selector("version in (v2,v1),app=sleep,!debug")
    assert [r.key for r in selector.requirements] == ["app", "debug", "version"]
    assert selector.requirements[1].operator is Operator.DOES_NOT_EXIST
    assert str(selector) == "app=sleep,!debug,version in (v1,v2)"


def test_empty_value_set() -> None:
    assert parse_selector("a in ()").requirements[0].values == ("",)
    assert parse_selector("a in (,b)").requirements[0].values == ("", "b")


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("app=sleep,", "found '', expected: identifier after ','"),
        ("!app=x", "found '=', expected: ',' or 'end of string'"),
        (
            "app sleep",
            "unable to parse requirement: found 'sleep', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("=x", "found '=', expected: !, identifier, or 'end of string'"),
        ("app in sleep", "unable to parse requirement: found 'sleep' expected: '('"),
        ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        (
            "app ~ x",
            "unable to parse requirement: found '~', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "-bad=x",
            'unable to parse requirement: <nil>: Invalid value: "-bad": name part must '
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
            "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "app=-x",
            'unable to parse requirement: values[0][app]: Invalid value: "-x": a valid label '
            "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
            "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        (
            "tier>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
            "operators, the value must be an integer",
        ),
    ],
)
def test_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(selector)
    assert str(caught.value) == message
