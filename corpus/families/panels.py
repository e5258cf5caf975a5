"""Front panels: a plate with the cut-outs of real panel parts (switches, pots, displays,
connectors, fan grills), laid out in rows. Mostly 2-D, so cheap to render however long.

These are the corpus's longest programs: one module per kind of part used, then the
placements, written out or driven from a table, the way people write panel files.
"""

from __future__ import annotations

from dataclasses import dataclass

from corpus.families._common import Draw, fmt, indent, program, rnd


@dataclass(frozen=True)
class Component:
    """A panel part: its module (2-D cut-out, centred on the origin) and its footprint."""

    name: str
    module: str
    size: tuple[float, float]
    """Footprint (width, height) including clearance for its knob, nut or bezel."""
    label: str


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("led", "module led() {\n    circle(d = 5.2);\n}", (9, 9), "LED"),
        Component("led3", "module led3() {\n    circle(d = 3.2);\n}", (7, 7), "LED"),
        Component(
            "toggle",
            "module toggle() {\n    circle(d = 6.4);\n"
            "    translate([0, 6.5]) circle(d = 2.5);  // anti-rotation tab\n}",
            (15, 20),
            "toggle switch",
        ),
        Component(
            "pot",
            "module pot() {\n    circle(d = 7.2);\n"
            "    translate([7.8, 0]) square([1.5, 3], center = true);\n}",
            (22, 22),
            "pot",
        ),
        Component("button", "module button() {\n    circle(d = 12.2);\n}", (18, 18), "push button"),
        Component(
            "rocker",
            "module rocker() {\n    offset(r = 0.5) square([19.2 - 1, 12.9 - 1], center = true);\n}",
            (25, 18),
            "rocker switch",
        ),
        Component(
            "lcd1602",
            "module lcd1602() {\n    square([71.2, 24.2], center = true);\n"
            "    for (x = [-1, 1], y = [-1, 1]) translate([x * 75 / 2, y * 31 / 2]) circle(d = 3.2);\n}",
            (84, 38),
            "16x2 LCD",
        ),
        Component(
            "oled",
            "module oled() {\n    square([25.5, 14.5], center = true);\n"
            "    for (x = [-1, 1], y = [-1, 1]) translate([x * 23.5 / 2, y * 23.8 / 2]) circle(d = 2.2);\n"
            "}",
            (30, 30),
            "OLED",
        ),
        Component(
            "de9",
            "module de9() {\n    // D-sub shell, 10 degree sides\n    hull() {\n"
            "        for (x = [-1, 1]) translate([x * 8.4, 2.9]) circle(r = 1.2);\n"
            "        for (x = [-1, 1]) translate([x * 7.4, -2.9]) circle(r = 1.2);\n    }\n"
            "    for (x = [-1, 1]) translate([x * 12.5, 0]) circle(d = 3.1);\n}",
            (34, 14),
            "DE-9",
        ),
        Component(
            "db25",
            "module db25() {\n    hull() {\n"
            "        for (x = [-1, 1]) translate([x * 18, 2.9]) circle(r = 1.2);\n"
            "        for (x = [-1, 1]) translate([x * 17, -2.9]) circle(r = 1.2);\n    }\n"
            "    for (x = [-1, 1]) translate([x * 23.5, 0]) circle(d = 3.1);\n}",
            (56, 14),
            "DB-25",
        ),
        Component(
            "usb_b",
            "module usb_b() {\n    offset(delta = 1, chamfer = true) square([10.5, 9.5], center = true);\n}",
            (17, 16),
            "USB-B",
        ),
        Component("usb_a", "module usb_a() {\n    square([13.6, 6.2], center = true);\n}", (18, 10), "USB-A"),
        Component("dc_jack", "module dc_jack() {\n    circle(d = 11);\n}", (16, 16), "DC in"),
        Component("banana", "module banana() {\n    circle(d = 8.2);\n}", (14, 14), "banana jack"),
        Component(
            "bnc",
            "module bnc() {\n    intersection() {\n        circle(d = 9.7);\n"
            "        square([9.7, 8.9], center = true);\n    }\n}",
            (16, 16),
            "BNC",
        ),
        Component(
            "xlr",
            "module xlr() {\n    circle(d = 23.6);\n    translate([9.5, 12]) circle(d = 3.2);\n"
            "    translate([-9.5, -12]) circle(d = 3.2);\n}",
            (32, 32),
            "XLR",
        ),
        Component(
            "keystone",
            "module keystone() {\n    square([14.9, 19.2], center = true);\n}",
            (20, 25),
            "keystone",
        ),
        Component(
            "iec",
            "module iec() {\n    // C14 inlet\n"
            "    polygon([[-13.75, -9.75], [13.75, -9.75], [13.75, 5.75], [9.75, 9.75], [-9.75, 9.75], "
            "[-13.75, 5.75]]);\n    for (x = [-1, 1]) translate([x * 20, 0]) circle(d = 3.2);\n}",
            (50, 24),
            "mains inlet",
        ),
        Component(
            "fan40",
            "module fan40() {\n    pitch = 4.5;\n    for (i = [-4 : 4], j = [-4 : 4])\n"
            "        if (norm([i, j]) * pitch < 17) translate([i, j] * pitch) circle(d = 3.4, $fn = 12);\n"
            "    for (x = [-1, 1], y = [-1, 1]) translate([x, y] * 16) circle(d = 3.4);\n}",
            (44, 44),
            "40 mm fan",
        ),
        Component(
            "meter",
            "module meter() {\n    // panel voltmeter\n    square([45.5, 26.5], center = true);\n}",
            (52, 32),
            "voltmeter",
        ),
    )
}


def panel(d: Draw) -> tuple[dict, str]:
    """A front panel (or a 19-inch rack panel) with rows of part cut-outs and mounting holes."""
    rack = d.flag(0.3)
    thickness = d.num(1.5, 4, 0.5)
    frame = handles = False
    if rack:
        units = d.weighted({1: 2, 2: 2, 3: 1})
        width, height = 482.6, rnd(units * 44.45 - 0.8, 0.01)
        handles = d.flag(0.5)
        margin_x, margin_y = (45.0 if handles else 25.0), 4.0
    else:
        width = d.num(60, 260, 5)
        height = d.num(35, 120, 5)
        corner_r = d.num(0, 6, 1)
        mount_hole_d = d.choice([3.2, 3.4, 4.3])
        mount_inset = d.num(4, 6, 0.5)
        frame = d.flag(0.25) and min(width, height) >= 50
        margin_x = margin_y = 10.0
        if frame:
            frame_h, frame_wall = d.num(4, 12, 1), d.num(1.5, 3, 0.5)
            frame_inset = rnd(max(mount_inset * 2 + 2, d.num(10, 14, 1)), 1)
            margin_x = margin_y = frame_inset + frame_wall + 1
    rows = d.int(1, max(1, min(4, int((height - 2 * margin_y) // 20))))
    row_h = (height - 2 * margin_y) / rows
    layout = []  # (component, x, y, count, pitch)
    names = list(COMPONENTS)
    for r in range(rows):
        y = rnd(height - margin_y - row_h * (r + 0.5), 0.5)
        x = margin_x
        for _ in range(24):
            fits = [
                n
                for n in names
                if COMPONENTS[n].size[1] <= row_h + 4 and COMPONENTS[n].size[0] <= width - margin_x - x
            ]
            if not fits:
                break
            comp = COMPONENTS[d.weighted({n: 3 if COMPONENTS[n].size[0] <= 16 else 1 for n in fits})]
            cw = comp.size[0]
            room = int((width - margin_x - x) // cw)
            count = 1
            if room >= 2 and cw <= 25 and d.flag(0.4):
                count = d.int(2, min(8, room))
            layout.append((comp, rnd(x + cw / 2, 0.5), y, count, cw))
            x += cw * count + d.num(0, 8, 1)
            if d.flag(0.1):
                break
    # a rear frame or handles mean a CGAL union with the plate: keep them to light panels
    if any(c.name == "fan40" for c, *_ in layout) or sum(n for *_, n, _ in layout) > 16:
        frame = handles = False
    if not layout:  # a panel always carries something
        layout.append((COMPONENTS["led"], rnd(width / 2, 0.5), rnd(height / 2, 0.5), 1, 9.0))

    h = d.header(
        d.choice([None, f"{units}U rack panel" if rack else "Front panel", "Rear panel", "Control panel"])
    )
    if rack:
        h("units", units)
        h("panel", [width, height], "19 inch rack panel")
        h("thickness", thickness)
        if handles:
            h(
                "handle",
                [d.num(max(20, height - 20), max(20, height - 8), 1), d.num(25, 40, 1), d.num(6, 10, 1)],
                "length, depth, bar",
            )
    else:
        h("panel", [width, height], "width, height")
        h("thickness", thickness)
        h("corner_r", corner_r)
        h("mount_hole_d", mount_hole_d)
        h("mount_inset", mount_inset)
    if frame:
        h("frame_h", frame_h, "rear frame that sits inside the case")
        h("frame_wall", frame_wall)
        h("frame_inset", frame_inset)
    h("$fn", d.choice([24, 32]))
    table = d.flag(0.4)

    used = []
    for comp, *_ in layout:
        if comp.name not in used:
            used.append(comp.name)
    modules = [COMPONENTS[n].module for n in used]
    if table:
        rows_text = ",\n".join(
            "    " + fmt([comp.name, x, y] + ([count, pitch] if count > 1 else []))
            for comp, x, y, count, pitch in layout
        )
        h("parts", [[c.name, x, y] + ([n, p] if n > 1 else []) for c, x, y, n, p in layout], None)
        h.lines[-1] = "// [part, x, y] or [part, x, y, count, pitch]\nparts = [\n" + rows_text + "\n];"
        branches = "\n".join(
            f"{'if' if i == 0 else 'else if'} (name == {fmt(n)}) {n}();" for i, n in enumerate(used)
        )
        modules.append("module cutout(name) {\n" + indent(branches) + "\n}")
        placements = (
            "for (p = parts)\n    for (i = [0 : (len(p) > 3 ? p[3] : 1) - 1])\n"
            "        translate([p[1] + i * (len(p) > 3 ? p[4] : 0), p[2]]) cutout(p[0]);"
        )
    else:
        lines = []
        for comp, x, y, count, pitch in layout:
            comment = f"  // {comp.label}" if d.flag(0.3) else ""
            if count == 1:
                lines.append(f"translate([{fmt(x)}, {fmt(y)}]) {comp.name}();{comment}")
            elif d.flag(0.5):  # written out one by one
                lines += [
                    f"translate([{fmt(rnd(x + i * pitch, 0.5))}, {fmt(y)}]) {comp.name}();"
                    for i in range(count)
                ]
            else:
                lines.append(
                    f"for (i = [0 : {count - 1}]) translate([{fmt(x)} + i * {fmt(pitch)}, {fmt(y)}]) "
                    f"{comp.name}();{comment}"
                )
        placements = "\n".join(lines)
    h.blank()
    if rack:
        outline = "square(panel);"
        mounting = (
            "// rack ear slots, 465.1 mm apart\n"
            "for (x = [7.5, panel.x - 7.5], u = [0 : units - 1], y = [6.35, 38.1])\n"
            "    translate([x, u * 44.45 + y - 0.4]) hull() for (dx = [-2, 2]) translate([dx, 0]) "
            "circle(d = 6.4);"
        )
    else:
        outline = (
            "offset(r = corner_r) offset(delta = -corner_r) square(panel);" if corner_r else "square(panel);"
        )
        mounting = (
            "for (x = [mount_inset, panel.x - mount_inset], y = [mount_inset, panel.y - mount_inset])\n"
            "    translate([x, y]) circle(d = mount_hole_d);"
        )
    plate = (
        "linear_extrude(height = thickness)\n    difference() {\n"
        f"        {outline}\n" + indent(mounting, 2) + "\n" + indent(placements, 2) + "\n    }"
    )
    blocks = modules + [plate]
    if handles:
        blocks.insert(
            len(modules),
            "module handle() {\n    // U-shaped pull, drawn in the y-z plane and extruded along x\n"
            "    rotate([90, 0, 90]) linear_extrude(height = handle[2], center = true)\n"
            "        offset(r = 2) offset(delta = -2) difference() {\n"
            "            translate([-handle[0] / 2, 0]) square([handle[0], handle[1]]);\n"
            "            translate([-handle[0] / 2 + handle[2], -1]) square([handle[0] - 2 * handle[2], "
            "handle[1] - handle[2] + 1]);\n        }\n}",
        )
        blocks.append("for (x = [30, panel.x - 30]) translate([x, panel.y / 2, thickness - 0.5]) handle();")
    if frame:
        blocks.append(
            "// rear frame\ntranslate([0, 0, thickness - 0.01]) linear_extrude(height = frame_h + 0.01)\n"
            "    difference() {\n"
            "        translate([frame_inset, frame_inset]) square(panel - 2 * [frame_inset, "
            "frame_inset]);\n        translate([frame_inset + frame_wall, frame_inset + frame_wall])\n"
            "            square(panel - 2 * [frame_inset + frame_wall, frame_inset + frame_wall]);\n    }"
        )
    parts = sum(n for _, _, _, n, _ in layout)
    variant = ("rack" if rack else "panel") + ("_table" if table else "_explicit")
    return h.params | {"variant": variant, "parts_n": parts}, program(h, *blocks)
