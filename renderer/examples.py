"""A few built-in OpenSCAD parts (and two broken programs) for the demo and tests."""

EXAMPLES: dict[str, str] = {
    "l_bracket": """
thickness = 4;
width = 30;
leg = 40;
hole_d = 5;

difference() {
    union() {
        cube([leg, width, thickness]);
        cube([thickness, width, leg]);
    }
    for (y = [width / 4, 3 * width / 4]) {
        translate([leg * 0.65, y, -1]) cylinder(d = hole_d, h = thickness + 2, $fn = 32);
        translate([-1, y, leg * 0.65]) rotate([0, 90, 0]) cylinder(d = hole_d, h = thickness + 2, $fn = 32);
    }
}
""",
    "flange": """
outer_d = 60;
inner_d = 20;
thickness = 6;
bolt_circle = 44;
bolts = 6;

difference() {
    union() {
        cylinder(d = outer_d, h = thickness, $fn = 96);
        cylinder(d = inner_d + 10, h = thickness * 3, $fn = 64);
    }
    translate([0, 0, -1]) cylinder(d = inner_d, h = thickness * 3 + 2, $fn = 64);
    for (i = [0 : bolts - 1])
        rotate([0, 0, i * 360 / bolts])
            translate([bolt_circle / 2, 0, -1]) cylinder(d = 5, h = thickness + 2, $fn = 24);
}
""",
    "rounded_box": """
size = [40, 25, 15];
radius = 4;
wall = 2;

module rounded(s, r) {
    hull() for (x = [r, s[0] - r], y = [r, s[1] - r])
        translate([x, y, 0]) cylinder(r = r, h = s[2], $fn = 32);
}

difference() {
    rounded(size, radius);
    translate([wall, wall, wall]) rounded(size - [2 * wall, 2 * wall, 0], radius - wall);
}
""",
    "pipe_elbow": """
pipe_r = 8;
wall = 1.5;
bend_r = 20;

rotate_extrude(angle = 90, $fn = 64)
    translate([bend_r, 0])
        difference() {
            circle(r = pipe_r, $fn = 48);
            circle(r = pipe_r - wall, $fn = 48);
        }
""",
    "gear": """
teeth = 14;
module_size = 2;
thickness = 5;
pitch_r = teeth * module_size / 2;

difference() {
    union() {
        cylinder(r = pitch_r - module_size / 2, h = thickness, $fn = 64);
        for (i = [0 : teeth - 1])
            rotate([0, 0, i * 360 / teeth])
                translate([pitch_r - module_size, -module_size / 2, 0])
                    cube([2 * module_size, module_size, thickness]);
    }
    translate([0, 0, -1]) cylinder(r = 3, h = thickness + 2, $fn = 24);
}
""",
    "broken_syntax": "cube([10, 10, 10]\n",
    "flat_2d": "square([20, 10]);\n",
}
