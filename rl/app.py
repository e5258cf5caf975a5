"""The web app: a picture, four views or a mesh of a part in, its OpenSCAD program out, in a browser.

Commands::

    python -m rl.app                                         # runs/demo/ppo/final on http://127.0.0.1:7860
    python -m rl.app --checkpoint runs/ppo/final --port 8080
    python -m rl.app --host 0.0.0.0 --max_upload_mb 8        # reachable from other machines
    python -m rl.app --help

Needs the ``app`` extra (``pip install -e .[app]``; ``scripts/setup.sh`` installs it). The page
takes one picture (the iso view, as the corpus renders parts), up to four views (iso, front,
right, top) or a mesh (``.stl``, ``.obj``, ``.off``, ``.ply``), an optional size in mm, ``k`` and
the refinement renders. It shows the program (copy, and download as ``.scad``), a 3-D preview of
its render, the input's views above the program's, the terms of its agreement with the input or
the failure status with OpenSCAD's messages, and the STL to download; a progress bar while it
samples and renders. Without a checkpoint the page says which command makes one (``make demo``).

This module owns the page and the server (gradio, imported when the app starts);
:mod:`rl.app_service` owns what a request does. Safe by default: it listens on 127.0.0.1
(``--host``, ``--port``); uploads are capped (``--max_upload_mb``, by the server before a byte
reaches the app, and again by the app) and so are a picture's pixels (``--max_image_pixels``,
from its header); a bad upload is a message on the page; requests queue with at most
``--concurrency`` running and ``--queue_size`` waiting, so users share the render pool rather
than overload it; every program runs in the same sandboxed OpenSCAD as training does.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from configs.app import LOOPBACK, AppConfig
from configs.cli import UsageError, fail, parse, warn
from renderer.errors import RendererUnavailable
from rl.app_service import VIEW_NAMES, AppService

PROG = "rl.app"
MESH_TYPES = [".stl", ".obj", ".off", ".ply", ".npz"]
"""Mesh files the page offers to upload (:func:`rl.predict.read_mesh`)."""


def build_page(service: AppService):
    """The gradio ``Blocks`` of the app (the page that says how to make a policy when there is none)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    config = service.config
    with gr.Blocks(title="scadloop", delete_cache=(1800, 3600), analytics_enabled=False) as page:
        gr.Markdown("# scadloop: a picture or a mesh of a part → its OpenSCAD program")
        if service.policy is None:
            gr.Markdown(service.missing_page(), elem_id="missing")
            return page
        gr.Markdown(f"Policy `{config.checkpoint}`. Upload a picture of the part as the corpus renders "
                    "parts (grey on white, iso view), optionally its front, right and top views, or a "
                    "mesh of it; every program runs in a sandboxed OpenSCAD.")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("Picture"):
                    pictures = [gr.File(label="picture: iso view", file_types=["image"],
                                        elem_id="picture_iso")]
                    with gr.Accordion("more views (optional, in this order)", open=False):
                        pictures += [gr.File(label=f"{name} view", file_types=["image"],
                                             elem_id=f"picture_{name}") for name in VIEW_NAMES[1:]]
                with gr.Tab("Mesh"):
                    mesh = gr.File(label="mesh: .stl (binary), .obj, .off, .ply", file_types=MESH_TYPES,
                                   elem_id="mesh")
                size = gr.Number(label="size in mm (optional, 0: none): the part's largest side; the "
                                 "program is scaled to it", value=None, minimum=0, maximum=10000)
                k = gr.Slider(1, config.max_k, value=config.k, step=1, label="programs to write (k)")
                refine = gr.Slider(0, config.max_refine, value=config.refine, step=10,
                                   label="refinement renders (0: off)", visible=config.max_refine > 0)
                button = gr.Button("Write the program", variant="primary", elem_id="run")
                gr.Markdown(f"Uploads up to {config.max_upload_mb:g} MiB; pictures up to "
                            f"{config.max_image_pixels:,} pixels.")
            with gr.Column(scale=2):
                status = gr.Markdown("Upload a picture or a mesh, then **Write the program**.",
                                     elem_id="status")
                model = gr.Model3D(label="the program's render (drag to turn)", clear_color=(1, 1, 1, 1),
                                   height=360)
                views = gr.Image(label="input (top) and the program (bottom): iso, front, right, top",
                                 type="filepath", interactive=False)
                code = gr.Code(label="program", language="c", buttons=["copy"], interactive=False)
                with gr.Row():
                    scad_file = gr.File(label="program (.scad)", interactive=False)
                    stl_file = gr.File(label="mesh (.stl)", interactive=False)

        def run(iso, front, right, top, mesh_path, size_mm, k_value, refine_value,
                progress=gr.Progress()):  # noqa: B008 - how gradio hands a progress bar to a function
            answer = service.handle([iso, front, right, top], mesh_path, size_mm, k_value, refine_value,
                                    progress=lambda fraction, stage: progress(fraction, desc=stage))
            return (answer.status, answer.code, answer.stl_path, answer.views_path, answer.scad_path,
                    answer.stl_path)

        button.click(run, inputs=[*pictures, mesh, size, k, refine],
                     outputs=[status, code, model, views, scad_file, stl_file], api_name="predict")
    return page


def serve(config: AppConfig, block: bool = True):
    """Start the service and the server; with ``block`` False return ``(page, service, url)`` at once
    (tests close them with ``page.close()`` and ``service.close()``)."""
    service = AppService.start(config)
    page = build_page(service)
    page.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    port = config.port or free_port(config.host)
    try:
        _, url, _ = page.launch(server_name=config.host, server_port=port, share=False, ssr_mode=False,
                                max_file_size=int(config.max_upload_mb * 2**20), quiet=not block,
                                prevent_thread_lock=not block, footer_links=[], show_error=False)
    except BaseException:
        service.close()
        raise
    if block:
        service.close()
    return page, service, url


def free_port(host: str) -> int:
    """A port nothing listens on at ``host`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    config = parse(PROG, "Serve the policy in a browser: picture or mesh in, OpenSCAD program out.",
                   AppConfig, argv)
    if config.host not in LOOPBACK:
        warn(PROG, f"listening on {config.host}: anyone who can reach this machine can use the app")
    try:
        import gradio  # noqa: F401 - the extra may be missing
    except ImportError:
        fail(PROG, "gradio is not installed: pip install -e '.[app]' (scripts/setup.sh installs it)")
    signal.signal(signal.SIGTERM, _interrupt)  # kill PID: close the server and the pool as Ctrl-C does
    try:
        serve(config)
    except (UsageError, RendererUnavailable, OSError) as error:
        fail(PROG, error)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
