"""rl.app: the web app started on 127.0.0.1 and used through ``gradio_client``, as a browser would.

One server for the module (a tiny policy built from config and saved as a checkpoint, renders in
process); a test that needs a policy whose programs are known swaps ``service.policy``. Each bad
upload is a message on the page that names the problem, and returns no file.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from renderer.openscad import run
from renderer.stl import read_binary_stl, write_binary_stl
from tests.conftest import needs_openscad
from tests.rl.conftest import build_tiny_policy

pytest.importorskip("gradio")
pytestmark = needs_openscad

PART = "difference() { cube([30, 20, 6]); translate([15, 10, -1]) cylinder(r = 4, h = 8, $fn = 24); }\n"
"""The part of every upload: a 30 x 20 x 6 mm plate with a hole."""
TWICE = f"scale(2) {{\n{PART}}}\n"
MAX_UPLOAD_MB = 1
MAX_PIXELS = 512 * 512


def known_policy(greedy_code: str, sampled_code: str, wait_s: float = 0.0, log: list | None = None):
    """A policy whose greedy program is ``greedy_code`` and sampled ones ``sampled_code``; it
    takes ``wait_s`` per call and logs ``(start, end)`` of each call in ``log``."""

    def sample(images, n=1, **kw):
        start = time.perf_counter()
        time.sleep(wait_s)
        if log is not None:
            log.append((start, time.perf_counter()))
        return SimpleNamespace(texts=[greedy_code if kw.get("greedy") else sampled_code] * n * len(images))

    return SimpleNamespace(sample=sample)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The part's corpus-style picture, its mesh as binary STL, and a tiny policy checkpoint."""
    from corpus.dataset import target_views
    from renderer.views import to_uint8

    folder = tmp_path_factory.mktemp("app")
    result = run(PART)
    assert result.ok, result.stderr
    views, _ = target_views(result.vertices, result.faces, 128)
    Image.fromarray(to_uint8(views[0])).save(folder / "part.png")
    for name, view in zip(("front", "right", "top"), views[1:], strict=True):
        Image.fromarray(to_uint8(view)).save(folder / f"{name}.png")
    write_binary_stl(str(folder / "part.stl"), result.vertices, result.faces)
    build_tiny_policy(seed=0).save(str(folder / "checkpoint"))
    return SimpleNamespace(folder=folder, mesh=result, picture=str(folder / "part.png"),
                           stl=str(folder / "part.stl"), checkpoint=str(folder / "checkpoint"))


@pytest.fixture(scope="module")
def app(files):
    from gradio_client import Client

    from configs.app import AppConfig
    from rl.app import serve

    config = AppConfig(checkpoint=files.checkpoint, port=0, render_workers=0, k=2, max_k=4, max_refine=20,
                       max_new_tokens=16, max_upload_mb=MAX_UPLOAD_MB, max_image_pixels=MAX_PIXELS)
    page, service, url = serve(config, block=False)
    tiny = service.policy
    try:
        yield SimpleNamespace(page=page, service=service, url=url, client=Client(url, verbose=False),
                              tiny=tiny)
    finally:
        page.close()
        service.close()


@pytest.fixture
def policy(app):
    """Set the app's policy for one test (the tiny checkpoint's again afterwards)."""
    yield lambda new: setattr(app.service, "policy", new)
    app.service.policy = app.tiny


def ask(app, iso=None, mesh=None, size=None, k=2, refine=0, views=(None, None, None)):
    """One request through the page's API: (status, code, model, views, scad, stl)."""
    from gradio_client import handle_file

    upload = [handle_file(str(path)) if path else None for path in (iso, *views, mesh)]
    return app.client.predict(*upload, size, k, refine, api_name="/predict")


def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a socket listening on ``port`` (from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_server_listens_on_127_0_0_1_only(app):
    from configs.app import AppConfig

    assert AppConfig().host == "127.0.0.1"
    assert app.url.startswith("http://127.0.0.1:")
    port = int(app.url.rstrip("/").rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex; no 0.0.0.0, no ::


def test_a_picture_gives_the_program_its_status_and_files(app, files):
    """The tiny checkpoint's own programs (untrained: mostly not a part)."""
    status, code, model, views, scad, stl = ask(app, iso=files.picture)
    assert open(scad, encoding="utf-8").read().strip() == code
    assert Image.open(views).size == (4 * 128, 2 * 128 + 4)  # the input above, the program below
    if status.startswith("**Valid program**"):  # an untrained policy: either is a right answer
        assert read_binary_stl(stl)[1].shape[1] == 3 and model == stl
    else:
        assert status.startswith("**No valid program** among 2 (INVALID, status `")
        assert "OpenSCAD's messages" in status and stl is None and model is None


def test_a_valid_program_comes_back_as_scad_stl_and_preview(app, files, policy):
    policy(known_policy("cube([1, 2;", PART))  # a syntax error first: the valid program must win
    status, code, model, views, scad, stl = ask(app, iso=files.picture, k=3)
    assert status.startswith("**Valid program**: kept program 1 of 3 (2 valid)")
    assert "| silhouette |" in status
    assert "| 0 (greedy) | syntax_error |" in status
    assert open(scad, encoding="utf-8").read() == PART and scad.endswith(".scad")
    assert code == PART.strip()  # the page's code box trims the last newline; the file keeps it
    vertices, faces = read_binary_stl(stl)
    assert len(faces) > 0 and np.allclose(np.ptp(vertices, axis=0), [30, 20, 6], atol=1e-3)
    assert model.endswith(".stl") and read_binary_stl(model)[1].shape == faces.shape
    assert Image.open(views).size == (4 * 128, 2 * 128 + 4)


def test_four_views_are_used_in_order(app, files, policy):
    policy(known_policy(PART, PART))
    views = tuple(str(files.folder / f"{name}.png") for name in ("front", "right", "top"))
    status, *_ = ask(app, iso=files.picture, views=views, k=1)
    assert status.startswith("**Valid program**") and "| silhouette | 1.000 |" in status
    status, code, *_ , scad, stl = ask(app, iso=files.picture, views=(None, views[1], None), k=1)
    assert status.startswith("**Upload refused:**") and "give the front view too" in status
    assert scad is None and stl is None and code == ""


def test_a_mesh_picks_the_program_of_the_right_size_and_a_size_scales_it(app, files, policy):
    policy(known_policy(TWICE, PART))  # from a picture alone both would look the same
    status, code, model, views, scad, stl = ask(app, mesh=files.stl, k=2)
    assert status.startswith("**Valid program**: kept program 1 of 4") and "with the mesh" in status
    assert "| 2 (fitted) | ok | 1.000 |" in status  # the greedy program fitted to the mesh's size
    assert "| 3 (dimensioned) | ok |" in status  # and with its numbers solved to it: another candidate
    assert "| iou | 1.000 |" in status and code == PART.strip()
    status, code, model, views, scad, stl = ask(app, mesh=files.stl, k=2, size=60)
    assert "Size: scaled by 2 to a largest side of 60 mm" in status and "scale(2)" in code
    assert np.allclose(np.ptp(read_binary_stl(stl)[0], axis=0), [60, 40, 12], atol=1e-3)
    assert open(scad, encoding="utf-8").read().strip() == code and run(code).ok


def test_refinement_tunes_the_kept_program_on_the_apps_render_pool(app, files, policy):
    start = PART.replace("cube([30, 20, 6])", "cube([36, 16, 6])")  # another shape: refinement can mend it
    policy(known_policy(start, start))
    status, code, model, views, scad, stl = ask(app, iso=files.picture, k=1, refine=20)
    line = next(line for line in status.splitlines() if line.startswith("refine: agreement"))
    before, after = (float(x) for x in line.split()[2:5:2])
    assert after > before and code != start.strip() and open(scad, encoding="utf-8").read().strip() == code
    assert not app.service.pool.targets  # the request's target is gone from the pool with it


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply"])
def test_obj_off_and_ply_meshes_are_read(app, files, policy, suffix):
    policy(known_policy(PART, PART))
    path = files.folder / f"part{suffix}"
    _write_mesh(path, files.mesh.vertices, files.mesh.faces)
    status, *_ = ask(app, mesh=path, k=1)
    assert status.startswith("**Valid program**") and "| iou | 1.000 |" in status


def _write_mesh(path, vertices, faces) -> None:
    if path.suffix == ".ply":
        import open3d as o3d

        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                         o3d.utility.Vector3iVector(faces))
        assert o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=False)
        return
    vertices = vertices.tolist()
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices] + [f"f {a + 1}/1 {b + 1}/1 {c + 1}/1"
                                                                  for a, b, c in faces]
    if path.suffix == ".off":
        lines = ["OFF", f"{len(vertices)} {len(faces)} 0", *(f"{x!r} {y!r} {z!r}" for x, y, z in vertices),
                 *(f"3 {a} {b} {c}" for a, b, c in faces)]
    path.write_text("\n".join(lines) + "\n")


BAD_UPLOADS = {
    "not_an_image": ("x.png", b"this is not a picture", None,
                     "'x.png' is not an image PIL can read (UnidentifiedImageError"),
    "truncated_image": ("cut.png", None, "truncated", "'cut.png' is not an image PIL can read (OSError"),
    "too_many_pixels": ("wide.png", None, "wide", "'wide.png' is too large: 1000x600 = 600000 pixels"),
    "broken_stl": ("part.stl", b"solid ascii\nfacet\n", None, "'part.stl' is not a binary STL"),
    "obj_naming_a_missing_vertex": ("part.obj", b"v 0 0 0\nv 1 0 0\nf 1 2 7\n", None,
                                    "'part.obj' is not a readable .obj mesh (ValueError: line 3: face "
                                    "names vertex 7"),
    "mesh_of_flat_triangles": ("flat.obj", b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", None,
                               "mesh 'flat.obj': "),
    "ply_without_header": ("part.ply", b"\x00" * 100, None, "'part.ply' is not a readable .ply mesh"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_is_a_message_on_the_page(app, files, case, tmp_path):
    name, content, make, expected = BAD_UPLOADS[case]
    path = tmp_path / name
    if make == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:300])
    elif make == "wide":
        Image.new("1", (1000, 600)).save(path)  # 600,000 pixels in a few hundred bytes
    else:
        path.write_bytes(content)
    is_mesh = path.suffix in (".stl", ".obj", ".ply")
    status, code, model, views, scad, stl = ask(app, mesh=path) if is_mesh else ask(app, iso=path)
    assert status.startswith("**Upload refused:** ") and expected in status, status
    assert str(tmp_path) not in status and "Traceback" not in status
    assert (code, model, views, scad, stl) == ("", None, None, None, None)


def test_no_upload_is_a_message(app):
    status, *_ = ask(app)
    assert status == "**Upload refused:** upload a picture of the part (its iso view) or a mesh of it"


def test_an_over_large_file_is_refused_by_the_server_and_by_the_app(app, tmp_path):
    import httpx
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(MAX_UPLOAD_MB * 2**20 + 1000))
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        app.client.predict(handle_file(str(big)), None, None, None, None, None, 2, 0, api_name="/predict")
    with open(big, "rb") as fh:  # a client that does not look: the server stops it
        answer = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.png", fh)}, timeout=30)
    assert answer.status_code == 413 and "exceeded maximum allowed size of 1048576 bytes" in answer.text
    status = app.service.handle([str(big)]).status  # a file that reached the app some other way
    assert status == "**Upload refused:** 'big.png' is 1.0 MiB, over the 1 MiB limit"


def test_a_file_of_another_type_is_refused_by_the_page(app, tmp_path):
    from gradio_client import handle_file

    text = tmp_path / "notes.txt"
    text.write_text("a cube, 20 mm")
    with pytest.raises(Exception, match="Invalid file type"):
        app.client.predict(handle_file(str(text)), None, None, None, None, None, 2, 0, api_name="/predict")


def test_k_and_refinement_outside_their_range_are_refused(app, files):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Value 99 is greater than maximum value 4"):  # the page's sliders
        ask(app, iso=files.picture, k=99)
    assert app.service.handle([files.picture], k=99).status == "**Upload refused:** k must be in 1..4, got 99"
    status = app.service.handle([files.picture], refine=50).status
    assert status == "**Upload refused:** refinement renders must be in 0..20, got 50"


def test_requests_queue_one_at_a_time(app, files, policy):
    """Two users at once with concurrency 1: the second request waits for the first to finish."""
    log: list = []
    policy(known_policy(PART, PART, wait_s=0.5, log=log))
    from gradio_client import handle_file

    jobs = [app.client.submit(handle_file(files.picture), None, None, None, None, None, 1, 0,
                              api_name="/predict") for _ in range(2)]
    statuses = [job.result(timeout=60)[0] for job in jobs]
    assert all(s.startswith("**Valid program**") for s in statuses)
    (start_a, end_a), (start_b, end_b) = sorted(log)
    assert end_a <= start_b


def test_without_a_checkpoint_the_page_says_which_command_makes_one(tmp_path):
    import httpx

    from configs.app import AppConfig
    from rl.app import serve

    page, service, url = serve(AppConfig(checkpoint=str(tmp_path / "none"), port=0), block=False)
    try:
        assert service.pool is None  # nothing is started for a page that cannot predict
        config = httpx.get(url + "config", timeout=30).text
        assert "No policy to serve" in config and "make demo" in config and "python -m rl.demo" in config
        assert "holds no policy" in config
    finally:
        page.close()
        service.close()


def test_a_bad_option_is_one_line_and_exit_2(capsys):
    from rl.app import main

    with pytest.raises(SystemExit) as stopped:
        main(["--k", "9", "--max_k", "8"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "k must be in 1..max_k" in err


def test_only_the_newest_request_folders_are_kept(files):
    from configs.app import AppConfig
    from rl.app_service import AppService

    service = AppService(AppConfig(checkpoint=files.checkpoint, keep_results=2, k=1),
                         policy=known_policy(PART, PART))
    try:
        answers = [service.handle([files.picture]) for _ in range(3)]
        assert all(a.status.startswith("**Valid program**") for a in answers)
        assert sorted(os.listdir(service.folder)) == sorted(os.path.basename(os.path.dirname(a.scad_path))
                                                            for a in answers[1:])
    finally:
        service.close()
    assert not os.path.exists(service.folder)


def test_retrieve_offers_a_training_program_scaled_to_the_upload(files, tmp_path):
    from configs.app import AppConfig
    from corpus.dataset import target_views
    from policies.exemplars import ExemplarIndex
    from rl.app_service import AppService

    twice = run(TWICE)
    views, _ = target_views(twice.vertices, twice.faces, 128)
    index = ExemplarIndex.build([{"id": "train-1", "views": list(views), "code": TWICE,
                                  "extents": [60.0, 40.0, 12.0]}])
    service = AppService(AppConfig(checkpoint=files.checkpoint, retrieve=1, k=1, render_workers=0),
                         policy=known_policy("cube([1, 2;", "cube([1, 2;"), index=index)
    try:
        answer = service.handle([], mesh_path=files.stl)  # the policy writes nothing that runs
        kept = answer.summary["candidates"][answer.summary["chosen"]]
        assert kept["mode"] == "retrieved" and kept["retrieved_from"] == "train-1" and answer.summary["valid"]
        vertices, _ = read_binary_stl(answer.stl_path)
        assert np.allclose(np.ptp(vertices, axis=0), [30, 20, 6], rtol=0.02), "scaled to the mesh's size"
    finally:
        service.close()
    missing = AppService.start(AppConfig(checkpoint=files.checkpoint, retrieve=1, corpus_dir=str(tmp_path)))
    assert missing.policy is None and "retrieve 1" in missing.problem and "no corpus" in missing.problem
