"""Extruded 2-D profiles (T-slot, I-beam, channel, angle, tube, heat sink, DIN rail) and clips."""

from __future__ import annotations

from corpus.families._common import Draw, indent, program, rnd

# aluminium T-slot: size -> (slot opening, slot depth, lip, cavity width, centre hole)
TSLOT = {20: (6.2, 6.1, 1.8, 11.0, 4.2), 30: (8.2, 9.0, 2.2, 16.5, 6.8), 40: (8.2, 12.0, 4.3, 20.0, 10.5)}


def profile(d: Draw) -> tuple[dict, str]:
    """A length of extruded 2-D profile, standing up or laid along x."""
    kind = d.weighted(
        {"tslot": 3, "ibeam": 2, "channel": 2, "angle": 1, "tee": 1, "tube": 1, "heatsink": 2, "din_rail": 1}
    )
    h = d.header(
        d.choice(
            [
                None,
                {"tslot": "T-slot extrusion", "heatsink": "Heat sink", "din_rail": "DIN rail (TS35)"}.get(
                    kind, "Profile"
                ),
            ]
        )
    )
    blocks: list[str] = []
    name = f"{kind}_2d"
    if kind == "tslot":
        size = h("size", d.choice(list(TSLOT)))
        opening, depth, lip, cavity, center = TSLOT[size]
        h("slot_w", opening)
        h("slot_depth", depth)
        h("lip", lip)
        h("cavity_w", cavity)
        h("center_d", center)
        h("corner_r", d.choice([0.5, 1, 1.5]))
        blocks.append(
            "module slot() {\n"
            "    translate([size / 2 - lip - 0.01, -slot_w / 2]) square([lip + 1, slot_w]);\n"
            "    polygon([[size / 2 - lip, -cavity_w / 2], [size / 2 - lip, cavity_w / 2],\n"
            "             [size / 2 - slot_depth, slot_w / 2], [size / 2 - slot_depth, -slot_w / 2]]);\n}"
        )
        blocks.append(
            f"module {name}() {{\n    difference() {{\n"
            "        offset(r = corner_r) square(size - 2 * corner_r, center = true);\n"
            "        circle(d = center_d);\n        for (a = [0 : 90 : 270]) rotate(a) slot();\n    }\n}"
        )
    elif kind == "ibeam":
        height = h("height", d.num(20, 80, 2))
        h("flange_w", rnd(height * d.num(0.5, 1.0, 0.05), 1))
        web = h("web_t", d.num(2, 6, 0.5))
        h("flange_t", rnd(web * d.num(1.2, 1.8, 0.1), 0.5))
        h("fillet", d.num(1, 4, 0.5))
        blocks.append(
            f"module {name}() {{\n    // the outer offset pair rounds the inside corners\n"
            "    offset(r = -fillet) offset(delta = fillet) {\n"
            "        for (y = [0, height - flange_t]) translate([-flange_w / 2, y]) square([flange_w, "
            "flange_t]);\n        translate([-web_t / 2, 0]) square([web_t, height]);\n    }\n}"
        )
    elif kind in ("channel", "angle", "tee"):
        width = h("width", d.num(15, 60, 1))
        h("height", d.num(10, 50, 1) if kind != "angle" else rnd(width * d.choice([1, 1, 0.75, 0.5]), 1))
        h("t", rnd(min(width / 6, d.num(1.5, 5, 0.5)), 0.5), "wall thickness")
        points = {
            "channel": (
                "[[0, 0], [width, 0], [width, height], [width - t, height], [width - t, t], [t, t], [t, "
                "height], [0, height]]"
            ),
            "angle": "[[0, 0], [width, 0], [width, t], [t, t], [t, height], [0, height]]",
            "tee": (
                "[[0, height - t], [width / 2 - t / 2, height - t], [width / 2 - t / 2, 0], [width / 2 + "
                "t / 2, 0],\n"
                "             [width / 2 + t / 2, height - t], [width, height - t], [width, height], [0, "
                "height]]"
            ),
        }[kind]
        blocks.append(f"module {name}() {{\n    polygon({points});\n}}")
    elif kind == "tube":
        w = h("width", d.num(10, 60, 1))
        h("height", rnd(w * d.choice([1, 1, 0.5, 0.75]), 1))
        h("wall", d.num(1, 4, 0.5))
        h("corner_r", d.num(0.5, 4, 0.5))
        blocks.append(
            f"module {name}() {{\n    difference() {{\n"
            "        offset(r = corner_r) square([width, height] - 2 * [corner_r, corner_r], center = "
            "true);\n        offset(r = max(corner_r - wall, 0.1)) square([width, height] - 2 * [wall + "
            "max(corner_r - wall, 0.1), wall + max(corner_r - wall, 0.1)], center = true);\n    }\n}"
        )
    elif kind == "heatsink":
        base_w = h("base_w", d.num(20, 80, 2))
        h("base_t", d.num(2, 6, 0.5))
        fins = h("fins", d.int(4, max(4, min(18, int(base_w // 3.5)))))
        h("fin_t", rnd(min(base_w / fins * 0.5, d.num(1, 3, 0.5)), 0.5))
        h("fin_h", d.num(8, 40, 1))
        blocks.append(
            f"module {name}() {{\n    square([base_w, base_t]);\n    for (i = [0 : fins - 1])\n"
            "        translate([i * (base_w - fin_t) / (fins - 1), 0]) square([fin_t, base_t + fin_h]);\n"
            "}"
        )
    else:  # din_rail
        h("width", 35)
        h("height", d.choice([7.5, 15]))
        h("t", 1)
        h("center_w", 27)
        blocks.append(
            f"module {name}() {{\n    translate([-center_w / 2, 0]) square([center_w, t]);\n"
            "    for (s = [0, 1]) mirror([s, 0]) {\n"
            "        translate([center_w / 2 - t, 0]) square([t, height]);\n"
            "        translate([center_w / 2 - t, height - t]) square([(width - center_w) / 2 + t, t]);\n"
            "    }\n}"
        )
    length = h("length", d.num(20, 150, 5))
    h("$fn", d.choice([24, 32]))
    h.blank()
    if kind == "din_rail":
        slots = max(1, int(length // 25))
        h.lines.insert(-1, f"slots = {slots};")
        h.params["slots"] = slots
        body = (
            "difference() {\n"
            f"    rotate([90, 0, 0]) linear_extrude(height = length, center = true) {name}();\n"
            "    // mounting slots, 25 mm pitch\n"
            "    translate([0, 0, -1]) linear_extrude(height = t + 2)\n"
            "        for (i = [0 : slots - 1]) translate([0, (i - (slots - 1) / 2) * 25])\n"
            "            hull() for (y = [-5, 5]) translate([0, y]) circle(d = 5.2);\n}"
        )
        return h.params | {"variant": kind}, program(h, *blocks, body)
    if kind == "heatsink":
        # mounting holes sit between the first two and the last two fins
        room = base_w / (fins - 1) - h.params["fin_t"]
        holes = d.flag(0.5) and base_w >= 30 and room >= 4.5
        body = f"rotate([90, 0, 0]) linear_extrude(height = length, center = true) {name}();"
        if holes:
            body = (
                f"difference() {{\n    {body}\n"
                "    for (x = [fin_t + 3, base_w - fin_t - 3]) translate([x, 0, -1]) cylinder(d = 3.2, h "
                "= base_t + 2);\n}"
            )
        return h.params | {"variant": kind + ("_holes" if holes else "")}, program(h, *blocks, body)
    if d.flag(0.5):
        body = f"rotate([0, 90, 0]) linear_extrude(height = length) {name}();"
    else:
        body = f"linear_extrude(height = length) {name}();"
    return h.params | {"variant": kind}, program(h, *blocks, body)


def clip(d: Draw) -> tuple[dict, str]:
    """Pipe and cable clips, saddle clamps, snap-fit hooks and panel edge clips."""
    kind = d.weighted({"pipe": 3, "saddle": 2, "snap_hook": 2, "edge": 2})
    if kind in ("pipe", "saddle"):
        h = d.header(d.choice([None, "Pipe clip" if kind == "pipe" else "Saddle clamp"]))
        pipe_d = h("pipe_d", d.choice([6, 8, 10, 12, 16, 20, 25, 32]))
        h("wall", rnd(max(1.5, pipe_d * d.num(0.08, 0.15, 0.01)), 0.5))
        h("width", d.num(6, 20, 1))
        h("base_t", d.num(2, 4, 0.5))
        hole_d = h("hole_d", d.choice([3.2, 3.4, 4.3, 4.5]))
        h("tab", rnd(hole_d * 2 + d.num(1, 4, 0.5), 0.5))
        if kind == "pipe":
            h("opening", d.num(70, 120, 5), "degrees")
        h("$fn", d.choice([40, 48, 64]))
        h.blank()
        if kind == "pipe":
            shape = (
                "module clip_2d() {\n    difference() {\n        union() {\n"
                "            translate([0, base_t + pipe_d / 2]) circle(d = pipe_d + 2 * wall);\n"
                "            translate([-pipe_d / 2 - wall - tab, 0]) square([pipe_d + 2 * wall + 2 * "
                "tab, base_t]);\n        }\n        translate([0, base_t + pipe_d / 2]) {\n"
                "            circle(d = pipe_d);\n"
                "            polygon([[0, 0], [2 * pipe_d * sin(opening / 2), 2 * pipe_d * cos(opening / "
                "2)],\n                     [-2 * pipe_d * sin(opening / 2), 2 * pipe_d * cos(opening / "
                "2)]]);\n        }\n    }\n}"
            )
        else:
            shape = (
                "module clip_2d() {\n    difference() {\n        union() {\n"
                "            circle(d = pipe_d + 2 * wall);\n"
                "            translate([-pipe_d / 2 - wall - tab, 0]) square([pipe_d + 2 * wall + 2 * "
                "tab, base_t]);\n        }\n        circle(d = pipe_d);\n"
                "        translate([-pipe_d, -pipe_d]) square([2 * pipe_d, pipe_d]);\n    }\n}"
            )
        body = (
            "difference() {\n"
            "    rotate([90, 0, 0]) linear_extrude(height = width, center = true) clip_2d();\n"
            "    for (s = [-1, 1])\n"
            "        translate([s * (pipe_d / 2 + wall + tab / 2), 0, -1]) cylinder(d = hole_d, h = "
            "base_t + 2, $fn = 24);\n}"
        )
        return h.params | {"variant": kind}, program(h, shape, body)
    if kind == "snap_hook":
        h = d.header(d.choice([None, "Snap-fit hook", "Cantilever snap"]))
        h("arm_len", d.num(8, 25, 1))
        arm_t = h("arm_t", d.num(1, 2.5, 0.5))
        h("hook", rnd(arm_t * d.num(0.6, 1.2, 0.1), 0.1), "overhang")
        h("hook_len", d.num(2, 5, 0.5))
        h("width", d.num(4, 12, 1))
        pair = d.flag(0.5)
        base = [d.num(8, 20, 1), d.num(2, 6, 0.5)]
        gap = d.num(2, 6, 0.5)
        if pair:  # both arms stand on the base
            base[0] = max(base[0], rnd(gap + 2 * arm_t + 2, 1))
        h("base", base)
        if pair:
            h("gap", gap)
        h.blank()
        hook = (
            "module hook_2d() {\n    square([arm_t, base[1] + arm_len]);\n"
            "    translate([arm_t - 0.01, base[1] + arm_len - hook_len])\n"
            "        polygon([[0, 0], [hook + 0.01, 0], [0.01, hook_len]]);\n}"
        )
        if pair:
            body = (
                "rotate([90, 0, 0]) linear_extrude(height = width, center = true) {\n"
                "    translate([-base[0] / 2, 0]) square(base);\n"
                "    for (s = [0, 1]) mirror([s, 0]) translate([gap / 2, 0]) hook_2d();\n}"
            )
        else:
            body = (
                "rotate([90, 0, 0]) linear_extrude(height = width, center = true) {\n"
                "    translate([-base[0] + arm_t, 0]) square(base);\n    hook_2d();\n}"
            )
        return h.params | {"variant": "snap_pair" if pair else "snap_hook"}, program(h, hook, body)
    h = d.header(d.choice([None, "Panel edge clip"]))
    h("panel_t", d.num(2, 12, 0.5))
    h("wall", d.num(1.5, 3, 0.5))
    h("depth", d.num(8, 25, 1))
    h("width", d.num(8, 30, 1))
    teeth = d.flag(0.5)
    if teeth:
        h("teeth", d.int(2, 5))
    mount = d.flag(0.5)
    if mount:
        h("tab", d.num(8, 15, 1))
        h("hole_d", d.choice([3.2, 3.4, 4.3]))
    h.blank()
    lines = [
        "difference() {",
        "    square([depth + wall, panel_t + 2 * wall]);",
        "    translate([-1, wall]) square([depth + 1, panel_t]);",
        "}",
    ]
    if teeth:
        lines += [
            "// grip teeth",
            "for (i = [0 : teeth - 1])",
            "    translate([depth * (i + 0.5) / teeth, wall - 0.01]) polygon([[-1, 0], [1, 0], [0, 0.8]]);",
        ]
    if mount:
        lines += ["translate([depth, 0]) square([wall, panel_t + 2 * wall + tab]);"]
    shape = "module clip_2d() {\n" + indent("\n".join(lines)) + "\n}"
    body = "linear_extrude(height = width) clip_2d();"
    if mount:
        body = (
            f"difference() {{\n    {body}\n"
            "    translate([depth - 1, panel_t + 2 * wall + tab / 2, width / 2]) rotate([0, 90, 0])\n"
            "        cylinder(d = hole_d, h = wall + 2, $fn = 24);\n}"
        )
    return h.params | {"variant": "edge" + ("_tab" if mount else "")}, program(h, shape, body)
