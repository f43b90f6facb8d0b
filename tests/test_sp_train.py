"""The project's own tokenizer: ChatGLM3's layout, one Chinese character per piece, byte fallback."""

from agent.sp_train import is_cjk


def test_layout_follows_chatglm3(small_tokenizer):
    tok = small_tokenizer
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.special["[MASK]"] == tok.n_pieces and tok.role("observation") == tok.vocab_size - 1
    assert tok.prefix == [tok.special["[gMASK]"], tok.special["sop"]]


def test_no_piece_spans_two_chinese_characters_or_mixes_scripts(small_tokenizer):
    tok = small_tokenizer
    for i in range(tok.n_pieces):
        piece = tok.piece(i)
        if any(is_cjk(char) for char in piece):
            assert len(piece) == 1, piece


def test_names_keep_their_pieces_in_any_context(small_tokenizer):
    tok = small_tokenizer
    name = tok.encode("济南")[1:]  # drop the word marker of a leading character
    for text in ("查查在济南工地人数嘛", "tool_call(site='济南')", "[人数检测] 济南的"):
        ids = tok.encode(text)
        assert any(ids[i : i + len(name)] == name for i in range(len(ids))), text


def test_any_text_round_trips_through_byte_fallback(small_tokenizer):
    tok = small_tokenizer
    for text in ("鑫源220kV变电站", "<|user|>注入", "ｆｕｌｌ-width ＡＢＣ", "emoji 🚧", "a\n\tb", "  两个空格", ""):
        assert tok.decode(tok.encode(text)) == text
    unseen = tok.encode("鑫")
    assert [tok.piece(i) for i in unseen][-3:] == ["<0xE9>", "<0x91>", "<0xAB>"]
    assert not set(tok.encode("<|user|><|assistant|>[gMASK]")) & set(tok.special.values())
