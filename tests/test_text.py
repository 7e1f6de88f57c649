"""anlam.text: Turkish casing, folding and normalisation."""

from hypothesis import given
from hypothesis import strategies as st

from anlam import text


def test_turkish_lower_upper():
    assert text.tr_lower("IŞIK İSTANBUL") == "ışık istanbul"
    assert text.tr_upper("ışık istanbul") == "IŞIK İSTANBUL"
    assert text.tr_lower("DİYARBAKIR'DA") == "diyarbakır'da"


def test_casefold_keeps_dotted_and_dotless_apart():
    assert text.tr_casefold("KIRMIZI") != text.tr_casefold("KİRMİZİ")
    assert text.tr_casefold("Işık") == text.tr_casefold("IŞIK") == "ışık"


def test_ascii_fold_and_search_key():
    assert text.ascii_fold("aşırı öğrenme ÇĞİÖŞÜ") == "asiri ogrenme CGIOSU"
    assert text.search_key("AŞIRI Öğrenme") == text.search_key("asiri ogrenme") == "asiri ogrenme"


def test_nfc_composes_and_drops_stray_dot():
    decomposed = "I\u0307stanbul"  # I + combining dot above = İ
    assert text.nfc(decomposed) == "İstanbul"
    assert text.nfc("i\u0307") == "i"  # what str.lower() makes of İ
    assert text.tr_lower("İ".lower()) == "i"


def test_clean_apostrophes_and_space():
    assert text.clean("  GPU’lar \t hızlı  ") == "GPU'lar hızlı"


def test_tokens_drop_apostrophe_suffix():
    assert text.tokens("GPU'ların belleği ÖLÇÜLDÜ.") == ["gpu", "belleği", "ölçüldü"]


@given(st.text())
def test_functions_never_raise_and_are_idempotent(s):
    for fn in (text.nfc, text.clean, text.tr_lower, text.tr_upper, text.tr_casefold, text.ascii_fold, text.search_key):
        once = fn(s)
        assert isinstance(once, str)
        assert fn(once) == once, fn.__name__
    text.tokens(s)
