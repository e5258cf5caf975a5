"""rl.predict's input forms: one picture, four views, a 2x2 tile, a mesh (its views and size), --size;
and each bad input as one line and exit 2. The policy is a recorder of what it is shown."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


class Recorder:
    """A policy that reads the four views and sizes, writes ``code``, and keeps what it was shown."""

    def __init__(self, code: str):
        self.code, self.shown, self.exemplars = code, [], None
        self.config = SimpleNamespace(kind="fake", max_new_tokens=16, views="tile", size_in_prompt=True,
                                      exemplars=False)

    def sample(self, images, n=1, **_):
        self.shown.extend(images)
        return SimpleNamespace(texts=[self.code] * n * len(images))


@pytest.fixture
def part(tiny_corpus, tmp_path, monkeypatch):
    """A test row of the corpus, its pictures and STL on disk, and rl.predict with a recorder."""
    import rl.predict
    from corpus.dataset import load, load_mesh
    from renderer.stl import write_binary_stl

    row = load(tiny_corpus, "test")[0]
    recorder = Recorder(row["code"])
    monkeypatch.setattr(rl.predict, "load_checkpoint", lambda path: recorder)
    names = ("iso", "front", "right", "top")
    for name, view in zip(names, row["views"], strict=True):
        view.save(tmp_path / f"{name}.png")
    tile = Image.new("L", (256, 256))
    for i, view in enumerate(row["views"]):
        tile.paste(view, ((i % 2) * 128, (i // 2) * 128))
    tile.save(tmp_path / "tile.png")
    write_binary_stl(str(tmp_path / "part.stl"), *load_mesh(tiny_corpus, row))
    views = ",".join(str(tmp_path / f"{name}.png") for name in names)
    return SimpleNamespace(row=row, recorder=recorder, dir=tmp_path, views=views, main=rl.predict.main)


def gray(image) -> np.ndarray:
    return np.asarray(image.convert("L") if isinstance(image, Image.Image) else image, dtype=np.int16)


def test_one_picture_is_the_iso_view_with_a_note(part, capsys):
    part.main([str(part.dir / "iso.png"), "--k", "1", "--out", str(part.dir / "out")])
    from policies.pictures import normalise_picture

    (shown,) = part.recorder.shown
    assert len(shown.views) == 1 and shown.size is None
    # normalised as training's picture rows are (policies.pictures): grey on white, reframed
    assert np.abs(gray(shown.views[0]) - gray(normalise_picture(part.row["views"][0]))).max() <= 1
    assert "one picture is shown as the iso view" in capsys.readouterr().out


def test_four_views_and_a_size_are_shown_as_given(part):
    part.main(["--views", part.views, "--size", "40x30x12.5", "--k", "1", "--out", str(part.dir / "out")])
    (shown,) = part.recorder.shown
    assert shown.size == (40.0, 30.0, 12.5)
    for given, view in zip(shown.views, part.row["views"], strict=True):
        assert np.abs(gray(given) - gray(view)).max() <= 1
    summary = json.loads((part.dir / "out" / "candidates.json").read_text())
    assert summary["size"] == [40.0, 30.0, 12.5] and summary["size_shown"] and summary["valid"]


def test_a_tile_is_cut_into_its_four_views(part):
    part.main(["--tile", str(part.dir / "tile.png"), "--k", "1", "--out", str(part.dir / "out")])
    (shown,) = part.recorder.shown
    assert len(shown.views) == 4 and shown.size is None
    for given, view in zip(shown.views, part.row["views"], strict=True):
        assert np.abs(gray(given) - gray(view)).max() <= 1


def test_a_mesh_shows_its_views_and_its_exact_size(part):
    part.main(["--mesh", str(part.dir / "part.stl"), "--k", "1", "--out", str(part.dir / "out")])
    (shown,) = part.recorder.shown
    assert np.allclose(shown.size, part.row["extents"], atol=1e-3)
    for given, view in zip(shown.views, part.row["views"], strict=True):  # as the corpus renders them
        assert np.mean(np.abs(gray(given) - gray(view)) > 2) < 0.01
    summary = json.loads((part.dir / "out" / "candidates.json").read_text())
    assert summary["valid"] and (part.dir / "out" / "prediction.stl").exists()
    assert summary["candidates"][0]["agreement"]["iou"] > 0.95  # its own program, in the mesh's frame


@pytest.mark.parametrize("args, expected", [
    ([], "give a picture of the part, --views, --tile or --mesh"),
    (["{dir}/iso.png", "--views", "{views}"], "not a picture and --views"),
    (["--views", "{dir}/iso.png,{dir}/top.png,{dir}/right.png"], "--views needs 4 pictures"),
    (["{dir}/iso.png", "--size", "40x30"], "--size must be three positive numbers"),
    (["{dir}/iso.png", "--size", "40x0x3"], "--size must be three positive numbers"),
    (["--views", "{dir}/iso.png,{dir}/top.png,{dir}/right.png,{dir}/nope.png"], "nope.png' does not exist"),
    (["--tile", "{dir}/part.stl"], "is not an image PIL can read"),
])
def test_bad_input_is_one_line_and_exit_2(part, capsys, args, expected):
    argv = [a.format(dir=part.dir, views=part.views) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        part.main([*argv, "--out", str(part.dir / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert not part.recorder.shown, "nothing is sampled for a bad input"


def test_a_mesh_with_no_area_is_one_line(part, capsys):
    from renderer.stl import write_binary_stl

    flat = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], np.float32)  # a degenerate triangle
    write_binary_stl(str(part.dir / "flat.stl"), flat, np.array([[0, 1, 2]]))
    with pytest.raises(SystemExit) as exit_info:
        part.main(["--mesh", str(part.dir / "flat.stl"), "--out", str(part.dir / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "flat.stl" in err, err
