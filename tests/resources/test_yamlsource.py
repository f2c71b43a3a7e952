from __future__ import annotations

import pytest

from meshlet.errors import LoadError
from meshlet.resources.yamlsource import parse_documents


def test_lines_of_nested_paths() -> None:
    text = "a: 1\nb:\n  - x: y\n  - z: [1, 2]\n"
    (doc,) = parse_documents(text, "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": "y"}, {"z": [1, 2]}]}
    assert doc.line_of(("b", 1, "z")) == 4
    assert doc.line_of(("b", 0, "x")) == 3
    assert doc.line_of(("b", 5, "nothing")) == 2  # nearest ancestor


def test_empty_documents_are_skipped_and_locations_kept() -> None:
    text = "---\n---\nkind: A\n---\n\n---\nkind: B\n"
    docs = parse_documents(text, "f.yaml")
    assert [d.data["kind"] for d in docs] == ["A", "B"]
    assert [d.location.line for d in docs] == [3, 7]


def test_timestamps_stay_strings_and_keys_stay_as_written() -> None:
    (doc,) = parse_documents("t: 2022-02-14T09:51:56Z\nm:\n  9080: {mode: DISABLE}\n", "f")
    assert doc.data == {"t": "2022-02-14T09:51:56Z", "m": {"9080": {"mode": "DISABLE"}}}


def test_duplicate_key_is_refused_with_line() -> None:
    with pytest.raises(LoadError) as info:
        parse_documents("a: 1\nb: 2\na: 3\n", "dup.yaml")
    assert str(info.value) == 'dup.yaml:3: duplicate field "a"'


def test_malformed_yaml_names_file_and_line() -> None:
    with pytest.raises(LoadError) as info:
        parse_documents("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    assert str(info.value).startswith("bad.yaml:")
    assert "invalid YAML" in str(info.value)


def test_json_is_read_too() -> None:
    (doc,) = parse_documents('{"kind": "A",\n "n": 5}', "f.json")
    assert doc.data == {"kind": "A", "n": 5}
    assert doc.line_of(("n",)) == 2
