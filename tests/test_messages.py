"""The chat `messages` schema (harness/messages.py): what a row must be, and what it becomes."""
from __future__ import annotations

import math

import orjson
import pytest

from harness.errors import DataError
from harness.messages import (Example, check_messages, json_object, json_object_line, row_to_messages,
                              translation_messages, with_system)


def test_checked_messages_keep_role_and_content_only():
    got = check_messages([{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "content": "a"}], "f:1")
    assert got == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


@pytest.mark.parametrize("messages,expect", [
    ([], "f:1: `messages` must be a non-empty list"),
    ([{"role": "user"}], "f:1: messages[0] needs keys role and content"),
    ([{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}], "f:1: messages[0].content must be a string"),
    ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}], "f:1: the last message must be the assistant"),
])
def test_a_bad_messages_list_is_one_line_naming_the_place(messages, expect):
    with pytest.raises(DataError) as e:
        check_messages(messages, "f:1")
    assert str(e.value).startswith(expect)


def test_a_system_message_is_added_only_where_the_row_has_none():
    own = [{"role": "system", "content": "mine"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert with_system(own, "suite's") == own
    assert with_system(own[1:], "suite's")[0] == {"role": "system", "content": "suite's"}
    assert with_system(own[1:], None) == own[1:]
    ex = Example("1", row_to_messages({"prompt": "q", "completion": "a"}, "f:1", system="s"))
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant"]
    assert (ex.source_text, ex.reference, len(ex.prompt_messages)) == ("q", "a", 2)


def test_a_translation_prompt_names_the_languages_and_unknown_codes_stay_codes():
    got = translation_messages("{src_name} → {tgt_name}: {source}", "Le chat.", "The cat.", "fr-en")
    assert got == [{"role": "user", "content": "French → English: Le chat."}, {"role": "assistant", "content": "The cat."}]
    assert translation_messages("{src_name}-{tgt_name}", "x", "y", "xx-en")[0]["content"] == "xx-English"


def test_a_json_line_is_an_object_or_the_reason_it_is_not():
    assert json_object('{"a": 1}', "each line must be a JSON object") == {"a": 1}
    assert json_object("[1]", "not an object but {type}") == "not an object but list"
    assert json_object("{nope", "x").startswith("not valid JSON (Expecting property name")
    assert json_object("[" * 100_000 + "]" * 100_000, "x") == "JSON nested too deeply"
    # json reads NaN; orjson (dataprep's parser, whose writer could not hold it) refuses it.
    assert math.isnan(json_object('{"a": NaN}', "x")["a"])
    assert json_object('{"a": NaN}', "x", orjson.loads).startswith("not valid JSON (")
    with pytest.raises(DataError, match=r"^p\.jsonl:3: each line is an object, not int$"):
        json_object_line("7", "p.jsonl:3", "each line is an object, not {type}")
