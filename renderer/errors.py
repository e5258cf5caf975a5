"""Set-up errors of the renderer: OpenSCAD cannot run here at all (not a bad program).

Every command prints one of these as one line (``rl.eval: error: ...``) and exits 2.
"""


class RendererUnavailable(RuntimeError):
    """OpenSCAD cannot run on this machine: missing binary, or no sandbox to run it in."""
