"""Exemplars: the nearest other training part by its views, its program in the prompt, saved with it."""

import numpy as np
import pytest

from configs.policy import PolicyConfig
from policies import CheckpointError, PartInput, SFTCollator, load_policy
from policies.exemplars import FILE, ExemplarIndex, shown
from policies.inputs import EXEMPLAR_HEADING, input_columns, prompt_text
from policies.tiny import TinyPolicy
from tests.policies.conftest import tiny_config


def views_of(level: int) -> list:
    """Four 16 px views, each a flat grey ``level`` with one view marked, so parts differ by level."""
    views = [np.full((16, 16), level, dtype=np.uint8) for _ in range(4)]
    views[1][:4, :4] = 255 - level
    return views


def rows(levels=(10, 100, 200, 110)) -> list[dict]:
    return [{"id": f"p-{i}", "views": views_of(level), "code": f"cube({level});\n"}
            for i, level in enumerate(levels)]


@pytest.fixture
def index():
    return ExemplarIndex.build(rows(), pixels=8)


def test_the_nearest_part_is_the_most_alike_other_part_never_itself(index):
    train = rows()
    assert index.nearest(PartInput(tuple(views_of(105)))) in ("cube(100);\n", "cube(110);\n")
    assert index.nearest(PartInput(tuple(views_of(12)))) == "cube(10);\n"
    own = PartInput.of(train[1])
    assert own.id == "p-1" and index.nearest(own) == "cube(110);\n", "never a row's own program"
    assert index.nearest(PartInput(tuple(train[1]["views"]))) == "cube(100);\n", "no id: itself"


def test_the_n_nearest_parts_come_nearest_first_never_the_part_itself(index):
    assert index.nearest_rows(PartInput(tuple(views_of(104))), 3) == [1, 3, 0]  # levels 100, 110, 10
    own = PartInput.of(rows()[1])
    assert index.nearest_rows(own, 3) == [3, 0, 2] and index.nearest_rows(own, 10) == [3, 0, 2]
    assert index.nearest_rows(PartInput(tuple(views_of(104))), 10) == [1, 3, 0, 2]


def test_a_program_is_scaled_to_the_size_asked_for_when_both_sizes_are_known(tmp_path):
    sized = ExemplarIndex.build([{**row, "extents": [10.0, 20.0, 4.0]} for row in rows()], pixels=8)
    assert sized.program(1) == "cube(100);\n" == sized.program(1, None)
    assert sized.program(1, (20.0, 20.0, 1.0)) == (
        "module retrieved_part() {\ncube(100);\n}\nscale([2, 1, 0.25]) retrieved_part();\n")
    assert ExemplarIndex.build(rows(), pixels=8).program(1, (20.0, 20.0, 1.0)) == "cube(100);\n", "no sizes"
    sized.save(str(tmp_path))
    assert np.array_equal(ExemplarIndex.load(str(tmp_path)).sizes, sized.sizes)


def test_one_picture_is_compared_with_the_iso_views_only(index):
    picture = np.full((16, 16), 198, dtype=np.uint8)
    assert index.nearest(PartInput((picture,))) == "cube(200);\n"
    distances = index.distances(PartInput((picture,)))
    assert distances.shape == (4,) and np.argmin(distances) == 2


def test_the_index_round_trips_without_pickle(index, tmp_path):
    index.save(str(tmp_path))
    with np.load(tmp_path / FILE, allow_pickle=False) as saved:
        assert saved["features"].dtype == np.float16
    again = ExemplarIndex.load(str(tmp_path))
    assert again.ids == index.ids and again.codes == index.codes and again.pixels == 8
    assert np.allclose(again.features, index.features, atol=1e-3)


def test_bad_indexes_are_refused():
    with pytest.raises(ValueError, match="not 4"):
        ExemplarIndex.build([{"id": "a", "views": views_of(1)[:1], "code": "x"}])
    with pytest.raises(ValueError, match="at least one"):
        ExemplarIndex(np.zeros((0, 256)), [], [], pixels=8)
    with pytest.raises(ValueError, match="at least one"):
        ExemplarIndex.build([], pixels=8)
    alone = ExemplarIndex.build(rows((5,)), pixels=8)
    with pytest.raises(ValueError, match="no other part"):
        alone.nearest(PartInput.of(rows((5,))[0]))


def test_the_prompt_holds_the_exemplar_after_the_size():
    part = PartInput(tuple(views_of(0)), (10, 20, 30), exemplar="cube(7);\n")
    text = prompt_text(part, PolicyConfig(size_in_prompt=True, exemplars=True))
    assert text == f"{PolicyConfig().instruction} Size: 10 x 20 x 30 mm.\n{EXEMPLAR_HEADING}\ncube(7);\n"
    assert input_columns(PolicyConfig(exemplars=True)) == ["image", "views", "id"]
    with pytest.raises(ValueError, match="exemplars"):
        PolicyConfig(exemplars="yes")


def test_a_policy_reading_exemplars_shows_each_row_its_neighbours_program(tokenizer, index, tmp_path):
    policy = TinyPolicy.build(tiny_config(exemplars=True), tokenizer=tokenizer)
    with pytest.raises(RuntimeError, match="no exemplar index"):
        shown(policy, rows()[:1])
    policy.exemplars = index
    assert [p.exemplar for p in shown(policy, rows()[:2])] == ["cube(100);\n", "cube(110);\n"]
    plain = TinyPolicy.build(tiny_config(), tokenizer=tokenizer)
    batch = SFTCollator(policy)([{**rows()[0], "image": rows()[0]["views"][0]}])
    without = SFTCollator(plain)([{**rows()[0], "image": rows()[0]["views"][0]}])
    assert batch["input_ids"].shape[1] > without["input_ids"].shape[1], "the neighbour's program is shown"
    prompt = tokenizer.decode(batch["input_ids"][0][batch["labels"][0] == -100])
    assert "cube(100);" in prompt and EXEMPLAR_HEADING in prompt

    policy.save(str(tmp_path / "saved"))
    assert load_policy(str(tmp_path / "saved")).exemplars.codes == index.codes
    (tmp_path / "saved" / FILE).unlink()
    with pytest.raises(CheckpointError, match="exemplars is on but exemplars.npz is unusable"):
        load_policy(str(tmp_path / "saved"))


def test_sft_shows_a_fraction_of_rows_their_own_program(tokenizer, index):
    policy = TinyPolicy.build(tiny_config(exemplars=True), tokenizer=tokenizer)
    policy.exemplars = index
    train = [{**row, "image": row["views"][0]} for row in rows()] * 50
    parts = shown(policy, SFTCollator(policy, exemplar_self=0.3, seed=1).parts(train))
    own = [part.exemplar == row["code"] for part, row in zip(parts, train, strict=True)]
    assert 0.2 < np.mean(own) < 0.4, "about exemplar_self of the rows see their own program"
    others = [part.exemplar for part, mine in zip(parts, own, strict=True) if not mine]
    assert others and all(code in index.codes for code in others), "the rest see another part's"
    plain = TinyPolicy.build(tiny_config(), tokenizer=tokenizer)
    assert all(part.exemplar is None for part in SFTCollator(plain, exemplar_self=1.0).parts(train))
    with pytest.raises(ValueError, match="exemplar_self"):
        SFTCollator(policy, exemplar_self=1.5)
