"""Boxes: rounded blocks and trays (hull / minkowski) and project enclosures with lids."""

from __future__ import annotations

from corpus.families._common import Draw, indent, program, rnd


def rounded_box(d: Draw) -> tuple[dict, str]:
    """Rounded blocks (minkowski), open trays with dividers (2-D hull / offset) and soft-top covers."""
    kind = d.weighted({"block": 2, "tray": 4, "minkowski": 2, "soft_top": 2})
    h = d.header(
        d.choice([None, {"tray": "Storage tray", "block": "Rounded block"}.get(kind, "Rounded box")])
    )
    size = [d.num(20, 100, 5), d.num(20, 80, 5), d.num(8, 50, 1)]
    size[1] = min(size[1], size[0])
    h("size", size)
    r = h("r", rnd(min(min(size) / 3, d.num(1.5, 10, 0.5)), 0.5))
    hollow = kind == "tray" or (kind in ("minkowski", "soft_top") and d.flag(0.5))
    if hollow:
        wall = d.num(1.2, 3, 0.2)
        if kind != "tray":  # a square cavity must stay inside the rounded corners
            wall = max(wall, rnd(r / 3 + 0.1, 0.1))
        h("wall", wall)
        h("floor_t", d.num(1, 3, 0.5))
    dividers, notch = 1, False
    if kind == "tray":
        dividers = d.weighted({1: 3, 2: 1, 3: 1, 4: 1}) if size[0] >= 40 else 1
        if dividers > 1:
            h("dividers", dividers)
            h("divider_h", rnd(size[2] - 2 if size[2] > 12 else size[2], 0.5))
        notch = d.flag(0.35) and size[2] >= 12
        if notch:
            h("notch_d", 20, "finger notch")
    h("$fn", d.choice([16, 20, 24]) if kind != "tray" else d.choice([32, 48]))
    h.blank()
    if kind == "block":
        body = (
            "translate([r, r, r])\n    minkowski() {\n        cube(size - 2 * [r, r, r]);\n"
            "        sphere(r = r);\n    }"
        )
        return h.params | {"variant": "block"}, program(h, body)
    if kind in ("minkowski", "soft_top"):
        if kind == "minkowski":
            outer = (
                "translate([r, r, r]) minkowski() {\n    cube(size - 2 * [r, r, r]);\n    sphere(r = r);\n}"
            )
        else:
            outer = (
                "// rounded top edges, flat bottom\ndifference() {\n"
                "    translate([r, r, 0]) minkowski() {\n"
                "        cube([size.x - 2 * r, size.y - 2 * r, size.z - r]);\n        sphere(r = r);\n"
                "    }\n    translate([-1, -1, -r - 1]) cube([size.x + 2, size.y + 2, r + 1]);\n}"
            )
        if hollow:
            if kind == "soft_top" and d.flag():
                cavity = (
                    "translate([wall, wall, -1]) cube([size.x - 2 * wall, size.y - 2 * wall, size.z - "
                    "floor_t + 1]);"
                )
            else:
                cavity = (
                    "translate([wall, wall, floor_t]) cube([size.x - 2 * wall, size.y - 2 * wall, size.z]);"
                )
            if kind == "soft_top":  # one difference does both cuts
                body = outer.replace(
                    "    translate([-1, -1, -r - 1])", "    " + cavity + "\n    translate([-1, -1, -r - 1])"
                )
            else:
                body = "difference() {\n" + indent(outer) + "\n    " + cavity + "\n}"
        else:
            body = outer
        variant = kind + ("_hollow" if hollow else "")
        return h.params | {"variant": variant}, program(h, body)
    # tray
    if d.flag():
        module = (
            "module rounded_rect(s, r) {\n"
            "    hull() for (x = [r, s.x - r], y = [r, s.y - r]) translate([x, y]) circle(r = r);\n}"
        )
    else:
        module = "module rounded_rect(s, r) {\n    offset(r = r) offset(delta = -r) square([s.x, s.y]);\n}"
    cuts = [
        "translate([wall, wall, floor_t])\n"
        "    linear_extrude(height = size.z) rounded_rect(size - [2 * wall, 2 * wall], max(r - wall, "
        "0.5));"
    ]
    if notch:
        cuts.append(
            "translate([size.x / 2, -1, size.z]) rotate([-90, 0, 0]) cylinder(d = notch_d, h = wall + 2);"
        )
    body = (
        "difference() {\n    linear_extrude(height = size.z) rounded_rect(size, r);\n"
        + indent("\n".join(cuts))
        + "\n}"
    )
    if dividers > 1:
        body += (
            "\n\nlinear_extrude(height = divider_h)\n"
            "    for (i = [1 : dividers - 1]) translate([i * size.x / dividers - wall / 2, 0]) "
            "square([wall, size.y]);"
        )
    return h.params | {"variant": f"tray_{dividers}"}, program(h, module, body)


def enclosure(d: Draw) -> tuple[dict, str]:
    """A project box with screw posts and an optional lid, vents, ports, PCB posts, ears and more.

    Some programs carry only the features in use; others ("configurable" ones, as on
    Thingiverse) carry every feature's parameters and code behind ``with_*`` flags.
    """
    configurable = d.flag(0.35)
    h = d.header(d.choice([None, "Project enclosure", "Electronics box with screw-down lid", "Enclosure"]))
    inner = [d.num(40, 120, 5), d.num(30, 80, 5), d.num(15, 45, 1)]
    inner[1] = min(inner[1], inner[0])
    show = d.weighted({"both": 2, "box": 3, "lid": 1})
    has_box, has_lid = show != "lid", show != "box"
    on = {
        "lid_vents": has_lid and d.flag(0.5),
        "side_vents": has_box and d.flag(0.35),
        "pcb_posts": has_box and d.flag(0.3) and inner[2] >= 20,
        "ears": has_box and d.flag(0.3),
        "feet": has_box and d.flag(0.2),
    }
    on["card_guides"] = has_box and not on["pcb_posts"] and d.flag(0.2)
    on["keyholes"] = has_box and not on["ears"] and d.flag(0.2)
    on["label"] = has_lid and not on["lid_vents"] and d.flag(0.3)
    on["battery_bay"] = (
        has_box
        and not on["pcb_posts"]
        and not on["card_guides"]
        and d.flag(0.2)
        and inner[0] >= 70
        and inner[1] >= 45
    )
    # each of these costs a CGAL operation on the whole box: at most two at once
    heavy = [k for k in ("side_vents", "pcb_posts", "feet", "battery_bay") if on[k]]
    for k in heavy[2:]:
        on[k] = False
    # a feature's parameters and code are written when it is on, or always in a configurable program
    emit = {k: v or configurable for k, v in on.items()}

    h("inner", inner, "inside length, width, height")
    wall = h("wall", d.num(1.6, 3, 0.2))
    h("floor_t", d.num(1.5, 3, 0.5))
    h("corner_r", rnd(wall + d.num(1, 5, 0.5), 0.5))
    post_d = h("post_d", d.num(6, 9, 0.5))
    h("screw_d", d.choice([2.5, 2.5, 2.9, 3.3]), "pilot hole")
    if configurable:
        h.blank()
        h("show_box", has_box)
        h("show_lid", has_lid)
        for name in on:
            h(f"with_{name}", on[name])
        h.blank()
    if has_lid or configurable:
        h("lid_t", d.num(1.5, 3, 0.5))
        h("lip_h", d.num(0, 3, 0.5))
        h("tol", d.choice([0.2, 0.3, 0.4]))
        h("lid_screw_d", d.choice([3.2, 3.4]))
    if emit["lid_vents"] or emit["side_vents"]:
        h("vent_w", d.num(1.5, 3, 0.5))
        span = inner[0] - 2 * post_d - 6
        h("vents", d.int(3, max(3, min(12, int(span // (h.params["vent_w"] * 2.5))))))
        h("vent_pitch", rnd(min(span / h.params["vents"], h.params["vent_w"] * d.num(2, 3, 0.5)), 0.5))
        tall = inner[1] if (on["lid_vents"] or not on["side_vents"]) else inner[2]
        h("vent_len", rnd(min(tall, inner[2]) * d.num(0.3, 0.6, 0.05), 1))
    ports = _ports(d, inner, post_d) if has_box else []
    if on["side_vents"]:  # the vents take the front and back walls
        ports = [p for p in ports if p[0] in ("left", "right")]
    if ports or configurable:
        h(
            "ports",
            [[p[0], p[1], p[2], p[3], p[4]] if p[5] == "rect" else [p[0], p[1], p[2], p[3]] for p in ports],
            "[side, x, z, w, h] or [side, x, z, d]",
        )
    if emit["pcb_posts"]:
        pw, pl = rnd(inner[0] * d.num(0.5, 0.8, 0.05), 1), rnd(inner[1] * d.num(0.5, 0.8, 0.05), 1)
        h(
            "pcb_holes",
            [[rnd(x * (pw / 2 - 3), 0.5), rnd(y * (pl / 2 - 3), 0.5)] for x in (-1, 1) for y in (-1, 1)],
        )
        h("pcb_post_h", d.num(3, 8, 0.5))
    if emit["ears"]:
        h("ear", d.num(8, 14, 1))
        h("ear_hole_d", d.choice([3.4, 4.5]))
    if emit["card_guides"]:  # card guides on the end walls hold a PCB upright
        h(
            "card_y",
            sorted(
                {
                    d.num(-inner[1] / 2 + post_d + 4, inner[1] / 2 - post_d - 4, 0.5)
                    for _ in range(d.int(1, 3))
                }
            ),
        )
        h("card_t", d.choice([1.6, 1.6, 2]))
        h("rib", d.num(1.5, 2.5, 0.5))
    if emit["keyholes"]:
        h("keyhole_pitch", rnd(inner[0] * d.num(0.4, 0.6, 0.05), 1), "wall-mount keyholes")
    if emit["feet"]:
        h("foot_d", d.num(6, 10, 1))
        h("foot_h", d.num(1, 3, 0.5))
    if emit["label"]:
        h(
            "label",
            [rnd(inner[0] * d.num(0.4, 0.7, 0.05), 1), rnd(inner[1] * d.num(0.3, 0.5, 0.05), 1)],
            "recess on the lid",
        )
        h("label_depth", d.choice([0.4, 0.6, 0.8]))
    if emit["battery_bay"]:
        h("bay", [d.choice([30, 33, 52]), d.choice([16, 31])], "battery bay, inside size")
        h("bay_h", rnd(min(inner[2] - 2, d.num(8, 16, 1)), 1))
    h("$fn", d.choice([16, 20]))
    h.blank()

    def gated(name: str, code: str) -> str:
        """``code`` behind its feature flag in a configurable program."""
        if not configurable:
            return code
        comment = ""
        if code.startswith("//"):
            comment, code = code.split("\n", 1)
            comment += "\n"
        return f"{comment}if (with_{name}) " + (code if "\n" not in code else "{\n" + indent(code) + "\n}")

    blocks = [
        "outer = [inner.x + 2 * wall, inner.y + 2 * wall, inner.z + floor_t];\n"
        "post_at = [for (x = [-1, 1], y = [-1, 1]) [x * (inner.x - post_d + wall) / 2, y * (inner.y - "
        "post_d + wall) / 2]];",
        "module rounded_rect(size, r) {\n"
        "    offset(r = r) offset(delta = -r) square([size.x, size.y], center = true);\n}",
    ]
    box_cuts = []
    if emit["side_vents"] and has_box:
        box_cuts.append(
            gated(
                "side_vents",
                "// side vents\nfor (y = [-1, 1])\n"
                "    translate([0, y * (outer.y - wall) / 2, floor_t + inner.z / 2]) rotate([90, 0, 0])\n"
                "        linear_extrude(height = wall + 2, center = true)\n"
                "            for (i = [0 : vents - 1])\n"
                "                translate([(i - (vents - 1) / 2) * vent_pitch, 0]) square([vent_w, "
                "vent_len], center = true);",
            )
        )
    if ports or (configurable and has_box):
        blocks.append(
            "function side_frame(side) =\n"
            '    side == "front" ? [0, -outer.y / 2, 0] : side == "back" ? [0, outer.y / 2, 180] :\n'
            '    side == "left" ? [-outer.x / 2, 0, -90] : [outer.x / 2, 0, 90];\n\n'
            "module port(p) {\n    f = side_frame(p[0]);\n"
            "    translate([f[0], f[1], 0]) rotate([0, 0, f[2]]) translate([p[1], 0, floor_t + p[2]])\n"
            "        if (len(p) == 5) cube([p[3], 2 * wall + 2, p[4]], center = true);\n"
            "        else rotate([90, 0, 0]) cylinder(d = p[3], h = 2 * wall + 2, center = true);\n}"
        )
        box_cuts.append("for (p = ports) port(p);")
    guides = emit["card_guides"] and has_box
    shell = (
        "// walls and screw posts\nlinear_extrude(height = outer.z) {\n    difference() {\n"
        "        rounded_rect(outer, corner_r);\n        rounded_rect(inner, corner_r - wall);\n    }\n"
        "    for (p = post_at) translate(p) difference() {\n        circle(d = post_d);\n"
        "        circle(d = screw_d);\n"
        "    }\n" + (indent(gated("card_guides", "card_guides();")) + "\n" if guides else "") + "}"
    )
    if guides:
        blocks.append(
            "// pairs of ribs on both end walls, one pair per card\nmodule card_guides() {\n"
            "    for (y = card_y, s = [-1, 1], side = [-1, 1])\n"
            "        translate([s * (inner.x / 2 - rib / 2 + 0.5), y + side * (card_t + rib) / 2])\n"
            "            square([rib + 1, rib], center = true);\n}"
        )
    floor_2d = "rounded_rect([inner.x + wall, inner.y + wall], corner_r - wall / 2);"
    if emit["ears"] and has_box:
        floor_2d += "\n" + gated(
            "ears",
            "// mounting ears\ndifference() {\n"
            "    hull() for (x = [-1, 1]) translate([x * (outer.x / 2 + ear / 2), 0]) circle(d = ear);\n"
            "    for (x = [-1, 1]) translate([x * (outer.x / 2 + ear / 2), 0]) circle(d = ear_hole_d);\n}",
        )
    if emit["keyholes"] and has_box:
        blocks.append(
            "module keyhole() {\n    circle(d = 8);\n"
            "    hull() for (y = [0, 8]) translate([0, y]) circle(d = 4);\n}"
        )
        floor_2d = (
            "difference() {\n    union() {\n"
            + indent(floor_2d, 2)
            + "\n    }\n"
            + indent(
                gated(
                    "keyholes", "for (x = [-1, 1]) translate([x * keyhole_pitch / 2, inner.y / 4]) keyhole();"
                )
            )
            + "\n}"
        )
    floor = (
        "// floor, reaching into the walls (lifted 0.01 so that no faces coincide)\n"
        "translate([0, 0, 0.01]) linear_extrude(height = floor_t - 0.01) {\n" + indent(floor_2d) + "\n}"
    )
    box_parts = [shell, floor]
    if emit["feet"] and has_box:
        box_parts.append(
            gated(
                "feet",
                "// feet\ntranslate([0, 0, -foot_h]) linear_extrude(height = foot_h + 0.5)\n"
                "    for (x = [-1, 1], y = [-1, 1]) translate([x * (outer.x / 2 - foot_d), y * (outer.y / "
                "2 - foot_d)]) circle(d = foot_d);",
            )
        )
    if emit["battery_bay"] and has_box:
        box_parts.append(
            gated(
                "battery_bay",
                "// battery bay in one corner\n"
                "translate([-inner.x / 2 + post_d + bay.x / 2 + 2, 0, floor_t - 0.5]) "
                "linear_extrude(height = bay_h + 0.5)\n    difference() {\n"
                "        square(bay + 2 * [wall, wall], center = true);\n"
                "        square(bay, center = true);\n"
                "        translate([bay.x / 2, 0]) square([2 * wall + 1, bay.y / 2], center = true);  // "
                "wire exit\n    }",
            )
        )
    if emit["pcb_posts"] and has_box:
        box_parts.append(
            gated(
                "pcb_posts",
                "// PCB standoffs\n"
                "translate([0, 0, floor_t - 0.5]) linear_extrude(height = pcb_post_h + 0.5)\n"
                "    for (p = pcb_holes) translate(p) difference() {\n        circle(d = 5);\n"
                "        circle(d = 2.5);\n    }",
            )
        )
    if box_cuts:
        box_parts = [
            "difference() {\n    union() {\n"
            + indent("\n".join(box_parts), 2)
            + "\n    }\n"
            + indent("\n".join(box_cuts))
            + "\n}"
        ]
    if has_box or configurable:
        blocks.append("module box() {\n" + indent("\n".join(box_parts)) + "\n}")
    if has_lid or configurable:
        lid_cut = ["for (p = post_at) translate(p) circle(d = lid_screw_d);"]
        if emit["lid_vents"]:
            lid_cut.append(
                gated(
                    "lid_vents",
                    "for (i = [0 : vents - 1])\n"
                    "    translate([(i - (vents - 1) / 2) * vent_pitch, 0]) square([vent_w, vent_len], "
                    "center = true);",
                )
            )
        plate = (
            "    linear_extrude(height = lid_t) difference() {\n"
            "        rounded_rect(outer, corner_r);\n" + indent("\n".join(lid_cut), 2) + "\n    }\n"
        )
        if emit["label"]:
            plate = (
                "    difference() {\n"
                + indent(plate.rstrip("\n"))
                + "\n"
                + indent(
                    gated(
                        "label",
                        "// label recess on the outside\n"
                        "translate([0, 0, -1]) linear_extrude(height = label_depth + 1) "
                        "rounded_rect(label, 2);",
                    ),
                    2,
                )
                + "\n    }\n"
            )
        blocks.append(
            "module lid() {\n" + plate + "    // locating lip, clear of the posts\n"
            "    if (lip_h > 0) translate([0, 0, lid_t - 0.01]) linear_extrude(height = lip_h + 0.01) "
            "difference() {\n"
            "        rounded_rect([inner.x - 2 * tol, inner.y - 2 * tol], corner_r - wall);\n"
            "        rounded_rect([inner.x - 2 * tol - 2 * wall, inner.y - 2 * tol - 2 * wall], "
            "max(corner_r - 2 * wall, 0.5));\n"
            "        for (p = post_at) translate(p) circle(d = post_d + 2 * tol + 2);\n    }\n}"
        )
    if configurable:
        body = "if (show_box) box();\nif (show_lid) translate([0, show_box ? outer.y + 10 : 0, 0]) lid();"
    elif show == "both":
        body = "box();\ntranslate([0, outer.y + 10, 0]) lid();"
    else:
        body = f"{show}();"
    extras = [k for k, v in on.items() if v] + (["ports"] if ports else [])
    variant = "_".join([show] + extras) + ("_configurable" if configurable else "")
    return h.params | {"variant": variant}, program(h, *blocks, body)


def _ports(d: Draw, inner: list[float], post_d: float) -> list[list]:
    """0-3 connector cut-outs, ``[side, x, z, w, h, kind]``, that miss the posts and each other."""
    ports: list[list] = []
    for _ in range(d.weighted({0: 3, 1: 3, 2: 2, 3: 1})):
        if d.flag(0.5):
            w, hh, kind = d.num(6, 16, 0.5), d.num(3, 10, 0.5), "rect"
        else:
            w = hh = d.num(4, 12, 0.5)
            kind = "round"
        x = d.num(-inner[0] / 2 + post_d + w / 2 + 2, inner[0] / 2 - post_d - w / 2 - 2, 0.5)
        z = d.num(hh / 2 + 2, max(hh / 2 + 2, inner[2] - hh / 2 - 2), 0.5)
        short_ok = abs(x) < inner[1] / 2 - post_d - w / 2 - 2
        side = d.choice(["front", "back", "left", "right"] if short_ok else ["front", "back"])
        if any(p[0] == side and abs(p[1] - x) < (p[3] + w) / 2 + 2 for p in ports):
            continue
        ports.append([side, x, z, w, hh, kind])
    return ports
