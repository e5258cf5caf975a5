"""Pipe fittings: elbows, tees and crosses, reducers, couplers, caps and hose barbs."""

from __future__ import annotations

from corpus.families._common import Draw, indent, program, rnd

TUBE = (
    "module tube(d_out, d_in, len) {\n"
    "    rotate_extrude() translate([d_in / 2, 0]) square([(d_out - d_in) / 2, len]);\n}"
)


def pipe_fitting(d: Draw) -> tuple[dict, str]:
    """One pipe fitting; most are rotate_extrude of a profile, the tee and cross are booleans."""
    kind = d.weighted({"elbow": 3, "tee": 2, "reducer": 2, "coupler": 1, "cap": 1, "hose_barb": 2})
    return {
        "elbow": _elbow,
        "tee": _tee,
        "reducer": _reducer,
        "coupler": _coupler,
        "cap": _cap,
        "hose_barb": _hose_barb,
    }[kind](d)


def _elbow(d: Draw) -> tuple[dict, str]:
    h = d.header(d.choice([None, "Pipe elbow", "Socket elbow"]))
    pipe_od = h("pipe_od", d.choice([12, 16, 20, 20, 25, 32, 40]))
    h("wall", rnd(max(1.5, pipe_od * d.num(0.08, 0.14, 0.01)), 0.5))
    h("bend_r", rnd(pipe_od * d.num(0.9, 2.0, 0.1), 1))
    h("angle", d.weighted({90: 4, 45: 2, 60: 1, 30: 1}))
    sockets = d.flag(0.6)
    if sockets:
        h("socket_len", rnd(pipe_od * d.num(0.5, 1.0, 0.1), 1))
    h("$fn", d.choice([24, 32]) if sockets else d.choice([32, 48]))
    h.blank()
    bend = (
        "rotate_extrude(angle = angle)\n    translate([bend_r, 0]) difference() {\n"
        f"        circle(d = {'pipe_od + 2 * wall' if sockets else 'pipe_od'});\n"
        "        circle(d = pipe_od - 2 * wall);\n    }"
    )
    if not sockets:
        return h.params | {"variant": "elbow"}, program(h, bend)
    body = (
        "union() {\n" + indent(bend) + "\n"
        "    // sockets, sunk 0.01 into the bend so the faces do not coincide\n"
        "    translate([bend_r, 0.01, 0]) rotate([90, 0, 0]) tube(pipe_od + 2 * wall, pipe_od, "
        "socket_len);\n    rotate([0, 0, angle]) translate([bend_r, -0.01, 0]) rotate([-90, 0, 0])\n"
        "        tube(pipe_od + 2 * wall, pipe_od, socket_len);\n}"
    )
    return h.params | {"variant": "elbow_sockets"}, program(h, TUBE, body)


def _tee(d: Draw) -> tuple[dict, str]:
    cross = d.flag(0.3)
    h = d.header(d.choice([None, "Pipe cross" if cross else "Pipe tee"]))
    pipe_od = h("pipe_od", d.choice([12, 16, 20, 25, 32]))
    wall = h("wall", d.num(1.5, 3.5, 0.5))
    h("arm", rnd((pipe_od + 2 * wall) * d.num(0.9, 1.6, 0.1), 1), "centre to end")
    h("socket_len", rnd(h.params["arm"] * d.num(0.4, 0.7, 0.1), 1))
    h("$fn", d.choice([24, 32]))
    h.blank()
    if d.flag(0.4):
        h.lines.insert(-1, "// the run lies along x, the branch along y")
    bore = (
        "// one arm's bore, from the centre out: a socket for the pipe, then a smaller passage\n"
        "module bore_2d() {\n"
        "    polygon([[0, 0], [pipe_od / 2 - wall, 0], [pipe_od / 2 - wall, arm - socket_len],\n"
        "             [pipe_od / 2, arm - socket_len], [pipe_od / 2, arm + 1], [0, arm + 1]]);\n}"
    )
    branch = (
        "rotate([90, 0, 0]) cylinder(d = pipe_od + 2 * wall, h = 2 * arm, center = true);"
        if cross
        else "rotate([-90, 0, 0]) cylinder(d = pipe_od + 2 * wall, h = arm);"
    )
    branch_bore = (
        "rotate([90, 0, 0]) rotate_extrude() {\n        bore_2d();\n        mirror([0, 1]) bore_2d();\n    }"
        if cross
        else "rotate([-90, 0, 0]) rotate_extrude() bore_2d();"
    )
    body = (
        "difference() {\n    union() {\n"
        "        rotate([0, 90, 0]) cylinder(d = pipe_od + 2 * wall, h = 2 * arm, center = true);\n"
        f"        {branch}\n    }}\n    rotate([0, 90, 0]) rotate_extrude() {{\n        bore_2d();\n"
        f"        mirror([0, 1]) bore_2d();\n    }}\n    {branch_bore}\n}}"
    )
    return h.params | {"variant": "cross" if cross else "tee"}, program(h, bore, body)


def _reducer(d: Draw) -> tuple[dict, str]:
    h = d.header(d.choice([None, "Reducer"]))
    big = h("big_od", d.choice([20, 25, 32, 40, 50]))
    h("small_od", d.choice([s for s in (12, 16, 20, 25, 32, 40) if s <= big * 0.8]))
    h("wall", d.num(1.5, 3, 0.5))
    h("big_len", d.num(10, 25, 1))
    h("small_len", d.num(10, 25, 1))
    h("taper_len", d.num(6, 20, 1))
    h("$fn", d.choice([48, 64]))
    h.blank()
    body = (
        "rotate_extrude()\n    polygon([\n"
        "        [big_od / 2, 0], [big_od / 2 + wall, 0], [big_od / 2 + wall, big_len],\n"
        "        [small_od / 2 + wall, big_len + taper_len], [small_od / 2 + wall, big_len + taper_len + "
        "small_len],\n"
        "        [small_od / 2, big_len + taper_len + small_len], [small_od / 2, big_len + taper_len],\n"
        "        [small_od / 2 - wall, big_len + taper_len], [big_od / 2 - wall, big_len], [big_od / 2, "
        "big_len]\n    ]);"
    )
    return h.params | {"variant": "reducer"}, program(h, body)


def _coupler(d: Draw) -> tuple[dict, str]:
    h = d.header(d.choice([None, "Pipe coupler"]))
    h("pipe_od", d.choice([12, 16, 20, 25, 32, 40]))
    h("wall", d.num(1.5, 3, 0.5))
    h("socket_len", d.num(10, 30, 1))
    h("stop_w", d.num(2, 5, 0.5))
    h("stop_depth", d.num(1, 3, 0.5))
    grip = d.flag(0.4)
    if grip:
        h("ribs", d.int(6, 16))
    h("$fn", d.choice([48, 64]))
    h.blank()
    body = (
        "rotate_extrude()\n    polygon([\n"
        "        [pipe_od / 2, 0], [pipe_od / 2 + wall, 0], [pipe_od / 2 + wall, 2 * socket_len + "
        "stop_w],\n        [pipe_od / 2, 2 * socket_len + stop_w], [pipe_od / 2, socket_len + stop_w],\n"
        "        [pipe_od / 2 - stop_depth, socket_len + stop_w], [pipe_od / 2 - stop_depth, "
        "socket_len],\n        [pipe_od / 2, socket_len]\n    ]);"
    )
    if grip:
        body = (
            "union() {\n" + indent(body) + "\n    // grip ribs\n"
            "    translate([0, 0, socket_len / 2]) linear_extrude(height = socket_len + stop_w)\n"
            "        for (i = [0 : ribs - 1])\n"
            "            rotate(i * 360 / ribs) translate([pipe_od / 2 + wall - 0.5, -0.75]) "
            "square(1.5);\n}"
        )
    return h.params | {"variant": "coupler_ribs" if grip else "coupler"}, program(h, body)


def _cap(d: Draw) -> tuple[dict, str]:
    h = d.header(d.choice([None, "End cap"]))
    h("pipe_od", d.choice([12, 16, 20, 25, 32, 40, 50]))
    h("wall", d.num(1.5, 3, 0.5))
    h("depth", d.num(8, 25, 1))
    h("top", d.num(1.5, 4, 0.5))
    plain = d.flag()
    if not plain:
        h("chamfer", d.num(0.5, 2, 0.5))
    ribs = d.flag(0.4)
    if ribs:
        h("ribs", d.int(8, 24), "grip ribs")
    h("$fn", d.choice([40, 48]))
    h.blank()
    # printed closed end down
    if plain:
        body = (
            "difference() {\n"
            "    cylinder(d = pipe_od + 2 * wall, h = top + depth);\n"
            "    translate([0, 0, top]) cylinder(d = pipe_od, h = depth + 1);\n"
            "}"
        )
    else:
        body = (
            "rotate_extrude()\n"
            "    polygon([\n"
            "        [0, 0], [pipe_od / 2 + wall - chamfer, 0], [pipe_od / 2 + wall, chamfer],\n"
            "        [pipe_od / 2 + wall, top + depth], [pipe_od / 2, top + depth],\n"
            "        [pipe_od / 2, top], [0, top]\n"
            "    ]);"
        )
    if ribs:
        body = (
            "union() {\n"
            + indent(body)
            + "\n    translate([0, 0, top]) linear_extrude(height = depth * 0.8)\n"
            "        for (i = [0 : ribs - 1])\n"
            "            rotate(i * 360 / ribs)\n"
            "                translate([pipe_od / 2 + wall - 0.5, -0.6]) square([1.2, 1.2]);\n"
            "}"
        )
    return h.params | {"variant": "cap_ribs" if ribs else "cap"}, program(h, body)


def _hose_barb(d: Draw) -> tuple[dict, str]:
    h = d.header(d.choice([None, "Hose barb", "Hose barb fitting"]))
    hose_id = h("hose_id", d.choice([4, 5, 6, 8, 10, 12, 16]))
    h("barb_d", rnd(hose_id + d.num(1, 2.5, 0.5), 0.5))
    h("bore_d", rnd(hose_id * d.num(0.5, 0.7, 0.05), 0.5))
    h("barbs", d.int(2, 5))
    h("barb_len", rnd(hose_id * d.num(0.5, 0.9, 0.1), 0.5))
    h("neck", d.num(2, 5, 0.5))
    base = d.choice(["hex", "flange", "barb"])
    if base == "hex":
        h("hex_af", rnd(hose_id + d.num(5, 10, 1), 1))
        h("hex_h", d.num(4, 8, 1))
        h("thread_d", min(rnd(hose_id + d.num(2, 6, 1), 1), h.params["hex_af"] - 2))
        h("thread_len", d.num(5, 12, 1))
    elif base == "flange":
        h("flange_d", rnd(hose_id * 2 + d.num(8, 20, 2), 2))
        h("flange_h", d.num(2, 5, 0.5))
        h("screw_d", d.choice([3.2, 3.4, 4.5]))
    h("$fn", d.choice([32, 48]))
    h.blank()
    if base == "barb":
        profile = (
            "r_neck = hose_id / 2 - 0.5;\ntop = neck + barbs * barb_len;\n\nmodule barb_profile() {\n"
            "    polygon(concat(\n        [[bore_d / 2, 0], [r_neck, 0], [r_neck, neck]],\n"
            "        [for (i = [0 : barbs - 1]) each [[barb_d / 2, neck + i * barb_len], [r_neck, neck + "
            "(i + 1) * barb_len]]],\n        [[bore_d / 2, top]]\n    ));\n}"
        )
        body = (
            "// double barb (hose joiner)\nrotate_extrude() {\n    barb_profile();\n"
            "    mirror([0, 1]) barb_profile();\n}"
        )
        return h.params | {"variant": "barb_joiner"}, program(h, profile, body)
    # the body of revolution reaches half way into the hex or flange, which is added around it
    start = (
        "[[bore_d / 2, -hex_h - thread_len], [thread_d / 2, -hex_h - thread_len], [thread_d / 2, -hex_h / "
        "2], [r_neck, -hex_h / 2]]"
    )
    if base == "flange":
        start = "[[bore_d / 2, -flange_h / 2], [r_neck, -flange_h / 2]]"
    profile = (
        "r_neck = hose_id / 2 - 0.5;\ntop = neck + barbs * barb_len;\n\nmodule profile() {\n"
        f"    polygon(concat(\n        {start},\n"
        "        [for (i = [0 : barbs - 1]) each [[barb_d / 2, neck + i * barb_len], [r_neck, neck + (i + "
        "1) * barb_len]]],\n        [[bore_d / 2, top]]\n    ));\n}"
    )
    if base == "hex":
        ring = (
            "translate([0, 0, -hex_h]) linear_extrude(height = hex_h)\n    difference() {\n"
            "        circle(d = hex_af / cos(30), $fn = 6);\n"
            "        circle(r = (bore_d / 2 + r_neck) / 2);\n    }"
        )
    else:
        ring = (
            "translate([0, 0, -flange_h]) linear_extrude(height = flange_h)\n    difference() {\n"
            "        circle(d = flange_d);\n        circle(r = (bore_d / 2 + r_neck) / 2);\n"
            "        for (a = [45 : 90 : 315]) rotate(a) translate([flange_d / 2 - screw_d - 1, 0]) "
            "circle(d = screw_d);\n    }"
        )
    body = "rotate_extrude() profile();\n" + ring
    return h.params | {"variant": f"barb_{base}"}, program(h, profile, body)
