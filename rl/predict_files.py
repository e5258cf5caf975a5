"""The files ``rl.predict`` and the web page read: pictures, meshes, and the part they show.

Owns reading a picture (:func:`read_image`: size checked from its header, 16-bit scaled, alpha
on white, padded to a square), a mesh (:func:`read_mesh`: binary STL, ``.npz``, ``.obj``,
``.off``, ``.ply``), and :func:`split_tile` (a 2x2 tile of iso, front / right, top back into its
four views). Each bad file is a :class:`configs.cli.UsageError` of one line naming it.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from configs.cli import UsageError
from renderer.meshfiles import FORMATS as MESH_FILE_FORMATS
from renderer.meshfiles import read_mesh_file
from renderer.stl import read_binary_stl

MAX_PIXELS = 8192 * 8192
"""Largest picture accepted (width x height, 64 Mpx); a bigger one is refused before it is decoded."""
MAX_MESH_BYTES = 256 * 2**20
"""Largest ``--mesh`` file read (256 MiB, about 5 million STL triangles)."""
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""PIL modes of 16-bit grayscale pictures, scaled to 8-bit by :func:`to_8bit`."""



def open_image(path: str, max_pixels: int = MAX_PIXELS):
    """The decoded picture at ``path``; :class:`UsageError` (one line) if it is missing, not a regular
    file, over ``max_pixels`` (checked from the header, before decoding) or not a readable image."""
    from PIL import Image

    if not os.path.exists(path):
        raise UsageError(f"image {path!r} does not exist")
    if not os.path.isfile(path):  # a folder, FIFO or device is never opened
        raise UsageError(f"image {path!r} is not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                _check_size(path, opened.size, max_pixels)
                opened.load()
                return opened.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = found.group(1) if found else "too many"
        raise UsageError(
            f"image {path!r} is too large: {pixels} pixels, the limit is {_limit(max_pixels)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as error:  # Unidentified...: OSError
        raise UsageError(f"{path!r} is not an image PIL can read ({_one_line(error)})") from None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _limit(max_pixels: int) -> str:
    side = int(max_pixels**0.5)
    return f"{max_pixels} ({side}x{side})" if side * side == max_pixels else str(max_pixels)


def _check_size(path: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise UsageError(f"image {path!r} is too large: {width}x{height} = {width * height} pixels, "
                         f"the limit is {_limit(max_pixels)}")


def to_8bit(image):
    """A 16-bit grayscale picture (PIL modes ``I;16*``, or ``I`` as older PIL decodes 16-bit PNGs)
    scaled to 8-bit ``L`` (0..65535 -> 0..255, rounded); any other picture unchanged.

    PIL's own ``convert`` clips such values to 255, which turns a 16-bit picture almost all white.
    """
    from PIL import Image

    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def read_image(path: str, max_pixels: int = MAX_PIXELS):
    """The picture at ``path``, RGB, padded to a square with white; :class:`UsageError` if unreadable
    (see :func:`open_image`). 16-bit grayscale is scaled to 8-bit, alpha composited on white."""
    from PIL import Image

    image = to_8bit(open_image(path, max_pixels))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def read_mesh(path: str, max_bytes: int = MAX_MESH_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (N, 3), faces (M, 3))`` of a binary STL, an ``.npz`` (``vertices``, ``faces``) or an
    ``.obj`` / ``.off`` / ``.ply`` (:mod:`renderer.meshfiles`); :class:`UsageError` (one line) if it is
    missing, not a regular file, over ``max_bytes`` or not such a mesh. Whether a face is usable is
    checked when it is prepared."""
    if not os.path.isfile(path):
        what = "is not a regular file" if os.path.exists(path) else "does not exist"
        raise UsageError(f"mesh {path!r} {what}")
    if os.path.getsize(path) > max_bytes:
        raise UsageError(f"mesh {path!r} is over {max_bytes / 2**20:g} MiB")
    extension = os.path.splitext(path)[1].lower()
    if extension in MESH_FILE_FORMATS:
        try:
            return read_mesh_file(path)
        except (OSError, ValueError, UnicodeError) as error:
            raise UsageError(f"{path!r} is not a readable {extension} mesh ({_one_line(error)})") from None
    try:
        if extension == ".npz":
            with np.load(path, allow_pickle=False) as data:
                vertices = np.asarray(data["vertices"], np.float64)
                faces = np.asarray(data["faces"], np.int64)
        elif extension == ".stl":
            vertices, faces = read_binary_stl(path)
        else:
            raise ValueError(f"not .stl, .npz, {', '.join(MESH_FILE_FORMATS)}")
        if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"shapes {vertices.shape} and {faces.shape}, not (N, 3) and (M, 3)")
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError("a face names a vertex that does not exist")
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise UsageError(f"{path!r} is not a binary STL or .npz mesh ({_one_line(error)})") from None
    return vertices, faces


def split_tile(image) -> tuple:
    """The four views (iso, front, right, top) of a 2x2 tile picture, in reading order."""
    width, height = image.size
    half_w, half_h = width // 2, height // 2
    return tuple(image.crop((col * half_w, row * half_h, (col + 1) * half_w, (row + 1) * half_h))
                 for row in range(2) for col in range(2))


def mesh_size(mesh) -> tuple[float, float, float]:
    """The bounding-box size (x, y, z) of ``(vertices, faces)`` over the vertices faces use."""
    vertices, faces = mesh
    used = np.asarray(vertices, np.float64)[np.unique(np.asarray(faces))] if len(faces) else vertices
    return tuple(float(v) for v in np.ptp(np.asarray(used, np.float64), axis=0))
