"""Round, lathe-style parts: stepped shafts, standoffs, knobs and pulleys."""

from __future__ import annotations

from corpus.families._common import Draw, fmt, indent, program, rnd

# metric thread -> (tap drill d, hex standoff across flats)
THREADS = {"M2": (1.6, 4.0), "M2.5": (2.1, 5.0), "M3": (2.5, 5.5), "M4": (3.3, 7.0), "M5": (4.2, 8.0)}


def stepped_shaft(d: Draw) -> tuple[dict, str]:
    """A turned shaft: 2-6 steps of diameter, chamfered ends, optional keyway, centre and cross holes."""
    count = d.int(2, 6)
    style = d.weighted({"profile": 2, "list": 2, "stack": 1 if count <= 4 else 0})
    main = d.num(6, 24, 1)  # the shaft's nominal diameter; steps stay near it
    dia = main
    steps = []
    for _ in range(count):
        steps.append([dia, d.num(max(3, main * 0.4), max(8, main * 2.5), 1)])
        choices = [dd for dd in (-4, -3, -2, -1, 2, 3, 4, 6) if main * 0.5 <= dia + dd <= main * 1.4]
        dia = dia + d.choice(choices or [2])
    while sum(s[1] for s in steps) < 3 * main:  # long enough to read as a shaft
        steps[d.int(0, count - 1)][1] += d.num(main * 0.5, main, 1)
    h = d.header(d.choice([None, "Stepped shaft", "Turned shaft"]))
    if style == "profile":
        chamfer = d.num(0.5, 1.5, 0.5)
        pts = [[0.0, 0.0]]
        z = 0.0
        for i, (dia, seg) in enumerate(steps):
            r = dia / 2
            if i == 0:
                pts += [[r - chamfer, 0.0], [r, chamfer]]
            else:
                pts.append([r, z])
            z += seg
            if i == count - 1:
                pts += [[r, z - chamfer], [r - chamfer, z]]
            else:
                pts.append([r, z])
        pts.append([0.0, z])
        h("points", [[rnd(x, 0.1), rnd(y, 0.1)] for x, y in pts], "r, z of the profile")
        total = z
        h("length", total)
        shaft = "module shaft() {\n    rotate_extrude() polygon(points);\n}"
    else:
        h("steps", steps, "[diameter, length]")
        total = sum(s[1] for s in steps)
        fn = "function z_at(i) = i == 0 ? 0 : z_at(i - 1) + steps[i - 1][1];"
        if style == "list":
            shaft = (
                fn + "\n\n"
                "module shaft() {\n    n = len(steps);\n    rotate_extrude()\n"
                "        polygon(concat([[0, 0]],\n"
                "            [for (i = [0 : n - 1]) each [[steps[i][0] / 2, z_at(i)], [steps[i][0] / 2, "
                "z_at(i + 1)]]],\n            [[0, z_at(n)]]));\n}"
            )
        else:
            shaft = (
                fn + "\n\n"
                "module shaft() {\n    for (i = [0 : len(steps) - 1])\n"
                "        translate([0, 0, z_at(i)]) cylinder(d = steps[i][0], h = steps[i][1] + 0.01);\n}"
            )
    # features, on the steps that can take them
    cuts = []
    z0 = 0.0
    spots = []
    for dia, seg in steps:
        spots.append((z0, dia, seg))
        z0 += seg
    key_spots = [s for s in spots[1:] if s[1] >= 8 and s[2] >= max(10, s[1] / 2 + 6)]
    if key_spots and d.flag(0.5):  # at most two features, to keep CGAL quick
        kz, kd, kl = d.choice(key_spots)
        h("key_w", rnd(max(2, kd / 4), 1))
        h("key_depth", rnd(max(1, kd / 8), 0.5))
        h("key_z", rnd(kz + 2, 0.5))
        h("key_len", rnd(kl - 4, 0.5))
        h("key_r", rnd(kd / 2, 0.1), "radius of the keyed step")
        if d.flag():
            cuts.append(
                "translate([key_r - key_depth, -key_w / 2, key_z]) cube([key_depth + 1, key_w, key_len]);"
            )
        else:
            cuts.append(
                "// keyway with round ends\n"
                "hull() for (z = [key_z + key_w / 2, key_z + key_len - key_w / 2])\n"
                "    translate([key_r - key_depth, 0, z]) rotate([0, 90, 0]) cylinder(d = key_w, h = "
                "key_depth + 1);"
            )
    if len(cuts) < 2 and d.flag(0.35) and steps[0][0] >= 6:
        h("center_hole_d", rnd(steps[0][0] * d.num(0.25, 0.45, 0.05), 0.5))
        h("center_hole_depth", rnd(min(steps[0][1] * 0.8, d.num(4, 12, 1)), 0.5))
        cuts.append("translate([0, 0, -1]) cylinder(d = center_hole_d, h = center_hole_depth + 1);")
    cross_spots = [s for s in spots if s[2] >= 6]
    if len(cuts) < 2 and cross_spots and d.flag(0.35):
        cz, cd, cl = d.choice(cross_spots)
        h("cross_hole_d", rnd(min(cl * 0.5, cd * 0.4, d.num(2, 6, 0.5)), 0.5))
        h("cross_hole_z", rnd(cz + cl / 2, 0.5))
        cuts.append(
            "translate([0, 0, cross_hole_z]) rotate([90, 0, 0])\n"
            f"    cylinder(d = cross_hole_d, h = {fmt(cd + 2)}, center = true, $fn = 24);"
        )
    last = steps[-1]
    if len(cuts) < 2 and last[1] >= 6 and d.flag(0.3):
        h("flat_depth", rnd(last[0] * 0.1 + 0.3, 0.1), "D flat on the last step")
        h("flat_len", rnd(last[1] * d.num(0.5, 0.9, 0.1), 0.5))
        cuts.append(
            f"translate([{fmt(last[0] / 2)} - flat_depth, -{fmt(last[0] / 2 + 1)}, length - flat_len])\n"
            f"    cube([{fmt(last[0] / 2 + 1)}, {fmt(last[0] + 2)}, flat_len + 1]);"
        )
        if "length" not in h.params:
            h("length", total)
    h("$fn", d.choice([32, 40, 48]))
    h.blank()
    part = "shaft();" if not cuts else "difference() {\n    shaft();\n" + indent("\n".join(cuts)) + "\n}"
    if d.flag(0.4):
        part = "rotate([0, 90, 0])\n" + (indent(part) if cuts else "    shaft();")
    return h.params | {"variant": style, "steps_n": count}, program(h, shaft, part)


def standoff(d: Draw) -> tuple[dict, str]:
    """Hex and round standoffs (female/female, male/female), flanged posts, standoff plates."""
    kind = d.weighted({"hex": 3, "male_female": 2, "flanged": 2, "plate": 2})
    thread = d.choice(list(THREADS))
    tap, af = THREADS[thread]
    if kind in ("hex", "male_female"):
        h = d.header(d.choice([None, f"{thread} hex standoff"]))
        h("tap_d", tap, f"{thread} tap drill")
        h("across_flats", af)
        h("length", d.num(5, 40, 1))
        round_body = d.flag(0.25)
        body_shape = (
            "cylinder(d = across_flats / cos(30), h = length, $fn = 6);"
            if not round_body
            else "cylinder(d = across_flats, h = length, $fn = 32);"
        )
        if kind == "hex":
            body = (
                f"difference() {{\n    {body_shape}\n"
                "    translate([0, 0, -1]) cylinder(d = tap_d, h = length + 2, $fn = 24);\n}"
            )
        else:
            h("thread_d", float(thread[1:]))
            h("stud_len", d.num(4, 10, 1))
            body = (
                f"difference() {{\n    {body_shape}\n"
                "    translate([0, 0, -1]) cylinder(d = tap_d, h = length * 0.6 + 1, $fn = 24);\n}\n"
                "translate([0, 0, length - 0.01]) cylinder(d = thread_d, h = stud_len + 0.01, $fn = 24);"
            )
        return h.params | {"variant": kind, "round": round_body, "thread": thread}, program(h, body)
    if kind == "flanged":
        h = d.header(d.choice([None, "Flanged PCB standoff", "Glue-down standoff"]))
        h("tap_d", tap, f"{thread} tap drill")
        post_d = h("post_d", rnd(tap + d.num(2.5, 5, 0.5), 0.5))
        h("post_h", d.num(4, 25, 1))
        base_r = d.flag()
        base = h("base_d" if base_r else "base_size", rnd(post_d * d.num(2.5, 4, 0.5), 1))
        h("base_t", d.num(1.5, 4, 0.5))
        h("screw_d", d.choice([2.4, 3.2, 3.4]))
        h("fillet", rnd(min(post_d * 0.4, d.num(1, 3, 0.5)), 0.5))
        h("$fn", d.choice([24, 32]))
        base_2d = "circle(d = base_d);" if base_r else "offset(r = 2) square(base_size - 4, center = true);"
        spot = (
            "for (a = [0 : 120 : 240]) rotate(a) translate([(base_d + post_d) / 4 + 0.5, 0]) circle(d = "
            "screw_d);"
            if base_r
            else "for (x = [-1, 1], y = [-1, 1]) translate([x, y] * (base_size / 2 - screw_d)) circle(d "
            "= screw_d);"
        )
        ring = (base + post_d) / 4 + 0.5
        screw = h.params["screw_d"]
        fits = ring - screw / 2 > post_d / 2 + h.params["fillet"] + 0.5 and ring + screw / 2 < base / 2 - 0.8
        if base_r and not fits:
            spot = "// base too small for screw holes"
        body = (
            "difference() {\n    union() {\n        linear_extrude(height = base_t) difference() {\n"
            f"            {base_2d}\n            {spot}\n        }}\n        rotate_extrude() polygon([\n"
            "            [0, 0], [post_d / 2 + fillet, 0], [post_d / 2 + fillet, base_t],\n"
            "            [post_d / 2, base_t + fillet], [post_d / 2, base_t + post_h], [0, base_t + "
            "post_h]\n        ]);\n    }\n"
            "    translate([0, 0, base_t]) cylinder(d = tap_d, h = post_h + 1);\n}"
        )
        return h.params | {"variant": "flanged", "thread": thread}, program(h, body)
    h = d.header(d.choice([None, "Standoff plate for a PCB", "PCB mount"]))
    pcb = [d.num(30, 100, 5), d.num(25, 70, 5)]
    margin = d.num(3, 8, 0.5)
    h("plate", [pcb[0] + 2 * margin, pcb[1] + 2 * margin, d.num(1.5, 4, 0.5)])
    h("corner_r", d.num(1, margin, 0.5))
    post_d = h("post_d", rnd(tap + d.num(2.5, 4, 0.5), 0.5))
    h("post_h", d.num(3, 12, 0.5))
    h("tap_d", tap, f"{thread} tap drill")
    pts = []
    cx = [margin + post_d / 2 + 0.5, margin + pcb[0] - post_d / 2 - 0.5]
    cy = [margin + post_d / 2 + 0.5, margin + pcb[1] - post_d / 2 - 0.5]
    for x in cx:
        for y in cy:
            if not pts or d.flag(0.85):
                pts.append([rnd(x, 0.5), rnd(y, 0.5)])
    for _ in range(d.int(0, 3)):
        pts.append([d.num(cx[0], cx[1], 0.5), d.num(cy[0], cy[1], 0.5)])
    pts = [
        p for i, p in enumerate(pts) if all(abs(p[0] - q[0]) + abs(p[1] - q[1]) > post_d + 2 for q in pts[:i])
    ]
    h("posts", pts)
    h("$fn", d.choice([24, 32]))
    cutout = d.flag(0.5) and pcb[0] > 40 and pcb[1] > 35
    if cutout:
        h("window", [rnd(pcb[0] - 2 * post_d - 8, 1), rnd(pcb[1] - 2 * post_d - 8, 1)])
    outline = "offset(r = corner_r) offset(delta = -corner_r) square([plate[0], plate[1]]);"
    if cutout:
        plate = (
            "linear_extrude(height = plate[2])\n"
            "    difference() {\n"
            f"        {outline}\n"
            "        translate([plate[0] / 2, plate[1] / 2])\n"
            "            offset(r = 3) square(window - [6, 6], center = true);\n"
            "    }"
        )
    else:
        plate = f"linear_extrude(height = plate[2])\n    {outline}"
    posts = (
        "translate([0, 0, plate[2] - 0.5])\n    linear_extrude(height = post_h + 0.5)\n"
        "        for (p = posts) translate(p) difference() {\n            circle(d = post_d);\n"
        "            circle(d = tap_d);\n        }"
    )
    return h.params | {"variant": "plate", "thread": thread}, program(h, plate, posts)


def knob(d: Draw) -> tuple[dict, str]:
    """Knobs: fluted (2-D grip outline), round with a domed top, or star (lobed) with a nut trap."""
    kind = d.weighted({"fluted": 3, "round": 2, "star": 2})
    h = d.header(d.choice([None, "Control knob" if kind != "star" else "Star knob"]))
    if kind == "star":
        h("lobes", d.choice([3, 4, 5, 5, 6]))
        span = h("knob_d", d.num(25, 60, 1))
        h("lobe_d", rnd(span * d.num(0.22, 0.35, 0.01), 0.5))
        h("core_d", rnd(span * d.num(0.45, 0.6, 0.05), 0.5))
        height = h("height", d.num(8, 20, 1))
        nut = d.choice([("M5", 8.0, 4.0, 5.3), ("M6", 10.0, 5.0, 6.4), ("M8", 13.0, 6.5, 8.4)])
        h("bolt_d", nut[3], f"{nut[0]} bolt")
        h("nut_af", nut[1])
        h("nut_h", min(nut[2], rnd(height - 3, 0.5)))
        h("$fn", d.choice([32, 48]))
        body = (
            "module star_2d() {\n    hull() circle(d = core_d);\n    for (i = [0 : lobes - 1])\n"
            "        rotate(i * 360 / lobes) hull() {\n            circle(d = core_d * 0.6);\n"
            "            translate([knob_d / 2 - lobe_d / 2, 0]) circle(d = lobe_d);\n        }\n}\n\n"
            "difference() {\n    linear_extrude(height = height) difference() {\n        star_2d();\n"
            "        circle(d = bolt_d);\n    }\n    // hex nut trap\n"
            "    translate([0, 0, -1]) cylinder(d = nut_af / cos(30), h = nut_h + 1, $fn = 6);\n}"
        )
        return h.params | {"variant": "star"}, program(h, body)
    knob_d = h("knob_d", d.num(12, 45, 1))
    knob_h = h("knob_h", d.num(8, 25, 1))
    shaft_d = h("shaft_d", d.choice([4, 6, 6, 6.35]))
    d_flat = kind == "fluted" and d.flag(0.7)
    if d_flat:
        h("flat", rnd(shaft_d * 0.75, 0.1), "D-shaft")
    h("shaft_depth", rnd(knob_h * d.num(0.5, 0.8, 0.1), 0.5))
    skirt = d.flag(0.35)
    if skirt:
        h("skirt_d", rnd(knob_d + d.num(4, 12, 1), 1))
        h("skirt_h", d.num(1.5, 4, 0.5))
    pointer = d.flag(0.6)
    set_screw = not d_flat and d.flag(0.5)
    if set_screw:
        h("set_screw_d", 3 if knob_d > 15 else 2.5)
        h("set_screw_z", rnd(max(knob_h * 0.3, h.params.get("skirt_h", 0) + 2), 0.5))
    cuts = []
    if set_screw:
        cuts.append(
            "translate([0, 0, set_screw_z]) rotate([-90, 0, 0]) cylinder(d = set_screw_d, h = knob_d, $fn "
            "= 16);"
        )
    if kind == "fluted":
        flutes = h("flutes", d.int(8, 24))
        h("flute_d", rnd(min(knob_d * 3.1 / flutes, d.num(1.5, 5, 0.5)), 0.5))
        chamfer = d.flag(0.25)
        if chamfer:
            h("chamfer", rnd(min(knob_h / 4, d.num(1, 3, 0.5)), 0.5))
        else:
            h("top_scale", d.choice([1, 0.95, 0.9, 0.85]), "top / bottom diameter")
        h("$fn", d.choice([32, 40]))
        grip = (
            "module grip_2d() {\n    difference() {\n        circle(d = knob_d);\n"
            "        for (i = [0 : flutes - 1])\n"
            "            rotate(i * 360 / flutes) translate([knob_d / 2, 0]) circle(d = flute_d, $fn = "
            "12);\n    }\n}"
        )
        grip_3d = "linear_extrude(height = knob_h, scale = top_scale) grip_2d();"
        if chamfer:
            grip_3d = (
                "// chamfer the top edge with a cone\nintersection() {\n"
                "    linear_extrude(height = knob_h) grip_2d();\n"
                "    translate([0, 0, -1]) cylinder(h = knob_h + 2, d1 = knob_d + 2 * (knob_h - chamfer + "
                "1), d2 = knob_d - 2 * chamfer - 2);\n}"
            )
        solid = [grip_3d]
        if skirt:
            solid.insert(0, "translate([0, 0, -0.01]) cylinder(d = skirt_d, h = skirt_h);")
        if d_flat:
            cuts.insert(
                0,
                "translate([0, 0, -1]) linear_extrude(height = shaft_depth + 1)\n    intersection() {\n"
                "        circle(d = shaft_d);\n"
                "        translate([-shaft_d / 2, -shaft_d / 2]) square([shaft_d, flat]);\n    }",
            )
        else:
            cuts.insert(0, "translate([0, 0, -1]) cylinder(d = shaft_d, h = shaft_depth + 1);")
        if pointer:
            cuts.append(
                "// pointer groove\ntranslate([-0.6, knob_d / 6, knob_h - 0.8]) cube([1.2, knob_d / 3, 1]);"
            )
    else:
        h("dome", rnd(min(knob_h / 3, knob_d / 5, d.num(1.5, 5, 0.5)), 0.5))
        h("taper", d.num(0, knob_d / 12, 0.5))
        h("$fn", d.choice([40, 48]))
        base = (
            "[[shaft_d / 2, 0], [skirt_d / 2, 0], [skirt_d / 2, skirt_h], [knob_d / 2, skirt_h]]"
            if skirt
            else "[[shaft_d / 2, 0], [knob_d / 2, 0]]"
        )
        grip = (
            "// half section: skirt, body, domed top, blind bore\nmodule profile() {\n"
            f"    top_r = knob_d / 2 - taper;\n    polygon(concat(\n        {base},\n"
            "        [[top_r, knob_h - dome]],\n"
            "        [for (a = [10 : 10 : 90]) [top_r * cos(a), knob_h - dome + dome * sin(a)]],\n"
            "        [[0, shaft_depth], [shaft_d / 2, shaft_depth]]\n    ));\n}"
        )
        solid = ["rotate_extrude() profile();"]
        if pointer:
            solid.append(
                "// pointer ridge\n"
                "translate([-0.75, knob_d / 2 - taper - 2, knob_h * 0.2]) cube([1.5, 2.5 + taper, knob_h "
                "* 0.5]);"
            )
    solid_text = "\n".join(solid) if len(solid) == 1 else "union() {\n" + indent("\n".join(solid)) + "\n}"
    h.blank()
    body = (
        solid_text
        if not cuts
        else "difference() {\n" + indent(solid_text) + "\n" + indent("\n".join(cuts)) + "\n}"
    )
    return h.params | {"variant": kind}, program(h, grip, body)


def pulley(d: Draw) -> tuple[dict, str]:
    """V-belt pulleys and GT2 timing pulleys: a rotate_extrude profile (bore included), then cuts."""
    kind = d.weighted({"v_belt": 1, "timing": 1})
    h = d.header(d.choice([None, "V-belt pulley" if kind == "v_belt" else "GT2 timing pulley"]))
    bore = d.choice([5, 6, 8, 8, 10, 12])
    if kind == "v_belt":
        outer = h("outer_d", d.num(max(30, bore * 3), 90, 2))
        h("grooves", d.weighted({1: 3, 2: 2, 3: 1}))
        h("groove_w", d.num(8, 13, 1), "belt top width")
        h("groove_depth", rnd(min(outer / 6, d.num(6, 11, 0.5)), 0.5))
        h("rim", d.num(2, 4, 0.5))
        h("bore_d", bore)
        hub = d.flag(0.6)
        if hub:
            h("hub_d", rnd(bore * 2 + d.num(6, 14, 1), 1))
            h("hub_h", d.num(5, 15, 1))
        set_screw = hub and d.flag(0.6)
        if set_screw:
            h("set_screw_d", 3 if bore >= 6 else 2.5)
        h("$fn", d.choice([40, 48]))
        h.blank()
        outline = (
            "[[bore_d / 2, 0], [outer_d / 2, 0], [outer_d / 2, width], [hub_d / 2, width],\n"
            "             [hub_d / 2, width + hub_h], [bore_d / 2, width + hub_h]]"
            if hub
            else "[[bore_d / 2, 0], [outer_d / 2, 0], [outer_d / 2, width], [bore_d / 2, width]]"
        )
        profile = (
            "width = grooves * groove_w + (grooves + 1) * rim;\n\nmodule profile() {\n"
            f"    difference() {{\n        polygon({outline});\n        for (i = [0 : grooves - 1])\n"
            "            translate([outer_d / 2, rim + i * (groove_w + rim)])\n"
            "                polygon([[0.01, 0], [-groove_depth, groove_w * 0.3], [-groove_depth, "
            "groove_w * 0.7], [0.01, groove_w]]);\n    }\n}"
        )
        solid = "rotate_extrude() profile();"
        screw_z = "width + hub_h / 2"
    else:
        teeth = h("teeth", d.choice([16, 20, 20, 24, 30, 36, 40]))
        pitch_d = teeth * 2 / 3.14159
        bore = d.choice([b for b in (3, 4, 5, 5, 6, 8, 8, 10, 12) if b <= pitch_d - 5])
        h("pitch", 2, "GT2")
        h("belt_w", d.choice([6, 6, 9, 10]))
        h("flange_h", d.choice([1, 1.5]))
        h("flange_extra", d.num(1.5, 3, 0.5))
        h("bore_d", bore)
        h("hub_d", rnd(max(bore + 6, min(pitch_d + 2, d.num(bore + 8, bore + 14, 1))), 1))
        h("hub_h", d.num(5, 9, 1))
        set_screw = d.flag(0.6)
        if set_screw:
            h("set_screw_d", 3 if bore >= 6 else 2.5)
        h("$fn", d.choice([32, 40]))
        h.blank()
        profile = (
            "od = teeth * pitch / PI - 0.5;\nwidth = belt_w + 2 * flange_h;\n\nmodule profile() {\n"
            "    polygon([\n"
            "        [bore_d / 2, 0], [hub_d / 2, 0], [hub_d / 2, hub_h], [od / 2 + flange_extra, "
            "hub_h],\n        [od / 2 + flange_extra, hub_h + flange_h], [od / 2 - 1, hub_h + flange_h],\n"
            "        [od / 2 - 1, hub_h + flange_h + belt_w], [od / 2 + flange_extra, hub_h + flange_h + "
            "belt_w],\n        [od / 2 + flange_extra, hub_h + width], [bore_d / 2, hub_h + width]\n"
            "    ]);\n}\n\n// a toothed ring around the core, reaching 0.01 into both flanges\n"
            "module teeth_2d() {\n    difference() {\n        circle(d = od);\n"
            "        circle(d = od - 3);\n        for (i = [0 : teeth - 1])\n"
            "            rotate(i * 360 / teeth) translate([od / 2, 0]) circle(d = pitch * 0.55, $fn = "
            "8);\n    }\n}"
        )
        solid = (
            "union() {\n    rotate_extrude() profile();\n"
            "    translate([0, 0, hub_h + flange_h - 0.01]) linear_extrude(height = belt_w + 0.02) "
            "teeth_2d();\n}"
        )
        screw_z = "hub_h / 2"
    if set_screw:
        cut = (
            f"translate([0, 0, {screw_z}]) rotate([-90, 0, 0]) cylinder(d = set_screw_d, h = hub_d, $fn = "
            "16);"
        )
        body = "difference() {\n" + indent(solid) + "\n    " + cut + "\n}"
    else:
        body = solid
    return h.params | {"variant": kind, "set_screw": set_screw}, program(h, profile, body)
