"""corpus.splits: code normalisation, duplicate handling, held-out families, split shares."""

from collections import Counter

import pytest

from corpus.splits import (
    SPLITS,
    SplitInput,
    assign,
    code_key,
    default_holdout,
    geometry_key,
    normalize_code,
    split_of,
)


def test_normalize_code_drops_comments_and_whitespace_and_rounds_numbers():
    a = "// plate\nwidth = 40.001;  // [20:80]\n/* [Hidden] */\ncube([width,10 , 2]);\n"
    b = "width=40;\ncube( [ width, 10, 2.0 ] );"
    assert normalize_code(a) == normalize_code(b) == "width = 40 ; cube ( [ width , 10 , 2 ] ) ;"


def test_normalize_code_keeps_strings_and_real_differences():
    assert normalize_code('text("a // b");') == 'text ( "a // b" ) ;'
    assert code_key("cube(10);") != code_key("cube(11);")
    assert code_key("cube(10);") != code_key("sphere(10);")
    assert normalize_code("x = .5e1 + 1e-3;") == "x = 5 + 0 ;"


def test_geometry_key_rounds_to_significant_figures():
    assert geometry_key([10.0, 20.0, 3.0], 1000.04, 600.02) == geometry_key(
        [10.001, 20.0, 3.0], 1000.0, -600.0
    )
    assert geometry_key([10.0, 20.0, 3.0], 1000.0, 600.0) != geometry_key([10.0, 20.0, 4.0], 1000.0, 600.0)


def _rows(count, family="plate", prefix="p"):
    return [SplitInput(f"{prefix}{i:04d}", family, f"{family}({i});", f"g{prefix}{i}") for i in range(count)]


def test_the_same_program_keeps_one_representative():
    rows = _rows(50) + [SplitInput("dup", "plate", "// again\nplate( 7 );", "gdup")]
    result = assign(rows, seed=0)
    assert result.splits[-1] is None and result.splits[7] is not None
    assert result.dropped_code_duplicate == 1


def test_a_geometry_group_goes_to_one_split():
    rows = _rows(200)
    rows += [SplitInput(f"twin{i}", "washer", f"cylinder(r={i});", "shared") for i in range(30)]
    result = assign(rows, seed=3)
    assert len({result.splits[i] for i in range(200, 230)}) == 1
    assert result.geometry_groups == 1 and result.largest_group == 30


def test_held_out_families_appear_only_in_test_ood():
    rows = _rows(100, "plate", "p") + _rows(20, "gear", "g")
    result = assign(rows, holdout=["gear"], seed=0)
    assert {result.splits[i] for i in range(100, 120)} == {"test_ood"}
    assert "test_ood" not in result.splits[:100]


def test_a_shape_shared_with_a_held_out_family_never_reaches_training():
    rows = [SplitInput("a", "plate", "cube(1);", "k"), SplitInput("b", "gear", "gear();", "k")]
    result = assign(rows, holdout=["gear"], seed=0)
    assert result.splits == [None, "test_ood"] and result.dropped_ood_overlap == 1


def test_shares_are_near_the_fractions_and_do_not_depend_on_order():
    rows = _rows(4000)
    result = assign(rows, seed=0)
    counts = Counter(result.splits)
    assert 0.88 < counts["train"] / 4000 < 0.92 and 0.04 < counts["val"] / 4000 < 0.06
    reversed_result = assign(rows[::-1], seed=0)
    assert reversed_result.splits[::-1] == result.splits
    assert assign(rows, seed=1).splits != result.splits


def test_split_of_and_default_holdout_are_deterministic():
    assert split_of("x", 0) == split_of("x", 0) and split_of("x", 0) in SPLITS[:3]
    families = ["a", "b", "c", "d", "e"]
    assert default_holdout(families, 0) == default_holdout(families[::-1], 0)
    assert len(default_holdout(families, 0)) == 2
    with pytest.raises(ValueError):
        default_holdout(["a", "b"], 0)
    with pytest.raises(ValueError):
        assign(_rows(3), fractions=(1.0, -1.0, 0.0))
