"""Bent-sheet style parts: L brackets, U / hat-channel brackets and hinges."""

from __future__ import annotations

from corpus.families._common import Draw, indent, program, rnd
from corpus.families.plates import CLEARANCE_HOLES


def l_bracket(d: Draw) -> tuple[dict, str]:
    """An L bracket: two legs with holes or slots, optional gussets and rounded ends."""
    h = d.header(d.choice([None, "L bracket", "Angle bracket"]))
    width = h("width", d.num(12, 60, 2))
    thickness = h("thickness", d.num(2, 6, 0.5))
    base = h("base_length", d.num(max(20, thickness * 5), 70, 5))
    height = h("height", d.num(max(20, thickness * 5), 70, 5))
    hole_d = h("hole_d", d.choice(CLEARANCE_HOLES[:7] if width < 30 else CLEARANCE_HOLES[2:]))
    gusset = d.weighted({"none": 2, "sides": 1, "center": 1}) if min(base, height) >= 25 else "none"
    gusset_t = thickness
    if gusset != "none":
        gusset_t = h("gusset_t", rnd(max(thickness, d.num(2, 5, 0.5)), 0.5))
        h("gusset_size", rnd(thickness + (min(base, height) - thickness) * d.num(0.5, 0.85, 0.05), 1))
    if gusset == "center":
        holes = 2
        ok = width / 4 + hole_d / 2 + 1 < width / 2 - gusset_t / 2
        if not ok:
            gusset = "sides"
    if gusset == "sides":
        free = width - 2 * gusset_t - 2
        holes = max(1, min(3, int(free // (hole_d * 2.5))))
        holes = h("holes", d.int(1, holes))
        hole_y = "gusset_t + (width - 2 * gusset_t) * (i + 0.5) / holes"
    elif gusset == "center":
        hole_y = "width / 4 + i * width / 2"
        holes = 2
        h("holes", 2)
    else:
        holes = h("holes", d.int(1, max(1, min(4, int(width // (hole_d * 2.5))))))
        hole_y = "width * (i + 0.5) / holes"
    slots = d.flag(0.3)
    if slots:
        h("slot_len", d.num(hole_d, min(base, height) / 3, 1))
    round_ends = d.flag(0.6)
    if round_ends:
        h("end_r", rnd(min(width / 2, d.num(3, 15, 1)), 1))
    h("$fn", d.choice([24, 32, 40]))
    h.blank()

    cut = (
        "hull() for (dx = [-slot_len / 2, slot_len / 2]) translate([dx, 0]) circle(d = hole_d);"
        if slots
        else "circle(d = hole_d);"
    )
    outline = (
        "hull() {\n    square([1, width]);\n    translate([length - end_r, end_r]) circle(r = end_r);\n"
        "    translate([length - end_r, width - end_r]) circle(r = end_r);\n}"
        if round_ends
        else "square([length, width]);"
    )
    leg = (
        "module leg(length) {\n    linear_extrude(height = thickness)\n"
        "        difference() {\n" + indent(outline, 3) + "\n"
        "            for (i = [0 : holes - 1])\n"
        f"                translate([thickness + (length - thickness) / 2, {hole_y}]) {cut}\n        }}\n}}"
    )
    parts = ["leg(base_length);", "translate([thickness, 0, 0]) rotate([0, -90, 0]) leg(height);"]
    if gusset != "none":
        ys = "[0, width - gusset_t]" if gusset == "sides" else "[(width - gusset_t) / 2]"
        parts.append(
            f"for (y = {ys})\n    translate([0, y + gusset_t, 0]) rotate([90, 0, 0])\n"
            "        linear_extrude(height = gusset_t) polygon([[0, 0], [gusset_size, 0], [0, "
            "gusset_size]]);"
        )
    body = "union() {\n" + indent("\n".join(parts)) + "\n}"
    return h.params | {"variant": f"gusset_{gusset}" + ("_slots" if slots else "")}, program(h, leg, body)


def u_bracket(d: Draw) -> tuple[dict, str]:
    """A U bracket (or hat channel): base with holes, two walls with a cross hole, optional flanges."""
    h = d.header(d.choice([None, "U bracket", "Channel bracket"]))
    inner = h("inner_width", d.num(15, 70, 1))
    height = h("height", d.num(12, 50, 1))
    depth = h("depth", d.num(12, 50, 2))
    h("thickness", d.num(2, 5, 0.5))
    flange = h("flange", d.num(8, 20, 1) if d.flag(0.45) else 0)
    flange_side = "top" if flange and d.flag(0.6) else "bottom"
    h("hole_d", d.choice(CLEARANCE_HOLES[:6] if depth < 25 else CLEARANCE_HOLES))
    base_holes = h("base_holes", d.int(0, 2) if inner > 20 else d.int(0, 1))
    if base_holes == 2:
        h("base_hole_pitch", rnd(inner * d.num(0.4, 0.6, 0.05), 1))
    cross = d.flag(0.6)
    if cross:
        h("axle_d", rnd(min(height * 0.5, depth * 0.6, d.num(3, 12, 0.5)), 0.5))
        h("axle_z", rnd(height - max(height * 0.35, 4), 0.5))
    h("$fn", d.choice([24, 32]))
    h.blank()

    lines = [
        "translate([-inner_width / 2 - thickness, 0]) square([inner_width + 2 * thickness, thickness]);",
        "for (s = [0, 1]) mirror([s, 0]) {",
        "    translate([inner_width / 2, 0]) square([thickness, height]);",
    ]
    if flange and flange_side == "top":
        lines.append(
            "    translate([inner_width / 2, height - thickness]) square([thickness + flange, thickness]);"
        )
    elif flange:
        lines.append("    translate([inner_width / 2, 0]) square([thickness + flange, thickness]);")
    lines.append("}")
    profile = "module profile() {\n" + indent("\n".join(lines)) + "\n}"
    cuts = []
    if base_holes == 1:
        cuts.append("translate([0, 0, -1]) cylinder(d = hole_d, h = thickness + 2);")
    elif base_holes == 2:
        cuts.append(
            "for (x = [-1, 1]) translate([x * base_hole_pitch / 2, 0, -1]) cylinder(d = hole_d, h = "
            "thickness + 2);"
        )
    if cross:
        cuts.append(
            "translate([0, 0, axle_z]) rotate([0, 90, 0])\n"
            "    cylinder(d = axle_d, h = inner_width + 2 * thickness + 2, center = true);"
        )
    if flange:
        z = "height - thickness - 1" if flange_side == "top" else "-1"
        cuts.append(
            "for (s = [-1, 1])\n"
            f"    translate([s * (inner_width / 2 + thickness + flange / 2), 0, {z}]) cylinder(d = hole_d, "
            "h = thickness + 2);"
        )
    extrude = "rotate([90, 0, 0]) linear_extrude(height = depth, center = true) profile();"
    body = "difference() {\n" + indent(extrude) + "\n" + indent("\n".join(cuts)) + "\n}" if cuts else extrude
    variant = f"flange_{flange_side}" if flange else "plain"
    return h.params | {"variant": variant}, program(h, profile, body)


def hinge(d: Draw) -> tuple[dict, str]:
    """A butt hinge laid open: two leaves with interleaved knuckles, a pin and screw holes."""
    h = d.header(d.choice([None, "Butt hinge", "Print-in-place hinge"]))
    length = d.num(20, 70, 5)
    thickness = d.num(1.5, 4, 0.5)
    pin_d = d.num(2, 5, 0.5)
    knuckle_d = rnd(max(pin_d + 2 * thickness, d.num(pin_d + 3, pin_d + 6, 0.5)), 0.5)
    hole_d = d.choice(CLEARANCE_HOLES[:5])
    h("length", length)
    h("leaf_w", max(d.num(12, 35, 1), rnd(knuckle_d / 2 + 2 * hole_d + 3, 1)))
    h("thickness", thickness)
    h("pin_d", pin_d)
    h("knuckle_d", knuckle_d)
    h("knuckles", d.choice([3, 5] if length < 50 else [3, 5, 7]))
    h("gap", d.choice([0.3, 0.4, 0.5]))
    h("hole_d", hole_d)
    h("holes", d.int(1, 3) if length >= 30 else 1)
    with_pin = h("with_pin", d.flag(0.4))
    h("$fn", d.choice([16, 20, 24]))
    h.blank()

    leaf = (
        "seg = length / knuckles;\n\n"
        "// cross-section of one leaf: plate plus knuckle, minus the pin hole\nmodule section_2d() {\n"
        "    difference() {\n        union() {\n            square([leaf_w, thickness]);\n"
        "            translate([0, knuckle_d / 2]) circle(d = knuckle_d);\n        }\n"
        "        translate([0, knuckle_d / 2]) circle(d = pin_d);\n    }\n}\n\n"
        "// seen from above: room for the other leaf's knuckles, and the screw holes\n"
        "module cuts_2d(first) {\n    for (i = [1 - first : 2 : knuckles - 1])\n"
        "        translate([i * seg - gap / 2, -knuckle_d]) square([seg + gap, knuckle_d * 1.5 + gap]);\n"
        "    for (i = [0 : holes - 1])\n"
        "        translate([length * (i + 0.5) / holes, knuckle_d / 2 + (leaf_w - knuckle_d / 2) / 2]) "
        "circle(d = hole_d);\n}\n\nmodule leaf(first) {\n    difference() {\n"
        "        rotate([90, 0, 90]) linear_extrude(height = length) section_2d();\n"
        "        translate([0, 0, -1]) linear_extrude(height = knuckle_d + 2) cuts_2d(first);\n    }\n}"
    )
    body = (
        "leaf(0);\nmirror([0, 1, 0]) leaf(1);\nif (with_pin)\n"
        "    translate([0, 0, knuckle_d / 2]) rotate([0, 90, 0]) cylinder(d = pin_d - 2 * gap, h = "
        "length);"
    )
    return h.params | {"variant": "pin" if with_pin else "no_pin"}, program(h, leaf, body)
