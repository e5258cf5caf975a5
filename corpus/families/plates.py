"""Flat parts: mounting plates with hole patterns, flanges, washers and spacers."""

from __future__ import annotations

import math

from corpus.families._common import Draw, indent, program, rnd

# ISO 7089 washers: size -> (inner d, outer d, thickness)
METRIC_WASHERS = {
    "M3": (3.2, 7.0, 0.5),
    "M4": (4.3, 9.0, 0.8),
    "M5": (5.3, 10.0, 1.0),
    "M6": (6.4, 12.0, 1.6),
    "M8": (8.4, 16.0, 1.6),
    "M10": (10.5, 20.0, 2.0),
    "M12": (13.0, 24.0, 2.5),
}

CLEARANCE_HOLES = (2.4, 3.2, 3.4, 4.3, 4.5, 5.3, 5.5, 6.4, 6.6)


def plate(d: Draw) -> tuple[dict, str]:
    """A rectangular mounting plate with one or two hole patterns and optional extras."""
    pattern = d.choice(["corners", "grid", "perimeter", "circle", "list", "vent"])
    h = d.header(d.choice([None, "Mounting plate", f"Plate, {pattern} holes"]))
    length = h("length", d.num(40, 160, 5))
    width = h("width", d.num(30, min(120, length), 5))
    thickness = h("thickness", d.num(2, 8, 0.5))
    rounded = d.flag(0.7)
    corner_r = h("corner_r", d.num(2, min(12, width / 5), 0.5)) if rounded else 0
    hole_d = h("hole_d", d.choice(CLEARANCE_HOLES))
    inset = h("inset", rnd(max(hole_d * 1.5, corner_r, d.num(4, 10, 0.5)), 0.5))
    h("$fn", d.choice([24, 32, 48]))
    h.blank()

    holes_2d: list[str] = []
    extras_3d: list[str] = []
    corner_holes = (
        "for (x = [inset, length - inset], y = [inset, width - inset])\n"
        "    translate([x, y]) circle(d = hole_d);"
    )
    inner = (inset * 2 + hole_d, length - inset * 2 - hole_d, width - inset * 2 - hole_d)
    if pattern in ("corners", "grid", "circle", "vent"):
        holes_2d.append(corner_holes)
    if pattern == "grid":
        nx = h("grid_x", d.int(2, max(2, min(8, int(inner[1] // 10) + 1))))
        ny = h("grid_y", d.int(2, max(2, min(6, int(inner[2] // 10) + 1))))
        pitch = h(
            "pitch",
            rnd(
                min((inner[1] - 2) / max(nx - 1, 1), (inner[2] - 2) / max(ny - 1, 1), d.num(8, 20, 0.5)), 0.5
            ),
        )
        h("grid_hole_d", rnd(min(pitch * 0.6, d.num(2.5, 8, 0.5)), 0.5))
        holes_2d.append(
            "translate([length / 2 - (grid_x - 1) * pitch / 2, width / 2 - (grid_y - 1) * pitch / 2])\n"
            "    for (i = [0 : grid_x - 1], j = [0 : grid_y - 1])\n"
            "        translate([i * pitch, j * pitch]) circle(d = grid_hole_d);"
        )
    elif pattern == "vent":
        slot_w = h("slot_w", d.num(2, 5, 0.5))
        span = inner[1] - 4
        count = h("slots", d.int(3, max(3, min(14, int(span // (slot_w * 2.2))))))
        h("slot_pitch", rnd(min(span / count, slot_w * d.num(1.8, 3, 0.1)), 0.1))
        h("slot_len", rnd(inner[2] - d.num(0, inner[2] * 0.3, 1), 0.5))
        holes_2d.append(
            "for (i = [0 : slots - 1])\n"
            "    translate([length / 2 + (i - (slots - 1) / 2) * slot_pitch, width / 2])\n"
            "        hull() for (s = [-1, 1]) translate([0, s * (slot_len - slot_w) / 2]) circle(d = "
            "slot_w);"
        )
    elif pattern == "perimeter":
        nx = h("holes_x", d.int(2, max(2, min(8, int(length // 15)))))
        ny = h("holes_y", d.int(2, max(2, min(6, int(width // 15)))))
        holes_2d.append(
            "for (i = [0 : holes_x - 1], y = [inset, width - inset])\n"
            "    translate([inset + i * (length - 2 * inset) / (holes_x - 1), y]) circle(d = hole_d);\n"
            "for (j = [1 : holes_y - 2], x = [inset, length - inset])\n"
            "    translate([x, inset + j * (width - 2 * inset) / (holes_y - 1)]) circle(d = hole_d);"
            if ny > 2
            else "for (i = [0 : holes_x - 1], y = [inset, width - inset])\n"
            "    translate([inset + i * (length - 2 * inset) / (holes_x - 1), y]) circle(d = hole_d);"
        )
    elif pattern == "circle":
        space = min(inner[1], inner[2])
        bore = h("center_d", rnd(space * d.num(0.25, 0.45, 0.05), 0.5))
        h("bolt_circle_d", rnd(bore + (space - bore) * d.num(0.4, 0.7, 0.05), 0.5))
        h("bolts", d.choice([3, 4, 4, 6, 8]))
        h("bolt_d", rnd(min(d.choice(CLEARANCE_HOLES), (space - bore) / 4), 0.1))
        holes_2d.append(
            "translate([length / 2, width / 2]) {\n    circle(d = center_d);\n"
            "    for (i = [0 : bolts - 1])\n"
            "        rotate(i * 360 / bolts) translate([bolt_circle_d / 2, 0]) circle(d = bolt_d);\n}"
        )
    elif pattern == "list":
        count = d.int(4, 14)
        pts = []
        for _ in range(count * 3):
            dia = d.choice(CLEARANCE_HOLES + (8.0, 10.0, 12.0))
            x = d.num(inset, length - inset, 0.5)
            y = d.num(inset, width - inset, 0.5)
            if x - dia / 2 < 2 or x + dia / 2 > length - 2 or y - dia / 2 < 2 or y + dia / 2 > width - 2:
                continue
            if all(math.dist((x, y), (p[0], p[1])) > (dia + p[2]) / 2 + 2 for p in pts):
                pts.append([x, y, dia])
            if len(pts) == count:
                break
        h("holes", pts, "[x, y, d]")
        holes_2d.append("for (p = holes) translate([p[0], p[1]]) circle(d = p[2]);")

    if pattern in ("corners", "perimeter") and d.flag(0.4) and width >= 30:
        h("cutout", [rnd(inner[1] * d.num(0.3, 0.7, 0.05), 1), rnd(inner[2] * d.num(0.3, 0.7, 0.05), 1)])
        h("cutout_r", d.num(1, 5, 0.5))
        holes_2d.append(
            "translate([length / 2, width / 2])\n"
            "    offset(r = cutout_r) square(cutout - 2 * [cutout_r, cutout_r], center = true);"
        )
    if pattern == "corners" and d.flag(0.5) and thickness >= hole_d / 2 + 1:
        extras_3d.append(
            "// countersinks\nfor (x = [inset, length - inset], y = [inset, width - inset])\n"
            "    translate([x, y, thickness - hole_d / 2]) cylinder(h = hole_d / 2 + 1, d1 = hole_d, d2 = "
            "2 * hole_d + 2, $fn = 24);"
        )

    if rounded:
        outline = (
            "module outline() {\n"
            "    offset(r = corner_r) offset(delta = -corner_r) square([length, width]);\n}"
            if d.flag()
            else "module outline() {\n    hull() for (x = [corner_r, length - corner_r], y = [corner_r, "
            "width - corner_r])\n        translate([x, y]) circle(r = corner_r);\n}"
        )
    else:
        outline = "module outline() {\n    square([length, width]);\n}"
    body = (
        "linear_extrude(height = thickness)\n    difference() {\n        outline();\n"
        + indent("\n".join(holes_2d), 2)
        + "\n    }"
    )
    if extras_3d:
        body = "difference() {\n" + indent(body) + "\n" + indent("\n".join(extras_3d)) + "\n}"
    return h.params | {"variant": pattern}, program(h, outline, body)


def flange(d: Draw) -> tuple[dict, str]:
    """A round or square flange with a hub, a bore and a bolt pattern."""
    shape = d.weighted({"round": 3, "square": 1})
    style = d.choice(["extrude", "profile"]) if shape == "round" else "extrude"
    h = d.header(d.choice([None, "Flange", "Shaft flange" if d.flag() else "Pipe flange"]))
    size = d.num(36, 120, 2)
    bore = d.num(6, size * 0.35, 1)
    hub_d = rnd(bore + d.num(6, max(6, size * 0.25), 1), 1)
    if shape == "round":
        outer_d = h("outer_d", size)
    else:
        side = h("side", size)
        h("corner_r", d.num(2, size / 8, 0.5))
    thickness = h("thickness", d.num(4, 12, 0.5))
    h("bore_d", bore)
    h("hub_d", hub_d)
    h("hub_h", d.num(4, 25, 1))
    bolt_d = h("bolt_d", d.choice(CLEARANCE_HOLES[2:] if size > 60 else CLEARANCE_HOLES[:6]))
    if shape == "round":
        bolts = h("bolt_count", d.choice([3, 4, 4, 5, 6, 6, 8]))
        lo, hi = hub_d + bolt_d + 3, outer_d - bolt_d * 2 - 2
        h("bolt_circle_d", rnd(max(lo, lo + (hi - lo) * d.num(0.2, 0.8, 0.1)), 1))
    else:
        bolts = 4
        h("bolt_spacing", rnd(max(hub_d + bolt_d + 4, side - bolt_d * 2 - d.num(2, 8, 1)), 1))
    keyway = d.flag(0.3) and bore >= 8
    if keyway:
        h("key_w", rnd(max(2, bore / 4), 1))
        h("key_depth", rnd(max(1, bore / 8), 0.5))
    counterbore = d.flag(0.3) and shape == "round" and thickness >= 5 and bolts <= 6
    if counterbore:
        h("cb_d", rnd(bolt_d * 1.8, 0.5))
        h("cb_depth", rnd(thickness * d.num(0.3, 0.5, 0.1), 0.5))
    if style == "profile":
        h("chamfer", d.num(0.5, 2, 0.5))
    h("$fn", d.choice([32, 40, 48]))
    h.blank()

    if shape == "round":
        holes = (
            "module bolt_holes() {\n    for (i = [0 : bolt_count - 1])\n"
            "        rotate(i * 360 / bolt_count) translate([bolt_circle_d / 2, 0]) circle(d = bolt_d, "
            "$fn = 24);\n}"
        )
        plate_2d = "circle(d = outer_d)"
    else:
        holes = (
            "module bolt_holes() {\n    for (x = [-1, 1], y = [-1, 1])\n"
            "        translate([x, y] * bolt_spacing / 2) circle(d = bolt_d, $fn = 24);\n}"
        )
        plate_2d = "offset(r = corner_r) square(side - 2 * corner_r, center = true)"
    bore_cut = (
        "translate([0, 0, -1]) linear_extrude(height = thickness + hub_h + 2) {\n    circle(d = bore_d);\n"
        "    translate([-key_w / 2, 0]) square([key_w, bore_d / 2 + key_depth]);\n}"
        if keyway
        else "translate([0, 0, -1]) cylinder(d = bore_d, h = thickness + hub_h + 2);"
    )
    cuts = [bore_cut]
    if counterbore:
        cuts.append(
            "// counterbores\n"
            "translate([0, 0, thickness - cb_depth]) linear_extrude(height = cb_depth + 1)\n"
            "    for (i = [0 : bolt_count - 1]) rotate(i * 360 / bolt_count) translate([bolt_circle_d / "
            "2, 0]) circle(d = cb_d);"
        )
    if style == "extrude":
        solid = (
            f"union() {{\n    linear_extrude(height = thickness) difference() {{\n        {plate_2d};\n"
            "        bolt_holes();\n    }\n"
            "    translate([0, 0, thickness - 0.01]) cylinder(d = hub_d, h = hub_h + 0.01);\n}"
        )
        body = "difference() {\n" + indent(solid) + "\n" + indent("\n".join(cuts)) + "\n}"
        return h.params | {"variant": f"{shape}"}, program(h, holes, body)
    profile = (
        "module profile() {\n    polygon([\n"
        "        [bore_d / 2, 0], [outer_d / 2 - chamfer, 0], [outer_d / 2, chamfer],\n"
        "        [outer_d / 2, thickness], [hub_d / 2, thickness],\n"
        "        [hub_d / 2, thickness + hub_h - chamfer], [hub_d / 2 - chamfer, thickness + hub_h],\n"
        "        [bore_d / 2, thickness + hub_h]\n    ]);\n}"
    )
    if d.flag():
        holes_3d = "translate([0, 0, -1]) linear_extrude(height = thickness + 2) bolt_holes();"
    else:
        holes = ""
        holes_3d = (
            "for (i = [0 : bolt_count - 1])\n    rotate([0, 0, i * 360 / bolt_count])\n"
            "        translate([bolt_circle_d / 2, 0, -1]) cylinder(d = bolt_d, h = thickness + 2, $fn = "
            "20);"
        )
    cuts = [holes_3d] + cuts[1:]
    if keyway:
        cuts.append(
            "translate([-key_w / 2, 0, -1]) cube([key_w, bore_d / 2 + key_depth, thickness + hub_h + 2]);"
        )
    body = "difference() {\n    rotate_extrude() profile();\n" + indent("\n".join(cuts)) + "\n}"
    return h.params | {"variant": "round_profile"}, program(h, profile, holes, body)


def washer(d: Draw) -> tuple[dict, str]:
    """Washers, spacers, shoulder bushings and shims: the smallest programs of the corpus."""
    kind = d.weighted({"flat": 3, "spacer": 3, "shoulder": 2, "chamfered": 1, "shim": 1, "set": 1})
    size = d.choice(list(METRIC_WASHERS))
    inner, outer, thick = METRIC_WASHERS[size]
    if kind == "flat":
        h = d.header(d.choice([f"{size} washer", None]) if d.flag(0.6) else None)
        fender = d.flag(0.3)
        h("inner_d", inner)
        h("outer_d", rnd(inner * 3, 1) if fender else outer)
        h("thickness", thick if d.flag(0.5) else d.num(0.5, 3, 0.5))
        style = d.choice(["cylinders", "extrude", "rotate"])
        if style == "cylinders":
            body = (
                "difference() {\n    cylinder(d = outer_d, h = thickness, $fn = 48);\n"
                "    translate([0, 0, -1]) cylinder(d = inner_d, h = thickness + 2, $fn = 32);\n}"
            )
        elif style == "extrude":
            h("$fn", 48)
            body = (
                "linear_extrude(height = thickness)\n    difference() {\n        circle(d = outer_d);\n"
                "        circle(d = inner_d);\n    }"
            )
        else:
            h("$fn", 48)
            body = (
                "rotate_extrude()\n"
                "    translate([inner_d / 2, 0]) square([(outer_d - inner_d) / 2, thickness]);"
            )
        return h.params | {"variant": f"flat_{style}", "size": size}, program(h, body)
    if kind == "spacer":
        h = d.header(d.choice([None, "Spacer", f"{size} spacer"]))
        h("inner_d", inner)
        h("outer_d", rnd(inner * d.num(1.5, 2.6, 0.1), 0.5))
        h("length", d.num(2, 30, 1))
        if d.flag(0.5):
            body = (
                "difference() {\n    cylinder(d = outer_d, h = length, $fn = 48);\n"
                "    translate([0, 0, -1]) cylinder(d = inner_d, h = length + 2, $fn = 32);\n}"
            )
        else:
            h("sides", 6, "hex spacer")
            body = (
                "difference() {\n    cylinder(d = outer_d / cos(180 / sides), h = length, $fn = sides);\n"
                "    translate([0, 0, -1]) cylinder(d = inner_d, h = length + 2, $fn = 32);\n}"
            )
        return h.params | {"variant": "spacer", "size": size}, program(h, body)
    if kind == "shoulder":
        h = d.header(d.choice([None, "Shoulder bushing", "Flanged bushing"]))
        h("bore_d", inner)
        body_d = h("body_d", rnd(inner + d.num(2, 6, 0.5), 0.5))
        h("body_h", d.num(3, 20, 0.5))
        h("flange_d", rnd(body_d + d.num(3, 10, 0.5), 0.5))
        h("flange_h", d.num(1, 4, 0.5))
        h("$fn", d.choice([32, 48, 64]))
        body = (
            "rotate_extrude()\n    polygon([\n"
            "        [bore_d / 2, 0], [flange_d / 2, 0], [flange_d / 2, flange_h],\n"
            "        [body_d / 2, flange_h], [body_d / 2, flange_h + body_h], [bore_d / 2, flange_h + "
            "body_h]\n    ]);"
        )
        return h.params | {"variant": "shoulder", "size": size}, program(h, body)
    if kind == "chamfered":
        h = d.header("Chamfered spacer" if d.flag() else None)
        h("inner_d", inner)
        outer_d = h("outer_d", rnd(inner * d.num(1.8, 2.8, 0.1), 0.5))
        length = h("length", d.num(4, 25, 1))
        h("chamfer", max(0.5, rnd(min(length / 4, (outer_d - inner) / 5, d.num(0.5, 2, 0.5)), 0.5)))
        h("$fn", 48)
        body = (
            "rotate_extrude()\n    polygon([\n"
            "        [inner_d / 2, 0], [outer_d / 2 - chamfer, 0], [outer_d / 2, chamfer],\n"
            "        [outer_d / 2, length - chamfer], [outer_d / 2 - chamfer, length], [inner_d / 2, "
            "length]\n    ]);"
        )
        return h.params | {"variant": "chamfered", "size": size}, program(h, body)
    if kind == "shim":
        h = d.header("Slotted shim" if d.flag() else None)
        width = h("width", rnd(outer * d.num(2, 4, 0.5), 1))
        h("height", rnd(width * d.num(1, 1.4, 0.1), 1))
        h("thickness", d.choice([0.5, 1, 1.5, 2]))
        h("slot_w", inner)
        h("corner_r", d.num(1, 3, 0.5))
        h("$fn", 32)
        body = (
            "linear_extrude(height = thickness)\n    difference() {\n"
            "        offset(r = corner_r) offset(delta = -corner_r) square([width, height]);\n"
            "        hull() {\n            translate([width / 2, height / 2]) circle(d = slot_w);\n"
            "            translate([width / 2 - slot_w / 2, height]) square([slot_w, 1]);\n        }\n"
            "    }"
        )
        return h.params | {"variant": "shim", "size": size}, program(h, body)
    h = d.header(d.choice([None, f"{size} washers, print plate"]))
    h("inner_d", inner)
    h("outer_d", outer)
    h("thickness", d.num(1, 3, 0.5))
    h("count", d.int(2, 8))
    h("columns", d.int(2, 4))
    h("gap", d.num(2, 5, 1))
    h("$fn", 40)
    module = (
        "module washer_2d() {\n    difference() {\n        circle(d = outer_d);\n"
        "        circle(d = inner_d);\n    }\n}"
    )
    body = (
        "linear_extrude(height = thickness)\n    for (i = [0 : count - 1])\n"
        "        translate([(i % columns) * (outer_d + gap), floor(i / columns) * (outer_d + gap)]) "
        "washer_2d();"
    )
    return h.params | {"variant": "set", "size": size}, program(h, module, body)
