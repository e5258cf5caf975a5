"""Gears: spur and helical gears (2-D outline, extruded), racks and roller-chain sprockets."""

from __future__ import annotations

import math

from corpus.families._common import Draw, indent, program, rnd

# roller chain: name -> (pitch, roller d, sprocket thickness)
CHAINS = {
    "#25": (6.35, 3.3, 2.8),
    "#35": (9.525, 5.08, 4.3),
    "05B": (8.0, 5.0, 2.8),
    "#40": (12.7, 7.92, 7.2),
}


def gear(d: Draw) -> tuple[dict, str]:
    """A spur, helical (twisted extrude) or chain-sprocket gear from its 2-D outline, or a rack."""
    kind = d.weighted({"spur": 4, "helical": 1, "rack": 1, "sprocket": 2})
    if kind == "rack":
        return _rack(d)
    h = d.header(d.choice([None, "Chain sprocket" if kind == "sprocket" else "Spur gear"]))
    if kind == "sprocket":
        chain = d.choice(list(CHAINS))
        pitch, roller, thick = CHAINS[chain]
        teeth = h("teeth", d.int(9, 36))
        h("chain_pitch", pitch, f"{chain} chain")
        h("roller_d", roller)
        h("thickness", thick)
        outer = pitch / math.sin(math.radians(180 / teeth)) + roller * 0.6
    else:
        teeth = h("teeth", d.int(10, 48))
        mod = h("mod", d.choice([0.8, 1, 1, 1.25, 1.5, 2, 2.5, 3]), "module")
        h("thickness", d.num(3, 15, 0.5))
        outer = (teeth + 2) * mod
    root = outer - (2.5 * mod + 2 if kind != "sprocket" else roller * 1.3)
    bore = h("bore_d", rnd(min(root * 0.35, d.choice([3, 4, 5, 5, 6, 8, 8, 10, 12, 15])), 0.5))
    bore_shape = d.weighted({"round": 3, "d_flat": 1, "keyway": 1}) if kind != "helical" else "round"
    if bore_shape == "d_flat":
        h("flat", rnd(bore * 0.8, 0.1))
    elif bore_shape == "keyway":
        h("key_w", rnd(max(1, bore / 4), 0.5))
    hub = kind != "helical" and d.flag(0.5) and root > bore + 8
    if hub:
        h("hub_d", rnd(min(root - 2, bore + d.num(6, 16, 1)), 1))
        h("hub_h", d.num(3, 12, 1))
    holes = d.flag(0.5) and root > (bore + 8 if not hub else h.params["hub_d"] + 8) + 10
    if holes:
        h("holes", d.int(3, 6))
        inner_edge = h.params["hub_d"] if hub else bore + 4
        span = (root - 4 - inner_edge) / 2
        h("hole_d", rnd(min(span * 0.8, d.num(3, 20, 0.5)), 0.5))
        h("hole_r", rnd((root - 4 + inner_edge) / 4, 0.5), "radius of the hole circle")
    if kind == "helical":
        h("twist", d.choice([10, 15, 20, 30]), "degrees over the thickness")
    set_screw = hub and d.flag(0.5)
    if set_screw:
        h("set_screw_d", 3 if bore >= 5 else 2)
    h("$fn", d.choice([32, 48]))
    h.blank()

    if kind == "sprocket":
        outline = (
            "pitch_d = chain_pitch / sin(180 / teeth);\n\nmodule outline() {\n    difference() {\n"
            "        circle(d = pitch_d + roller_d * 0.6);\n        for (i = [0 : teeth - 1])\n"
            "            rotate(i * 360 / teeth) translate([pitch_d / 2, 0]) circle(d = roller_d * 1.05, "
            "$fn = 16);\n    }\n}"
        )
    else:
        outline = (
            "pitch_r = teeth * mod / 2;\n\nmodule tooth() {\n"
            "    polygon([[pitch_r - 1.75 * mod, -0.9 * mod], [pitch_r + mod, -0.4 * mod],\n"
            "             [pitch_r + mod, 0.4 * mod], [pitch_r - 1.75 * mod, 0.9 * mod]]);\n}\n\n"
            "module outline() {\n    circle(r = pitch_r - 1.25 * mod);\n"
            "    for (i = [0 : teeth - 1]) rotate(i * 360 / teeth) tooth();\n}"
        )
    bore_2d = {
        "round": "circle(d = bore_d);",
        "d_flat": (
            "intersection() {\n    circle(d = bore_d);\n"
            "    translate([-bore_d / 2, -bore_d / 2]) square([bore_d, flat]);\n}"
        ),
        "keyway": "circle(d = bore_d);\ntranslate([-key_w / 2, 0]) square([key_w, bore_d / 2 + key_w / 2]);",
    }[bore_shape]
    cut_2d = [] if hub else [bore_2d]
    if holes:
        cut_2d.append(
            "for (i = [0 : holes - 1]) rotate(i * 360 / holes + 180 / holes) translate([hole_r, 0]) "
            "circle(d = hole_d);"
        )
    if cut_2d:
        gear_2d = (
            "module gear_2d() {\n    difference() {\n        outline();\n"
            + indent("\n".join(cut_2d), 2)
            + "\n    }\n}"
        )
    else:
        gear_2d = "module gear_2d() {\n    outline();\n}"
    extrude = (
        "linear_extrude(height = thickness, twist = twist, slices = 6) gear_2d();"
        if kind == "helical"
        else "linear_extrude(height = thickness) gear_2d();"
    )
    if not hub:
        return h.params | {"variant": kind}, program(h, outline, gear_2d, extrude)
    # with a hub the bore goes through gear and hub in one cut
    bore_module = "module bore_2d() {\n" + indent(bore_2d) + "\n}"
    cuts = ["translate([0, 0, -1]) linear_extrude(height = thickness + hub_h + 2) bore_2d();"]
    if set_screw:
        cuts.append(
            "translate([0, 0, thickness + hub_h / 2]) rotate([0, 90, 0]) cylinder(d = set_screw_d, h = "
            "hub_d, $fn = 16);"
        )
    body = (
        f"difference() {{\n    union() {{\n        {extrude}\n"
        "        translate([0, 0, thickness - 0.01]) cylinder(d = hub_d, h = hub_h + 0.01);\n"
        "    }\n" + indent("\n".join(cuts)) + "\n}"
    )
    gear_2d = gear_2d + "\n\n" + bore_module
    return h.params | {"variant": kind + "_hub"}, program(h, outline, gear_2d, body)


def _rack(d: Draw) -> tuple[dict, str]:
    h = d.header(d.choice([None, "Gear rack"]))
    h("teeth", d.int(6, 30))
    mod = h("mod", d.choice([1, 1.5, 2, 2.5, 3]), "module")
    h("base_h", rnd(mod * d.num(2, 5, 0.5), 0.5))
    h("thickness", d.num(4, 15, 1))
    holes = d.flag(0.5) and h.params["base_h"] >= 6
    if holes:
        h("hole_d", d.choice([3.2, 3.4, 4.3] if h.params["base_h"] >= 7 else [2.4, 3.2]))
    h.blank()
    tooth = (
        "pitch = PI * mod;\n\nmodule tooth() {\n    // 20 degree flanks\n"
        "    polygon([[-pitch / 4 - 1.25 * mod * tan(20), -1.25 * mod], [pitch / 4 + 1.25 * mod * "
        "tan(20), -1.25 * mod],\n"
        "             [pitch / 4 - mod * tan(20), mod], [-pitch / 4 + mod * tan(20), mod]]);\n}"
    )
    body_lines = [
        "square([teeth * pitch, base_h]);",
        "for (i = [0 : teeth - 1]) translate([(i + 0.5) * pitch, base_h + 1.25 * mod - 0.01]) tooth();",
    ]
    if holes:
        body_lines = [
            "difference() {",
            "    square([teeth * pitch, base_h]);",
            "    for (x = [0.25, 0.75]) translate([x * teeth * pitch, base_h / 2]) circle(d = hole_d, $fn "
            "= 24);",
            "}",
        ] + body_lines[1:]
    shape = "module rack_2d() {\n" + indent("\n".join(body_lines)) + "\n}"
    body = "linear_extrude(height = thickness) rack_2d();"
    if d.flag():
        body = "rotate([90, 0, 0]) " + body
    return h.params | {"variant": "rack"}, program(h, tooth, shape, body)
