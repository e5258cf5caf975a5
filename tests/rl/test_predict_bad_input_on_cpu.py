"""rl.predict on bad input: each bad picture or checkpoint is one line on stderr and exit 2, never a
traceback; a 16-bit picture is scaled, not clipped; pickled weights are never unpickled."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from tests.rl.conftest import run_module


class _MakesFolder:
    """Unpickling this creates a folder: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _one_error_line(completed) -> str:
    """The single stderr line of a failed command (asserts exit 2, one line, no traceback)."""
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr[-2000:]
    assert lines[0].startswith("rl.predict: error: ")
    return lines[0]


def test_20000x20000_png_is_refused_in_one_line(tmp_path):
    image = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(image)  # 400 Mpx, about 50 kB on disk
    line = _one_error_line(run_module("rl.predict", str(image), "--out", str(tmp_path / "o"), timeout=120))
    assert "too large" in line and "bomb.png" in line and "400000000 pixels" in line


def test_picture_over_the_limit_is_refused_from_its_header(tmp_path):
    from configs.cli import UsageError
    from rl.predict import MAX_PIXELS, read_image

    image = tmp_path / "wide.png"
    Image.new("1", (9000, 8000)).save(image)  # over MAX_PIXELS, under PIL's own bomb warning
    assert 9000 * 8000 > MAX_PIXELS
    with pytest.raises(UsageError, match=r"wide\.png' is too large: 9000x8000"):
        read_image(str(image))


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    from rl.predict import read_image

    path = tmp_path / "grey16.png"
    values = np.full((6, 10), 32768, np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit PNG
    pixels = np.asarray(read_image(str(path)), dtype=np.float32) / 255.0  # (10, 10, 3), padded with white
    assert pixels[2, 5] == pytest.approx([0.5, 0.5, 0.5], abs=0.01)
    assert pixels[2, 0].tolist() == [0.0, 0.0, 0.0] and pixels[2, 1].tolist() == [1.0, 1.0, 1.0]


def _truncated_png(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "make, expected",
    [(_truncated_png, "is not an image PIL can read (OSError: image file is truncated)"),
     (os.mkdir, "is not a regular file"),
     (os.mkfifo, "is not a regular file")],
    ids=["truncated", "folder", "fifo"],
)
def test_other_bad_pictures_are_one_line(tmp_path, capsys, make, expected):
    from rl.predict import main

    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(SystemExit) as exit_info:
        main([str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and expected in err, err


def _policy_json(folder, kind="tiny", **config) -> None:
    from configs.policy import PolicyConfig

    folder.mkdir(exist_ok=True)
    values = {"kind": kind, "config": PolicyConfig(kind=kind, **config).to_dict()}
    (folder / "policy.json").write_text(json.dumps(values))


def _bad_json(folder, marker):
    folder.mkdir()
    (folder / "policy.json").write_text('{"kind": "tiny", "config": ')


def _unknown_kind(folder, marker):
    folder.mkdir()
    (folder / "policy.json").write_text(json.dumps({"kind": "evil", "config": {}}))


def _no_config(folder, marker):
    folder.mkdir()
    (folder / "policy.json").write_text(json.dumps(["tiny"]))


def _missing_base(folder, marker):
    import torch
    from safetensors.torch import save_file

    _policy_json(folder, "pretrained", model_name_or_path=str(folder.parent / "no_such_base"))
    save_file({"w": torch.zeros(1)}, str(folder / "adapter_model.safetensors"))


def _pickled_model(folder, marker):
    _policy_json(folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_MakesFolder(str(marker))))


def _garbage_weights(folder, marker):
    _policy_json(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors" * 4)


def _pickled_adapter(folder, marker):
    _policy_json(folder, "pretrained", model_name_or_path=str(folder.parent / "base"))
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_MakesFolder(str(marker))))


@pytest.mark.parametrize(
    "make, expected",
    [
        (_bad_json, "policy.json is not valid JSON"),
        (_unknown_kind, "unknown policy kind 'evil'"),
        (_no_config, "needs a 'kind' string and a 'config' object"),
        (_missing_base, "its base model"),
        (_pickled_model, "holds pickled weights (pytorch_model.bin)"),
        (_pickled_adapter, "holds pickled weights (adapter_model.bin)"),
        (_garbage_weights, "cannot be loaded"),
    ],
    ids=["bad_json", "unknown_kind", "no_config", "missing_base", "pickled_bin", "pickled_adapter_bin",
         "garbage_weights"],
)
def test_broken_checkpoint_is_a_one_line_usage_error(tmp_path, make, expected):
    from configs.cli import UsageError
    from rl.checkpoint import load_checkpoint

    checkpoint, marker = tmp_path / "ckpt", tmp_path / "unpickled"
    make(checkpoint, marker)
    with pytest.raises(UsageError) as error:
        load_checkpoint(str(checkpoint))
    message = str(error.value)
    assert expected in message and repr(str(checkpoint)) in message and "\n" not in message, message
    assert not marker.exists(), "a pickle was loaded"


def test_cli_prints_one_line_for_a_pickled_checkpoint(tmp_path):
    image, checkpoint, marker = tmp_path / "part.png", tmp_path / "ckpt", tmp_path / "unpickled"
    Image.new("L", (32, 32), 200).save(image)
    _pickled_model(checkpoint, marker)
    completed = run_module(
        "rl.predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), timeout=300
    )
    line = _one_error_line(completed)
    assert "holds pickled weights (pytorch_model.bin)" in line and not marker.exists()
