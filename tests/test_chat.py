"""Assistant-only labels: the tokenizer's chat template decides the spans, not string hacks."""
import pytest

from harness.builtin import train_tokenizer
from harness.chat import IGNORE_INDEX, end_of_turn_ids, prompt_ids, tokenize_conversation

TEXTS = ["The black cat eats.", "Le chat noir mange.", "Translate English to French:", "hello world"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300)


CONV = [{"role": "system", "content": "hello"},
        {"role": "user", "content": "The black cat eats."},
        {"role": "assistant", "content": "Le chat noir mange."}]


def test_only_assistant_content_and_end_of_turn_are_labelled(tok):
    t = tokenize_conversation(tok, CONV, max_len=512)
    labelled = [i for i, l in zip(t.input_ids, t.labels) if l != IGNORE_INDEX]
    assert tok.decode(labelled) == "Le chat noir mange.<|im_end|>"
    assert labelled[-1] in end_of_turn_ids(tok)
    # the template's trailing newline after <|im_end|> is not learned
    assert t.labels[-1] == IGNORE_INDEX and tok.decode(t.input_ids[-1:]) == "\n"
    assert t.input_ids[: t.prompt_len] == prompt_ids(tok, CONV[:-1])
    assert not t.truncated


def test_every_assistant_turn_is_labelled_in_multi_turn(tok):
    conv = CONV + [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello world"}]
    t = tokenize_conversation(tok, conv, max_len=512)
    labelled = tok.decode([i for i, l in zip(t.input_ids, t.labels) if l != IGNORE_INDEX])
    assert labelled == "Le chat noir mange.<|im_end|>hello world<|im_end|>"


def test_full_loss_when_not_assistant_only(tok):
    t = tokenize_conversation(tok, CONV, max_len=512, assistant_only=False)
    assert t.labels == t.input_ids and sum(t.assistant_mask) < len(t.input_ids)


def test_truncation_is_flagged(tok):
    t = tokenize_conversation(tok, CONV, max_len=8)
    assert t.truncated and len(t.input_ids) == 8 == len(t.labels)
