"""Properties of policies.tokenizer: exact round-trips of real programs, specials, save/load."""

import pytest
from transformers import AutoTokenizer

from corpus.families import FAMILIES, generate
from policies.tokenizer import SPECIAL_TOKENS, corpus_texts, encode_code, train_tokenizer


def test_every_family_round_trips_exactly(tokenizer):
    for family in sorted(FAMILIES):
        for seed in (5000, 5001):  # seeds the tokenizer never saw
            code = generate(family, seed).code
            ids = encode_code(tokenizer, code)
            assert tokenizer.decode(ids) == code, family
            assert len(ids) < len(code.encode("utf-8")) / 2, "BPE should compress corpus code"


def test_odd_text_round_trips_and_special_text_stays_text(tokenizer):
    text = "x=1;\r\n\t  // ünïcode ∅ 😀\n\n<image><|pad|><end_of_utterance>   \n"
    ids = encode_code(tokenizer, text)
    assert tokenizer.decode(ids) == text
    special = set(tokenizer.all_special_ids)
    assert not special & set(ids)


def test_digits_are_single_tokens(tokenizer):
    ids = encode_code(tokenizer, "cube([123.45, 6, 7890]);")
    assert all(sum(c.isdigit() for c in token) <= 1 for token in tokenizer.convert_ids_to_tokens(ids))


@pytest.fixture(scope="module")
def whole_numbers():
    return train_tokenizer(corpus_texts(300), vocab_size=600, numbers="whole")


def test_whole_numbers_keep_each_number_apart_and_spell_it_alike_everywhere(whole_numbers):
    code = generate("profile", 5000).code
    assert whole_numbers.decode(encode_code(whole_numbers, code)) == code
    tokens = whole_numbers.convert_ids_to_tokens(encode_code(whole_numbers, "cube([123.45, 6, 7890]);"))
    assert all(token.replace(".", "").isdigit() or not any(c.isdigit() for c in token) for token in tokens)
    in_prompt = encode_code(whole_numbers, "Size: 140 x 20 x 3.5 mm.")
    in_program = encode_code(whole_numbers, "length = 140;\nt = 3.5;")
    for number in ("140", "3.5"):
        spelt = encode_code(whole_numbers, number)
        assert _contains(in_prompt, spelt) and _contains(in_program, spelt), number
    digits = train_tokenizer(corpus_texts(300), vocab_size=600)
    assert len(encode_code(whole_numbers, code)) < len(encode_code(digits, code))


def _contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i : i + len(part)] == part for i in range(len(ids) - len(part) + 1))


def test_an_unknown_number_mode_is_refused():
    with pytest.raises(ValueError, match="numbers must be one of"):
        train_tokenizer(["x = 1;"], vocab_size=300, numbers="roman")


def test_special_tokens_have_fixed_ids_and_chat_template(tokenizer):
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(len(SPECIAL_TOKENS)))
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>User:<image>Hi<end_of_utterance>\nAssistant:"


def test_save_and_load_keep_ids(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    code = generate("gear", 3).code
    assert encode_code(loaded, code) == encode_code(tokenizer, code)
    assert loaded.all_special_ids == tokenizer.all_special_ids
    assert loaded.decode(encode_code(loaded, code)) == code
