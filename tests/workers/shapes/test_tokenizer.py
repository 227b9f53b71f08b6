import pytest

from workers.shapes.tokenizer import MAX_LENGTH, RESERVED_IDENTIFIERS, caption_corpus, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import CLIPTokenizer

    folder = train_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    return CLIPTokenizer.from_pretrained(str(folder))


def test_loads_as_a_clip_tokenizer_from_the_classic_files_too(tmp_path_factory):
    from transformers import CLIPTokenizer

    folder = train_tokenizer(tmp_path_factory.mktemp("classic"))
    (folder / "tokenizer.json").unlink()  # only vocab.json + merges.txt remain
    tok = CLIPTokenizer.from_pretrained(str(folder))
    assert tok.model_max_length == MAX_LENGTH
    assert tok("a red circle").input_ids[1:-1] == [tok.convert_tokens_to_ids(w + "</w>") for w in ("a", "red", "circle")]


def test_round_trips_the_caption_language_one_token_per_word(tokenizer):
    for caption in caption_corpus(200, seed=99):
        ids = tokenizer(caption).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == caption.lower().replace(" ", "")
        assert tokenizer.unk_token_id not in ids[1:-1]


def test_lower_cases(tokenizer):
    assert tokenizer("A RED Circle.").input_ids == tokenizer("a red circle.").input_ids


def test_unknown_words_split_into_pieces_without_error(tokenizer):
    ids = tokenizer("a glittering zebra-unicorn 🦄 on the moon").input_ids
    assert len(ids) > 6
    assert tokenizer.decode(ids, skip_special_tokens=True).startswith("a glittering")


def test_reserves_at_least_32_single_token_identifiers(tokenizer):
    assert len(RESERVED_IDENTIFIERS) >= 32
    for word in RESERVED_IDENTIFIERS:
        assert len(tokenizer(word).input_ids) == 3, word
    assert not any(word in " ".join(caption_corpus(2000, seed=5)).split() for word in RESERVED_IDENTIFIERS)
