"""exact_match: text normalisation, final-number extraction, numeric comparison, fallback."""
from __future__ import annotations

import pytest

from harness.metrics import build_metrics, metric_for
from harness.metrics.base import GradedItem
from harness.metrics.exact_match import exact_match, extract_number, normalize_text


def em(pairs, **options):
    """(corpus score, per-sample 0/1, details) for (output, reference) pairs."""
    (m,) = exact_match(options)
    its = [GradedItem(id=f"x{i}", source="", reference=r, output=o) for i, (o, r) in enumerate(pairs)]
    st = m.stats(its)
    return m.score(st), [int(v) for v in st[:, 0]], m.details(its)


@pytest.mark.parametrize("text, expected", [
    ("  The  Cat\n sat. ", "the cat sat"),
    ("Paris.", "paris"),
    ("Paris...", "paris"),
    ("STRASSE", "strasse"),
    ("Straße", "strasse"),  # casefold, not lower
    ("3.5", "3.5"),          # only trailing periods go
    ("", ""),
    (None, ""),
])
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("13", 13.0),
    ("13.0", 13.0),
    ("13 apples", 13.0),
    ("The answer is 13.", 13.0),
    ("#### 13", 13.0),
    ("1,300", 1300.0),
    ("It costs $1,234.56 in total", 1234.56),
    ("-2.50", -2.5),
    ("\u22124", -4.0),          # U+2212 minus sign
    ("+7", 7.0),
    (".5", 0.5),
    ("1e3", 1000.0),
    ("First 3, then 4, finally 12", 12.0),
    ("5-3", 3.0),               # a range/subtraction, not -3
    ("1,3000", 3000.0),          # not a thousands group
    ("答案是13。", 13.0),
    ("１３", 13.0),               # full-width digits
    ("H2O", None),
    ("no number here", None),
    ("", None),
    (None, None),
])
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_text_mode_hand_checked():
    pairs = [
        ("Paris.", "paris"),                 # 1
        ("  le  chat noir ", "Le chat noir"),  # 1
        ("Paris, France", "Paris"),          # 0
        ("", "Paris"),                       # 0: empty output
        ("13.0", "13"),                      # 0 in text mode
    ]
    score, values, details = em(pairs)
    assert values == [1, 1, 0, 0, 0]
    assert score == pytest.approx(40.0)
    assert details[0] == {} and details[1] == {}
    assert details[2] == {"output_normalized": "paris, france", "reference_normalized": "paris"}


def test_number_mode_hand_checked():
    pairs = [
        ("13.0", "13"),                      # 1
        ("13 apples", "13"),                 # 1
        ("The answer is 13.", "#### 13"),    # 1
        ("So the total is 1,300", "1300"),   # 1
        ("-2.5", "-2.50"),                   # 1
        ("12", "13"),                        # 0
        ("thirteen", "13"),                  # 0: no number in the output
        ("", "13"),                          # 0: empty output
        ("13 then 2 more", "13"),            # 0: the final number is 2
        ("Paris.", "paris"),                 # 1: reference has no number → text mode
        ("Lyon", "paris"),                   # 0: text fallback
    ]
    score, values, details = em(pairs, mode="number")
    assert values == [1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    assert score == pytest.approx(100 * 6 / 11)
    assert details[5] == {"output_number": 12.0, "reference_number": 13.0}
    assert details[6] == {"output_number": None, "reference_number": 13.0}
    assert details[10] == {"output_normalized": "lyon", "reference_normalized": "paris"}


def test_tolerance_is_absolute():
    assert em([("0.3333333", "0.3333334")], mode="number")[1] == [1]   # |Δ| = 1e-7
    assert em([("0.333", "0.334")], mode="number")[1] == [0]
    assert em([("0.333", "0.334")], mode="number", tol=0.01)[1] == [1]
    assert em([("1300001", "1300000")], mode="number")[1] == [0]        # not relative
    assert em([("13.0000001", "13")], mode="number", tol=0)[1] == [0]


def test_factory_registry_signature_and_errors():
    assert [m.name for m in build_metrics(["exact_match"], {})] == ["exact_match"]
    assert metric_for("exact_match", {"exact_match": {"mode": "number"}}).mode == "number"
    assert exact_match({})[0].signature() == "exact_match|mode:text|casefold+ws+strip+trailing-period"
    assert exact_match({"mode": "number"})[0].signature() == (
        "exact_match|mode:number|last-number|tol:1e-06|fallback:text(casefold+ws+strip+trailing-period)")
    with pytest.raises(ValueError, match="mode must be"):
        exact_match({"mode": "numeric"})
    with pytest.raises(ValueError, match="tol"):
        exact_match({"mode": "number", "tol": -1})
    with pytest.raises(ValueError, match="unknown option"):
        exact_match({"tolerance": 0.1})
