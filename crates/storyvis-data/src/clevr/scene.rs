//! CLEVR-SV scenes: object attributes, placement, and the paper's per-frame encodings.
//!
//! World frame: z up, ground plane z = 0, objects placed in [-3, 3]² as in CLEVR. A story is
//! `FRAMES` scenes that share a camera; frame t shows objects 1..=t.
//!
//! Per-frame encoding (StoryGAN's CLEVR-SV): 4 object slots × 18 numbers
//! (one-hot shape 3, colour 8, material 2, size 2, then x, y, z) + 3 camera numbers = 75,
//! slots filled cumulatively. The 15-d label is the OR of the one-hots present.

use crate::rng::Rng;

/// Frames (and objects) per story.
pub const FRAMES: usize = 4;
/// Numbers per object slot: 3 + 8 + 2 + 2 one-hots and x, y, z.
pub const SLOT_LEN: usize = 18;
/// One-hot part of a slot; also the label length.
pub const LABEL_LEN: usize = 15;
pub const VECTOR_LEN: usize = FRAMES * SLOT_LEN + 3;

pub const SHAPES: [&str; 3] = ["cube", "sphere", "cylinder"];
pub const COLORS: [&str; 8] = ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"];
pub const MATERIALS: [&str; 2] = ["rubber", "metal"];
pub const SIZES: [&str; 2] = ["large", "small"];

/// Names of the 15 label entries, in vector order.
pub fn label_names() -> Vec<String> {
    let groups: [(&str, &[&str]); 4] =
        [("shape", &SHAPES), ("color", &COLORS), ("material", &MATERIALS), ("size", &SIZES)];
    groups.iter().flat_map(|(g, names)| names.iter().map(move |n| format!("{g}:{n}"))).collect()
}

/// Radius of a large / small object (CLEVR's values).
pub const RADII: [f64; 2] = [0.7, 0.35];

/// Placement rules, as CLEVR uses them.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Objects lie in [-extent, extent]² on the ground.
    pub extent: f64,
    /// Minimum gap between the footprints of two objects.
    pub min_gap: f64,
    /// Minimum separation of any two objects along the camera's left-right and front-back
    /// axes, so that every spatial relation used in a sentence is unambiguous.
    pub min_axis_gap: f64,
}

impl Default for Placement {
    fn default() -> Self {
        Placement { extent: 3.0, min_gap: 0.25, min_axis_gap: 0.4 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object {
    pub shape: usize,
    pub color: usize,
    pub material: usize,
    pub size: usize,
    /// Centre on the ground plane.
    pub x: f64,
    pub y: f64,
    /// Rotation about z, radians (matters for cubes only; not part of the encoding).
    pub angle: f64,
}

impl Object {
    pub fn radius(&self) -> f64 {
        RADII[self.size]
    }
    /// Half the side of a cube of this size: the radius. CLEVR's own scenes shrink cubes by √2,
    /// CLEVR-SV's do not: the real vectors put every cube's centre at z = r (0.35 or 0.7) like
    /// the other shapes', and the real frames show the cubes that large.
    pub fn cube_half_side(&self) -> f64 {
        self.radius()
    }
    /// Height of the object's centre above the ground: the slot's z.
    pub fn z(&self) -> f64 {
        self.radius()
    }
    /// Radius of the object's footprint on the ground (a cube's half diagonal, whatever its
    /// rotation): what placement keeps apart.
    pub fn footprint(&self) -> f64 {
        if SHAPES[self.shape] == "cube" {
            std::f64::consts::SQRT_2 * self.radius()
        } else {
            self.radius()
        }
    }
    /// Radius of a sphere around the centre that holds the whole object (cube √3·r, cylinder
    /// of half height r √2·r).
    pub fn bounding(&self) -> f64 {
        if SHAPES[self.shape] == "cube" {
            3f64.sqrt() * self.radius()
        } else {
            std::f64::consts::SQRT_2 * self.radius()
        }
    }
    /// "large red metal cube".
    pub fn noun_phrase(&self) -> String {
        format!(
            "{} {} {} {}",
            SIZES[self.size], COLORS[self.color], MATERIALS[self.material], SHAPES[self.shape]
        )
    }
    fn one_hots(&self) -> [f32; LABEL_LEN] {
        let mut v = [0f32; LABEL_LEN];
        v[self.shape] = 1.0;
        v[3 + self.color] = 1.0;
        v[11 + self.material] = 1.0;
        v[13 + self.size] = 1.0;
        v
    }
}

/// The camera: CLEVR's default view with a per-story jitter of its position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Offset added to the default camera position: the 3 camera numbers of the encoding.
    pub jitter: [f64; 3],
}

// The camera of the real CLEVR-SV (rendered with CLEVR's Blender scene): its rotation is the
// same in every story and only its position is jittered (CLEVR's `--camera_jitter 0.5`). The
// vectors of the authors' sample carry the camera's "right" direction on the ground,
// (0.6563, 0.7545, −0.0), in every frame; pitch, field of view and mean position were fitted to
// where the 144 objects added in frames 2–4 of the 48 stories of their public sample appear in
// the 320×240 originals (`examples/fit_camera.rs`: 3.45 px rms reprojection of the changed
// pixels' centroids; the per-story offsets' sd 0.33 / 0.29 / 0.23 against 0.29 for ±0.5
// uniform). The frames are 4:3 (320×240) and squashed to squares afterwards, as StoryGAN's
// loader does.

/// Mean camera position.
pub const CAMERA_BASE: [f64; 3] = [7.573, -6.521, 5.449];
/// Each coordinate of the position jittered uniformly by up to this much per story.
pub const CAMERA_JITTER: f64 = 0.5;
/// The camera's right direction on the ground plane, as the real vectors record it.
pub const CAMERA_RIGHT: [f64; 2] = [0.6563, 0.7545];
/// How far the view direction points below the horizon.
pub const PITCH_DEGREES: f64 = 28.70;
/// Horizontal field of view (a 35 mm lens on Blender's 32 mm sensor gives 49.1°).
pub const FOV_DEGREES: f64 = 48.25;
/// Width / height of the rendered frame before it is squashed to a square.
pub const ASPECT: f64 = 4.0 / 3.0;

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn normalize(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// The camera's orthonormal frame: where it is and which way it looks.
#[derive(Clone, Copy, Debug)]
pub struct ViewBasis {
    pub eye: [f64; 3],
    pub forward: [f64; 3],
    pub right: [f64; 3],
    pub up: [f64; 3],
    /// tan(horizontal FOV / 2).
    pub tan_half: f64,
    /// tan(vertical FOV / 2): `tan_half / ASPECT`.
    pub tan_half_v: f64,
}

impl Camera {
    pub fn position(&self) -> [f64; 3] {
        [
            CAMERA_BASE[0] + self.jitter[0],
            CAMERA_BASE[1] + self.jitter[1],
            CAMERA_BASE[2] + self.jitter[2],
        ]
    }
    pub fn basis(&self) -> ViewBasis {
        let eye = self.position();
        let (right, behind) = self.ground_axes();
        let (cp, sp) = (PITCH_DEGREES.to_radians().cos(), PITCH_DEGREES.to_radians().sin());
        let forward = normalize([behind[0] * cp, behind[1] * cp, -sp]);
        let right = [right[0], right[1], 0.0];
        let up = cross(right, forward);
        let tan_half = (FOV_DEGREES.to_radians() / 2.0).tan();
        ViewBasis { eye, forward, right, up, tan_half, tan_half_v: tan_half / ASPECT }
    }

    /// Image-plane coordinates of a world point, in [-1, 1]² when inside the frame (x to
    /// the right, y upwards), and its depth along the view direction.
    pub fn project(&self, p: [f64; 3]) -> (f64, f64, f64) {
        let b = self.basis();
        let d = sub(p, b.eye);
        let depth = dot(d, b.forward);
        (dot(d, b.right) / depth / b.tan_half, dot(d, b.up) / depth / b.tan_half_v, depth)
    }

    /// Where a world point appears in a square frame of `size` pixels (the 4:3 view squashed
    /// to the square, as the frames are): x to the right, y downwards, pixel i covering
    /// [i, i + 1) so that its centre is i + ½.
    pub fn pixel(&self, p: [f64; 3], size: f64) -> [f64; 2] {
        let (u, v, _) = self.project(p);
        [(u + 1.0) / 2.0 * size, (1.0 - v) / 2.0 * size]
    }

    /// The point at height `z` that appears at `pixel` of a `size` frame (the inverse of
    /// `pixel` for points of known height, such as an object's centre at its radius): its
    /// ground coordinates (x, y), or none where the pixel's ray never reaches that height in
    /// front of the camera.
    pub fn unproject(&self, pixel: [f64; 2], size: f64, z: f64) -> Option<[f64; 2]> {
        let b = self.basis();
        let (u, v) = (pixel[0] / size * 2.0 - 1.0, 1.0 - pixel[1] / size * 2.0);
        let (a, c) = (u * b.tan_half, v * b.tan_half_v);
        let dir: [f64; 3] = std::array::from_fn(|k| b.forward[k] + a * b.right[k] + c * b.up[k]);
        let t = (z - b.eye[2]) / dir[2];
        (dir[2].abs() > 1e-12 && t > 0.0 && t.is_finite())
            .then(|| [b.eye[0] + t * dir[0], b.eye[1] + t * dir[1]])
    }

    /// Whether the object's bounding sphere projects entirely inside the frame.
    pub fn sees_whole(&self, o: &Object) -> bool {
        let (u, v, depth) = self.project([o.x, o.y, o.z()]);
        let b = self.basis();
        let reach = o.bounding() / depth;
        depth > 0.0 && u.abs() + reach / b.tan_half <= 1.0 && v.abs() + reach / b.tan_half_v <= 1.0
    }

    /// Unit vectors on the ground plane pointing to the camera's right and away from it
    /// ("behind"): the axes of CLEVR's spatial relations.
    pub fn ground_axes(&self) -> ([f64; 2], [f64; 2]) {
        let n = (CAMERA_RIGHT[0].powi(2) + CAMERA_RIGHT[1].powi(2)).sqrt();
        let right = [CAMERA_RIGHT[0] / n, CAMERA_RIGHT[1] / n];
        // behind × up = right: behind is right turned 90° anticlockwise.
        (right, [-right[1], right[0]])
    }
    /// (right, behind) coordinates of a ground point in the camera's ground frame.
    pub fn to_view(&self, x: f64, y: f64) -> (f64, f64) {
        let (r, b) = self.ground_axes();
        (x * r[0] + y * r[1], x * b[0] + y * b[1])
    }
}

/// One story's content: a camera and `FRAMES` objects, object t first visible in frame t.
#[derive(Clone, Debug, PartialEq)]
pub struct Story {
    pub camera: Camera,
    pub objects: Vec<Object>,
}

impl Story {
    /// Samples attributes and a placement that satisfies `rules` (rejection sampling, as CLEVR
    /// does). Returns `None` if no placement was found in the attempt budget.
    pub fn sample(rng: &mut Rng, rules: &Placement) -> Option<Story> {
        let j = CAMERA_JITTER;
        let camera = Camera { jitter: [rng.range(-j, j), rng.range(-j, j), rng.range(-j, j)] };
        let mut objects: Vec<Object> = Vec::with_capacity(FRAMES);
        let mut tries = 0;
        while objects.len() < FRAMES {
            tries += 1;
            if tries > 1000 {
                return None;
            }
            let size = rng.below(2);
            let r = RADII[size];
            let lim = rules.extent - r;
            let candidate = Object {
                shape: rng.below(3),
                color: rng.below(8),
                material: rng.below(2),
                size,
                x: rng.range(-lim, lim),
                y: rng.range(-lim, lim),
                angle: rng.range(0.0, std::f64::consts::TAU),
            };
            if camera.sees_whole(&candidate)
                && objects.iter().all(|o| placement_ok(&camera, o, &candidate, rules))
            {
                objects.push(candidate);
            }
        }
        Some(Story { camera, objects })
    }

    /// The 75-d vector of frame `t` (0-based): slots 0..=t filled.
    pub fn vector(&self, t: usize) -> [f32; VECTOR_LEN] {
        encode_frame(&self.objects[..=t])
    }

    /// The 15-d label of frame `t` (0-based).
    pub fn label(&self, t: usize) -> [u8; LABEL_LEN] {
        label_of(&self.vector(t))
    }
}

/// Whether `b` may join a scene holding `a` under `rules`.
/// Objects of the given attributes (shape, colour, material, size indices) placed at random
/// as `Story::sample` places a story's: on the ground within the extent, wholly in view of
/// `camera`, apart by `rules`; none after 1,000 tries.
pub fn place(
    attributes: &[[u8; 4]],
    camera: &Camera,
    rules: &Placement,
    rng: &mut Rng,
) -> Option<Vec<Object>> {
    let mut objects: Vec<Object> = Vec::with_capacity(attributes.len());
    for _ in 0..1000 {
        let Some(a) = attributes.get(objects.len()) else { return Some(objects) };
        let lim = rules.extent - RADII[a[3] as usize];
        let candidate = Object {
            shape: a[0] as usize,
            color: a[1] as usize,
            material: a[2] as usize,
            size: a[3] as usize,
            x: rng.range(-lim, lim),
            y: rng.range(-lim, lim),
            angle: rng.range(0.0, std::f64::consts::TAU),
        };
        if camera.sees_whole(&candidate)
            && objects.iter().all(|o| placement_ok(camera, o, &candidate, rules))
        {
            objects.push(candidate);
        }
    }
    (objects.len() == attributes.len()).then_some(objects)
}

pub fn placement_ok(camera: &Camera, a: &Object, b: &Object, rules: &Placement) -> bool {
    let d = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
    if d - a.footprint() - b.footprint() < rules.min_gap {
        return false;
    }
    let (ar, ab) = camera.to_view(a.x, a.y);
    let (br, bb) = camera.to_view(b.x, b.y);
    (ar - br).abs() >= rules.min_axis_gap && (ab - bb).abs() >= rules.min_axis_gap
}

/// Encodes the objects present in a frame (slot order = order of appearance).
pub fn encode_frame(objects: &[Object]) -> [f32; VECTOR_LEN] {
    assert!(objects.len() <= FRAMES);
    let mut v = [0f32; VECTOR_LEN];
    for (slot, o) in objects.iter().enumerate() {
        let base = slot * SLOT_LEN;
        v[base..base + LABEL_LEN].copy_from_slice(&o.one_hots());
        v[base + 15] = o.x as f32;
        v[base + 16] = o.y as f32;
        v[base + 17] = o.z() as f32;
    }
    // As the real vectors: the camera's right direction on the ground (the same in every
    // story; the per-story position jitter is not recorded).
    v[FRAMES * SLOT_LEN] = CAMERA_RIGHT[0] as f32;
    v[FRAMES * SLOT_LEN + 1] = CAMERA_RIGHT[1] as f32;
    v
}

/// The 15-d label: OR over the slots of their one-hot parts.
pub fn label_of(vector: &[f32]) -> [u8; LABEL_LEN] {
    let mut label = [0u8; LABEL_LEN];
    for slot in 0..FRAMES {
        let base = slot * SLOT_LEN;
        for (k, l) in label.iter_mut().enumerate() {
            if vector[base + k] > 0.5 {
                *l = 1;
            }
        }
    }
    label
}

/// Decodes the objects in a 75-d vector: one per slot whose one-hot groups each have exactly
/// one hot entry (argmax > 0.5). Returns (slot index, object) pairs; empty slots are skipped.
/// Errors name the slot whose one-hots are malformed (hot entries in some groups only).
pub fn decode_frame(vector: &[f32]) -> Result<(Vec<(usize, Object)>, Camera), String> {
    if vector.len() != VECTOR_LEN {
        return Err(format!("expected {VECTOR_LEN} numbers, found {}", vector.len()));
    }
    if let Some(bad) = vector.iter().position(|v| !v.is_finite()) {
        return Err(format!("entry {bad} is not a finite number"));
    }
    let mut out = Vec::new();
    for slot in 0..FRAMES {
        let s = &vector[slot * SLOT_LEN..(slot + 1) * SLOT_LEN];
        let groups = [(0, 3), (3, 8), (11, 2), (13, 2)];
        let picks: Vec<Option<usize>> = groups
            .iter()
            .map(|&(start, n)| {
                let g = &s[start..start + n];
                let (i, m) =
                    g.iter()
                        .enumerate()
                        .fold((0, f32::MIN), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
                (m > 0.5).then_some(i)
            })
            .collect();
        match picks.iter().filter(|p| p.is_some()).count() {
            0 => continue,
            4 => {}
            _ => return Err(format!("slot {slot} has one-hots in only some of its groups")),
        }
        let p: Vec<usize> = picks.into_iter().map(Option::unwrap).collect();
        out.push((
            slot,
            Object {
                shape: p[0],
                color: p[1],
                material: p[2],
                size: p[3],
                x: s[15] as f64,
                y: s[16] as f64,
                angle: 0.0,
            },
        ));
    }
    // The last three numbers are the camera's right direction, the same in every story; the
    // position jitter is not recorded, so the decoded camera is the mean one.
    Ok((out, Camera { jitter: [0.0; 3] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stories(n: u64) -> Vec<Story> {
        (0..n)
            .map(|i| Story::sample(&mut Rng::for_item(3, i), &Placement::default()).unwrap())
            .collect()
    }

    #[test]
    fn vector_layout_is_cumulative_with_one_hot_sums() {
        for s in stories(50) {
            for t in 0..FRAMES {
                let v = s.vector(t);
                for slot in 0..FRAMES {
                    let sl = &v[slot * SLOT_LEN..(slot + 1) * SLOT_LEN];
                    let filled = slot <= t;
                    for (start, n) in [(0, 3), (3, 8), (11, 2), (13, 2)] {
                        let sum: f32 = sl[start..start + n].iter().sum();
                        assert_eq!(sum, if filled { 1.0 } else { 0.0 });
                        assert!(sl[start..start + n].iter().all(|&x| x == 0.0 || x == 1.0));
                    }
                    if filled {
                        let o = &s.objects[slot];
                        assert_eq!(sl[o.shape], 1.0);
                        assert_eq!(sl[3 + o.color], 1.0);
                        assert_eq!(sl[11 + o.material], 1.0);
                        assert_eq!(sl[13 + o.size], 1.0);
                        assert_eq!(
                            (sl[15], sl[16], sl[17]),
                            (o.x as f32, o.y as f32, o.z() as f32)
                        );
                        // Earlier frames carry the same slot unchanged (cumulative filling).
                        if t > 0 && slot < t {
                            let prev = s.vector(t - 1);
                            assert_eq!(sl, &prev[slot * SLOT_LEN..(slot + 1) * SLOT_LEN]);
                        }
                    } else {
                        assert!(sl.iter().all(|&x| x == 0.0));
                    }
                }
                let cam = &v[72..75];
                assert_eq!(cam, &[0.6563, 0.7545, 0.0][..], "the real vectors' camera numbers");
            }
        }
    }

    #[test]
    fn label_is_or_of_present_one_hots() {
        for s in stories(50) {
            for t in 0..FRAMES {
                let label = s.label(t);
                let mut expect = [0u8; LABEL_LEN];
                for o in &s.objects[..=t] {
                    expect[o.shape] = 1;
                    expect[3 + o.color] = 1;
                    expect[11 + o.material] = 1;
                    expect[13 + o.size] = 1;
                }
                assert_eq!(label, expect);
            }
            // Labels only grow through a story.
            for t in 1..FRAMES {
                let (a, b) = (s.label(t - 1), s.label(t));
                assert!(a.iter().zip(&b).all(|(x, y)| x <= y));
            }
        }
    }

    #[test]
    fn placed_objects_keep_their_attributes_and_the_placement_rules() {
        let rules = Placement::default();
        let cam = Camera { jitter: [0.0; 3] };
        let attributes = [[0, 1, 0, 0], [1, 2, 1, 1], [2, 7, 0, 0], [0, 1, 0, 0]];
        let mut places = Vec::new();
        for i in 0..100 {
            let objects = place(&attributes, &cam, &rules, &mut Rng::for_item(8, i)).unwrap();
            for (k, (o, a)) in objects.iter().zip(&attributes).enumerate() {
                assert_eq!([o.shape, o.color, o.material, o.size], a.map(|v| v as usize));
                assert!(
                    cam.sees_whole(o)
                        && o.x.abs() <= rules.extent - o.radius()
                        && o.y.abs() <= rules.extent - o.radius()
                );
                assert!(objects[k + 1..]
                    .iter()
                    .all(|b| placement_ok(&cam, o, b, &rules) && placement_ok(&cam, b, o, &rules)));
            }
            places.push(objects[0].x);
        }
        // Random places: the first object lands all over the ground.
        let (lo, hi) = places.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(hi - lo > 3.0, "{lo}..{hi}");
        // Rules nothing can meet: none.
        let crowded = Placement { min_gap: 5.0, ..rules };
        assert!(place(&attributes, &cam, &crowded, &mut Rng::for_item(8, 0)).is_none());
        assert_eq!(place(&[], &cam, &rules, &mut Rng::for_item(8, 0)), Some(vec![]));
    }

    #[test]
    fn placement_rules_hold() {
        let rules = Placement::default();
        for s in stories(200) {
            for (i, a) in s.objects.iter().enumerate() {
                let r = a.radius();
                assert!(a.x.abs() <= rules.extent - r && a.y.abs() <= rules.extent - r);
                for b in &s.objects[i + 1..] {
                    let d = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
                    assert!(d - a.footprint() - b.footprint() >= rules.min_gap);
                    let (ar, ab) = s.camera.to_view(a.x, a.y);
                    let (br, bb) = s.camera.to_view(b.x, b.y);
                    assert!((ar - br).abs() >= rules.min_axis_gap);
                    assert!((ab - bb).abs() >= rules.min_axis_gap);
                }
            }
            assert!(s.camera.jitter.iter().all(|j| j.abs() <= CAMERA_JITTER));
            assert!(s.objects.iter().all(|o| s.camera.sees_whole(o)));
        }
    }

    #[test]
    fn projection_matches_a_hand_computation() {
        // The mean camera: the point the view ray meets the ground at is the frame's centre.
        let cam = Camera { jitter: [0.0; 3] };
        let b = cam.basis();
        let t = -b.eye[2] / b.forward[2];
        let centre = [b.eye[0] + t * b.forward[0], b.eye[1] + t * b.forward[1], 0.0];
        let (u, v, d) = cam.project(centre);
        assert!(u.abs() < 1e-12 && v.abs() < 1e-12 && (d - t).abs() < 1e-9, "{u} {v} {d}");
        // It looks 28.7° down, across the scene: the centre is near the origin.
        assert!(
            (b.forward[2] + PITCH_DEGREES.to_radians().sin()).abs() < 1e-12
                && centre[0].hypot(centre[1]) < 1.5,
            "{centre:?}"
        );
        // A point 1 unit to the right at the centre's depth lands at 1 / (depth · tan(FOV/2)).
        let (u1, v1, _) = cam.project([centre[0] + b.right[0], centre[1] + b.right[1], 0.0]);
        assert!((u1 - 1.0 / (d * b.tan_half)).abs() < 1e-9 && v1.abs() < 1e-12, "{u1} {v1}");
        // The vertical half-angle is the horizontal one over the 4:3 aspect.
        assert!((b.tan_half_v * ASPECT - b.tan_half).abs() < 1e-15);
        let cam = Camera { jitter: [0.3, -0.2, 0.1] };
        // A point to the camera's right projects right; a raised point projects up.
        let (right, _) = cam.ground_axes();
        assert!(cam.project([right[0], right[1], 0.0]).0 > 0.0);
        assert!(cam.project([0.0, 0.0, 1.0]).1 > 0.0);
        // Far outside the scene is outside the frame.
        let far = Object { shape: 1, color: 0, material: 0, size: 0, x: -9.0, y: -9.0, angle: 0.0 };
        assert!(!cam.sees_whole(&far));
    }

    #[test]
    fn unproject_inverts_pixel_at_the_objects_heights() {
        for s in stories(60) {
            for o in &s.objects {
                let centre = [o.x, o.y, o.z()];
                for size in [64.0, 128.0] {
                    let px = s.camera.pixel(centre, size);
                    // Every placed object is in view: its centre is inside the frame.
                    assert!(px.iter().all(|&c| (0.0..size).contains(&c)), "{px:?}");
                    let back = s.camera.unproject(px, size, o.z()).unwrap();
                    assert!(
                        (back[0] - o.x).abs() < 1e-9 && (back[1] - o.y).abs() < 1e-9,
                        "{back:?} vs {o:?}"
                    );
                }
            }
        }
        // The frame's centre pixel of the mean camera is where its view ray meets the ground.
        let cam = Camera { jitter: [0.0; 3] };
        let b = cam.basis();
        let t = -b.eye[2] / b.forward[2];
        let ground = cam.unproject([32.0, 32.0], 64.0, 0.0).unwrap();
        assert!(
            (ground[0] - (b.eye[0] + t * b.forward[0])).abs() < 1e-9
                && (ground[1] - (b.eye[1] + t * b.forward[1])).abs() < 1e-9
        );
        // The top edge's rays point above the horizon: they never come down to the ground.
        assert!(cam.unproject([32.0, 0.0], 64.0, 0.0).is_some());
        assert!(cam.unproject([32.0, -40.0], 64.0, 0.0).is_none());
    }

    #[test]
    fn decode_inverts_encode() {
        for s in stories(20) {
            let (objs, cam) = decode_frame(&s.vector(FRAMES - 1)).unwrap();
            assert_eq!(objs.len(), FRAMES);
            for ((slot, o), want) in objs.iter().zip(&s.objects) {
                assert_eq!(s.objects[*slot].shape, o.shape);
                assert_eq!(
                    (o.shape, o.color, o.material, o.size),
                    (want.shape, want.color, want.material, want.size)
                );
                assert!((o.x - want.x).abs() < 1e-5 && (o.y - want.y).abs() < 1e-5);
            }
            assert_eq!(cam.jitter, [0.0; 3], "the jitter is not recorded");
        }
        let mut bad = [0f32; VECTOR_LEN];
        bad[0] = 1.0; // a shape but no colour, material or size
        assert!(decode_frame(&bad).unwrap_err().contains("slot 0"));
        assert!(decode_frame(&[0.0; 74]).is_err());
    }

    #[test]
    fn label_names_match_layout() {
        let n = label_names();
        assert_eq!(n.len(), LABEL_LEN);
        assert_eq!(n[0], "shape:cube");
        assert_eq!(n[3], "color:gray");
        assert_eq!(n[11], "material:rubber");
        assert_eq!(n[14], "size:small");
    }
}
