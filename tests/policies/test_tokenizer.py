"""Properties of policies.tokenizer: exact round-trips of real programs, specials, save/load."""

from transformers import AutoTokenizer

from corpus.families import FAMILIES, generate
from policies.tokenizer import SPECIAL_TOKENS, encode_code


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
