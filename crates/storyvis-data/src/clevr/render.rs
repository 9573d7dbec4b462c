//! A small ray caster for CLEVR-style scenes.
//!
//! Ground plane lit as the real CLEVR-SV floor (a fitted light map), a key light with soft
//! shadows plus ambient and a shadowless fill light, rubber as matte Lambert surfaces, metal as
//! a tinted mirror of floor, backdrop, sky and lamps with a sharp highlight (one reflection
//! bounce); 4:3 frames squashed to squares as the real ones (`Renderer::render`).
//! Anti-aliased by an n×n grid of samples per pixel, averaged in linear light and then
//! gamma-encoded. Everything is deterministic: no random sampling.

use super::scene::{Camera, Object, ViewBasis, SHAPES};

#[derive(Clone, Copy, Debug, PartialEq)]
struct V3(f64, f64, f64);

impl V3 {
    fn add(self, o: V3) -> V3 {
        V3(self.0 + o.0, self.1 + o.1, self.2 + o.2)
    }
    fn sub(self, o: V3) -> V3 {
        V3(self.0 - o.0, self.1 - o.1, self.2 - o.2)
    }
    fn mul(self, k: f64) -> V3 {
        V3(self.0 * k, self.1 * k, self.2 * k)
    }
    fn hadamard(self, o: V3) -> V3 {
        V3(self.0 * o.0, self.1 * o.1, self.2 * o.2)
    }
    fn dot(self, o: V3) -> f64 {
        self.0 * o.0 + self.1 * o.1 + self.2 * o.2
    }
    fn norm(self) -> V3 {
        self.mul(1.0 / self.dot(self).sqrt())
    }
}

/// CLEVR's colours (sRGB, 0..255), in `COLORS` order.
const PALETTE: [[u8; 3]; 8] = [
    [87, 87, 87],
    [173, 35, 35],
    [42, 75, 215],
    [29, 105, 20],
    [129, 74, 25],
    [129, 38, 192],
    [41, 208, 208],
    [255, 238, 51],
];
/// The floor's light (linear, per channel) as a cubic in the mean camera's image coordinates
/// (u right, v up, in [−1, 1]; terms 1, u, v, u², uv, v², u³, u²v, uv², v³): fitted by least
/// squares to the per-pixel median of the real CLEVR-SV frames of the authors' sample (192
/// frames, 320×240; `examples/real_background.rs`; 3.4–3.9 grey levels rms). It carries the
/// area lights' falloff, brighter to the front right, and the darker backdrop at the top.
const FLOOR: [[f64; 10]; 3] = [
    [0.2353, 0.0205, -0.1008, -0.0414, -0.0467, -0.0182, -0.033, 0.0264, 0.046, 0.0144],
    [0.2324, 0.0162, -0.0923, -0.0392, -0.0435, -0.0221, -0.0311, 0.0237, 0.047, 0.0112],
    [0.2292, 0.006, -0.0779, -0.0342, -0.0377, -0.0315, -0.0278, 0.0186, 0.0531, 0.0056],
];
/// Objects' light as shaded above, scaled (`OBJECT_GAIN`) and lifted by a grey (`OBJECT_HAZE`),
/// per material (rubber, metal): the real objects are darker and less saturated than the
/// palette under our lights. Fitted (least squares in linear light) to the mean colour per
/// material and colour of every object added in frames 2–4 of the authors' sample against the
/// same scenes drawn by this renderer, then adjusted beside the lamp reflections
/// (`examples/compare_real.rs`: per object and channel 8.7 grey levels rms for rubber, 10.8
/// for metal; without them the colour means were 27.4 and 14.7 off).
const OBJECT_GAIN: [f64; 2] = [0.43, 0.55];
const OBJECT_HAZE: [f64; 2] = [0.033, 0.012];
/// The lamps as seen in reflections: key strength and sharpness, fill strength and sharpness.
const LAMPS: (f64, i32, f64, i32) = (3.0, 24, 0.8, 12);
/// The sky's light straight up (falling to the backdrop's at the horizon).
const SKY_UP: f64 = 0.6;
/// Share of the floor's light a shadow takes away (CLEVR's shadows are soft and light).
const SHADOW: f64 = 0.45;
/// Light directions sampled per shadow test (a small cone: soft edges).
const SHADOW_SAMPLES: [(f64, f64); 4] =
    [(-0.07, -0.07), (0.07, -0.07), (-0.07, 0.07), (0.07, 0.07)];
/// Rendered pixels per output pixel, horizontally: 64×64 frames come from 320×240 renders, as
/// the real ones do.
pub const RENDER_SCALE: u32 = 5;
const AMBIENT: f64 = 0.32;
const KEY: f64 = 0.95;
const FILL: f64 = 0.18;
const GAMMA: f64 = 2.2;

fn srgb_to_linear(c: u8) -> f64 {
    (c as f64 / 255.0).powf(GAMMA)
}

/// The surface a ray hit.
#[derive(Clone, Copy)]
enum Surface {
    Ground,
    Object(usize),
}

struct Hit {
    t: f64,
    normal: V3,
    surface: Surface,
}

/// An object in the form the intersection code wants.
struct Solid {
    shape: Shape,
    center: V3,
    /// Sphere / cylinder radius, or cube half side.
    r: f64,
    /// cos and sin of the rotation about z (cubes).
    rot: (f64, f64),
    albedo: V3,
    metal: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Cube,
    Sphere,
    Cylinder,
}

const EPS: f64 = 1e-7;

impl Solid {
    fn new(o: &Object) -> Solid {
        let shape = match SHAPES[o.shape] {
            "cube" => Shape::Cube,
            "sphere" => Shape::Sphere,
            _ => Shape::Cylinder,
        };
        let r = if shape == Shape::Cube { o.cube_half_side() } else { o.radius() };
        let c = PALETTE[o.color];
        Solid {
            shape,
            center: V3(o.x, o.y, o.z()),
            r,
            rot: (o.angle.cos(), o.angle.sin()),
            albedo: V3(srgb_to_linear(c[0]), srgb_to_linear(c[1]), srgb_to_linear(c[2])),
            metal: super::scene::MATERIALS[o.material] == "metal",
        }
    }

    /// Nearest intersection with t in (EPS, t_max): (t, outward normal).
    fn intersect(&self, o: V3, d: V3, t_max: f64) -> Option<(f64, V3)> {
        match self.shape {
            Shape::Sphere => {
                let oc = o.sub(self.center);
                let b = oc.dot(d);
                let c = oc.dot(oc) - self.r * self.r;
                let disc = b * b - c;
                if disc < 0.0 {
                    return None;
                }
                let s = disc.sqrt();
                let t = if -b - s > EPS { -b - s } else { -b + s };
                (t > EPS && t < t_max)
                    .then(|| (t, o.add(d.mul(t)).sub(self.center).mul(1.0 / self.r)))
            }
            Shape::Cube => {
                // Into the cube's frame: translate, then rotate by -angle about z.
                let (c, s) = self.rot;
                let p = o.sub(self.center);
                let lo = V3(c * p.0 + s * p.1, -s * p.0 + c * p.1, p.2);
                let ld = V3(c * d.0 + s * d.1, -s * d.0 + c * d.1, d.2);
                let (mut t0, mut t1, mut axis0, mut sign0) =
                    (f64::NEG_INFINITY, f64::INFINITY, 0, 0.0);
                for (k, (oo, dd)) in
                    [(lo.0, ld.0), (lo.1, ld.1), (lo.2, ld.2)].into_iter().enumerate()
                {
                    if dd.abs() < 1e-12 {
                        if oo.abs() > self.r {
                            return None;
                        }
                        continue;
                    }
                    let (mut a, mut b) = ((-self.r - oo) / dd, (self.r - oo) / dd);
                    let mut sign = -1.0;
                    if a > b {
                        std::mem::swap(&mut a, &mut b);
                        sign = 1.0;
                    }
                    if a > t0 {
                        t0 = a;
                        axis0 = k;
                        sign0 = sign;
                    }
                    t1 = t1.min(b);
                }
                if t0 > t1 || t0 <= EPS || t0 >= t_max {
                    return None; // rays starting inside a cube do not happen here
                }
                let ln = match axis0 {
                    0 => V3(sign0, 0.0, 0.0),
                    1 => V3(0.0, sign0, 0.0),
                    _ => V3(0.0, 0.0, sign0),
                };
                Some((t0, V3(c * ln.0 - s * ln.1, s * ln.0 + c * ln.1, ln.2)))
            }
            Shape::Cylinder => {
                let p = o.sub(self.center);
                let (top, bottom) = (self.r, -self.r);
                let mut best: Option<(f64, V3)> = None;
                // Side: (px + t dx)² + (py + t dy)² = r².
                let a = d.0 * d.0 + d.1 * d.1;
                if a > 1e-12 {
                    let b = p.0 * d.0 + p.1 * d.1;
                    let c = p.0 * p.0 + p.1 * p.1 - self.r * self.r;
                    let disc = b * b - a * c;
                    if disc >= 0.0 {
                        let s = disc.sqrt();
                        for t in [(-b - s) / a, (-b + s) / a] {
                            let z = p.2 + t * d.2;
                            if t > EPS && t < t_max && z >= bottom && z <= top {
                                let q = p.add(d.mul(t));
                                best = Some((t, V3(q.0 / self.r, q.1 / self.r, 0.0)));
                                break;
                            }
                        }
                    }
                }
                // Top cap (the bottom one rests on the ground and is never seen).
                if d.2.abs() > 1e-12 {
                    let t = (top - p.2) / d.2;
                    let q = p.add(d.mul(t));
                    if t > EPS
                        && t < best.map_or(t_max, |b| b.0)
                        && q.0 * q.0 + q.1 * q.1 <= self.r * self.r
                    {
                        best = Some((t, V3(0.0, 0.0, 1.0)));
                    }
                }
                best
            }
        }
    }
}

/// A scene ready to be ray traced: the objects present in one frame and the camera.
pub struct Renderer {
    solids: Vec<Solid>,
    eye: V3,
    forward: V3,
    right: V3,
    up: V3,
    tan_half: f64,
    tan_half_v: f64,
    light: V3,
    /// The light directions shadows are tested along.
    light_samples: Vec<V3>,
    fill: V3,
    /// The mean camera, which the floor's light is laid out in.
    mean: ViewBasis,
}

/// The floor's linear light at a ground point: `FLOOR` at the point's place in the mean
/// camera's frame `mean` (clamped just outside the frame, where only reflections look).
fn floor_light(mean: &ViewBasis, p: V3) -> V3 {
    let d = [p.0 - mean.eye[0], p.1 - mean.eye[1], -mean.eye[2]];
    let dot = |a: [f64; 3]| a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
    let depth = dot(mean.forward);
    let (u, v) = if depth > 0.0 {
        (
            (dot(mean.right) / depth / mean.tan_half).clamp(-1.2, 1.2),
            (dot(mean.up) / depth / mean.tan_half_v).clamp(-1.2, 1.2),
        )
    } else {
        (0.0, 1.2)
    };
    let t = [1.0, u, v, u * u, u * v, v * v, u * u * u, u * u * v, u * v * v, v * v * v];
    let c = |k: usize| FLOOR[k].iter().zip(&t).map(|(a, b)| a * b).sum::<f64>().max(0.0);
    V3(c(0), c(1), c(2))
}

impl Renderer {
    pub fn new(objects: &[Object], camera: &Camera) -> Renderer {
        let b = camera.basis();
        let v = |a: [f64; 3]| V3(a[0], a[1], a[2]);
        let (eye, forward, right, up) = (v(b.eye), v(b.forward), v(b.right), v(b.up));
        // Key light from the viewer's upper left, on the camera's side of the scene: shadows
        // to the right and backwards, as in CLEVR.
        let light = right.mul(-0.55).add(forward.mul(-0.3)).add(V3(0.0, 0.0, 0.8)).norm();
        let fill = right.mul(0.8).add(V3(0.0, 0.0, 0.5)).norm();
        // Two directions across the light's: horizontal (light × z) and the one across both.
        let across = V3(light.1, -light.0, 0.0).norm();
        let tilt = V3(
            light.1 * across.2 - light.2 * across.1,
            light.2 * across.0 - light.0 * across.2,
            light.0 * across.1 - light.1 * across.0,
        );
        let light_samples = SHADOW_SAMPLES
            .iter()
            .map(|&(a, b)| light.add(across.mul(a)).add(tilt.mul(b)).norm())
            .collect();
        Renderer {
            solids: objects.iter().map(Solid::new).collect(),
            eye,
            forward,
            right,
            up,
            tan_half: b.tan_half,
            tan_half_v: b.tan_half_v,
            light,
            light_samples,
            fill,
            mean: Camera { jitter: [0.0; 3] }.basis(),
        }
    }

    /// Primary ray through image-plane point (u, v) in [0, 1]², v downwards.
    fn ray(&self, u: f64, v: f64) -> V3 {
        let (x, y) = ((2.0 * u - 1.0) * self.tan_half, (1.0 - 2.0 * v) * self.tan_half_v);
        self.forward.add(self.right.mul(x)).add(self.up.mul(y)).norm()
    }

    fn trace(&self, o: V3, d: V3) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        if d.2 < -1e-12 {
            let t = -o.2 / d.2;
            if t > EPS {
                best = Some(Hit { t, normal: V3(0.0, 0.0, 1.0), surface: Surface::Ground });
            }
        }
        for (i, s) in self.solids.iter().enumerate() {
            let t_max = best.as_ref().map_or(f64::INFINITY, |h| h.t);
            if let Some((t, n)) = s.intersect(o, d, t_max) {
                best = Some(Hit { t, normal: n, surface: Surface::Object(i) });
            }
        }
        best
    }

    /// Share of the light cone blocked at `p`: 0 in full light, 1 in the umbra.
    fn shadow(&self, p: V3) -> f64 {
        // Only solids near the central light ray can block any ray of the cone (bounding
        // spheres widened by the cone's spread): most points test none, and nothing is
        // allocated on this per-ray path.
        let near = |s: &&Solid| {
            let c = s.center.sub(p);
            let t = c.dot(self.light);
            let reach = 1.75 * s.r.max(s.center.2) + 0.15 * t.max(0.0);
            t > -reach && c.dot(c) - t * t < reach * reach
        };
        if !self.solids.iter().any(|s| near(&s)) {
            return 0.0;
        }
        let blocked = self
            .light_samples
            .iter()
            .filter(|&&l| {
                self.solids.iter().filter(near).any(|s| s.intersect(p, l, f64::INFINITY).is_some())
            })
            .count();
        blocked as f64 / self.light_samples.len() as f64
    }

    /// What a ray that leaves the scene sees: the backdrop (the floor's light far away) and the
    /// area lamps, which metal objects show as bright patches (as in the real frames).
    fn sky(&self, o: V3, d: V3) -> V3 {
        let lamps = LAMPS.0 * d.dot(self.light).max(0.0).powi(LAMPS.1)
            + LAMPS.2 * d.dot(self.fill).max(0.0).powi(LAMPS.3)
            + SKY_UP * d.2.max(0.0);
        floor_light(&self.mean, o.add(d.mul(1e3))).add(V3(lamps, lamps, lamps))
    }

    /// Linear-light colour seen along a ray; `bounce` allows one mirror reflection.
    fn shade(&self, o: V3, d: V3, bounce: bool) -> V3 {
        let Some(hit) = self.trace(o, d) else { return self.sky(o, d) };
        let p = o.add(d.mul(hit.t)).add(hit.normal.mul(1e-6));
        let n = hit.normal;
        let lit = 1.0 - self.shadow(p);
        let (albedo, metal) = match hit.surface {
            Surface::Ground => return floor_light(&self.mean, p).mul(1.0 - SHADOW * (1.0 - lit)),
            Surface::Object(i) => (self.solids[i].albedo, self.solids[i].metal),
        };
        let diffuse =
            AMBIENT + KEY * lit * n.dot(self.light).max(0.0) + FILL * n.dot(self.fill).max(0.0);
        let half = self.light.sub(d).norm();
        let nh = n.dot(half).max(0.0);
        let m = usize::from(metal);
        let haze = V3(OBJECT_HAZE[m], OBJECT_HAZE[m], OBJECT_HAZE[m]);
        if !metal {
            let spec = 0.06 * lit * nh.powi(12);
            return albedo.mul(diffuse).add(V3(spec, spec, spec)).mul(OBJECT_GAIN[m]).add(haze);
        }
        let reflected = d.sub(n.mul(2.0 * d.dot(n)));
        let env = if bounce { self.shade(p, reflected, false) } else { self.sky(p, reflected) };
        let spec = 1.2 * lit * nh.powi(90);
        albedo
            .mul(0.25 * diffuse)
            .add(albedo.hadamard(env).mul(0.9))
            .add(V3(spec, spec, spec))
            .mul(OBJECT_GAIN[m])
            .add(haze)
    }

    /// Renders a `size`×`size` RGB8 frame the way the real ones were made: a 4:3 frame of
    /// `RENDER_SCALE`·size pixels across (320×240 for 64×64) with `ss`×`ss` samples per pixel,
    /// stored as 8 bits, then squashed to the square with a bilinear (triangle) filter as
    /// StoryGAN's loader resizes the originals.
    pub fn render(&self, size: u32, ss: u32) -> Vec<u8> {
        self.render_scaled(size, RENDER_SCALE, ss)
    }

    /// `render` from a 4:3 frame `scale`·size pixels across: a coarser, faster picture of the
    /// same view (for frames made in bulk during evaluation).
    pub fn render_scaled(&self, size: u32, scale: u32, ss: u32) -> Vec<u8> {
        let w = scale.max(1) * size;
        let h = ((w as f64 / super::scene::ASPECT).round() as u32).max(1);
        let wide =
            image::RgbImage::from_raw(w, h, self.render_raw(w, h, ss)).expect("w × h RGB pixels");
        image::imageops::resize(&wide, size, size, image::imageops::FilterType::Triangle).into_raw()
    }

    /// Renders a `w`×`h` RGB8 frame (the camera's 4:3 field of view stretched over it) with
    /// `ss`×`ss` samples per pixel.
    pub fn render_raw(&self, w: u32, h: u32, ss: u32) -> Vec<u8> {
        let k = ss as f64;
        let mut out = Vec::with_capacity((w * h * 3) as usize);
        for j in 0..h {
            for i in 0..w {
                let mut acc = V3(0.0, 0.0, 0.0);
                for b in 0..ss {
                    for a in 0..ss {
                        let u = (i as f64 + (a as f64 + 0.5) / k) / w as f64;
                        let v = (j as f64 + (b as f64 + 0.5) / k) / h as f64;
                        acc = acc.add(self.shade(self.eye, self.ray(u, v), true));
                    }
                }
                let c = acc.mul(1.0 / (k * k));
                for x in [c.0, c.1, c.2] {
                    out.push((x.clamp(0.0, 1.0).powf(1.0 / GAMMA) * 255.0).round() as u8);
                }
            }
        }
        out
    }

    /// For each object, the number of pixels of the `size`×`size` frame (sampled at their
    /// centres) where it is the first surface seen.
    pub fn visible_pixels(&self, size: u32) -> Vec<usize> {
        self.visibility(size).iter().map(|v| v.pixels).collect()
    }

    /// For each object, what of it a `size`×`size` frame shows: the pixels (sampled at their
    /// centres) where it is the first surface seen, and their centroid (x to the right, y
    /// downwards, pixel i's centre at i + ½, as `Camera::pixel` counts).
    pub fn visibility(&self, size: u32) -> Vec<Visible> {
        let mut sums = vec![(0usize, 0.0f64, 0.0f64); self.solids.len()];
        let n = size as f64;
        for j in 0..size {
            for i in 0..size {
                let (x, y) = (i as f64 + 0.5, j as f64 + 0.5);
                if let Some(Hit { surface: Surface::Object(k), .. }) =
                    self.trace(self.eye, self.ray(x / n, y / n))
                {
                    sums[k] = (sums[k].0 + 1, sums[k].1 + x, sums[k].2 + y);
                }
            }
        }
        sums.into_iter()
            .map(|(pixels, sx, sy)| Visible {
                pixels,
                centroid: (pixels > 0).then(|| [sx / pixels as f64, sy / pixels as f64]),
            })
            .collect()
    }
}

/// What a frame shows of one object (`Renderer::visibility`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Visible {
    pub pixels: usize,
    /// The visible pixels' mean position; none when none is visible.
    pub centroid: Option<[f64; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clevr::scene::Camera;

    fn obj(shape: usize, x: f64, y: f64) -> Object {
        Object { shape, color: 1, material: 0, size: 0, x, y, angle: 0.3 }
    }
    const CAM: Camera = Camera { jitter: [0.0; 3] };

    #[test]
    fn each_shape_is_hit_at_its_surface() {
        // Rays straight down onto each shape's top: the hit height is the top of the shape.
        for (shape, top) in [(0, 1.4), (1, 1.4), (2, 1.4)] {
            let s = Solid::new(&obj(shape, 1.0, -0.5));
            let (t, n) =
                s.intersect(V3(1.0, -0.5, 10.0), V3(0.0, 0.0, -1.0), f64::INFINITY).unwrap();
            assert!((10.0 - t - top).abs() < 1e-9, "shape {shape}: t = {t}");
            assert!((n.2 - 1.0).abs() < 1e-9);
            // A horizontal ray at mid height hits the side at distance 10 - r (sphere, cylinder).
            if shape != 0 {
                let (t, n) =
                    s.intersect(V3(-9.0, -0.5, 0.7), V3(1.0, 0.0, 0.0), f64::INFINITY).unwrap();
                assert!((t - (10.0 - 0.7)).abs() < 1e-9, "shape {shape}: t = {t}");
                assert!((n.0 + 1.0).abs() < 1e-9);
            }
            // A ray passing beside it misses.
            assert!(s.intersect(V3(-9.0, 2.0, 0.7), V3(1.0, 0.0, 0.0), f64::INFINITY).is_none());
        }
    }

    #[test]
    fn rotated_cube_is_hit_on_its_rotated_face() {
        let o = Object { angle: std::f64::consts::FRAC_PI_4, ..obj(0, 0.0, 0.0) };
        let s = Solid::new(&o);
        let h = o.cube_half_side();
        // Rotated 45°: a ray along x meets a vertical edge at distance h·√2 from the centre.
        let (t, _) = s.intersect(V3(-5.0, 0.0, h), V3(1.0, 0.0, 0.0), f64::INFINITY).unwrap();
        assert!((t - (5.0 - h * 2f64.sqrt())).abs() < 1e-9, "t = {t}");
    }

    #[test]
    fn shadows_fall_away_from_the_light() {
        let r = Renderer::new(&[obj(1, 0.0, 0.0)], &CAM);
        // Walk from the object's base away from the light along the ground: shadowed first.
        let away = V3(-r.light.0, -r.light.1, 0.0).norm();
        assert_eq!(r.shadow(V3(0.0, 0.0, 0.0).add(away.mul(0.9)).add(V3(0.0, 0.0, 1e-6))), 1.0);
        assert_eq!(r.shadow(V3(0.0, 0.0, 0.0).sub(away.mul(0.9)).add(V3(0.0, 0.0, 1e-6))), 0.0);
    }

    #[test]
    fn empty_scene_is_ground_and_objects_show_their_colour() {
        let size = 32;
        let empty = Renderer::new(&[], &CAM).render(size, 1);
        // With no objects, all is floor: nearly grey, brighter at the front (bottom) than at the
        // back, as the real frames' floor is (their median: ~150 at the bottom, ~105 at the top).
        let px = |x: u32, y: u32| &empty[((y * size + x) * 3) as usize..][..3];
        let (bottom, top) = (px(size / 2, size - 1), px(size / 2, 0));
        assert!(bottom[0].abs_diff(150) <= 12 && top[0].abs_diff(105) <= 12, "{bottom:?} {top:?}");
        assert!(
            bottom.iter().zip(top).all(|(b, t)| b > t) && bottom[0].abs_diff(bottom[2]) < 12,
            "{bottom:?} {top:?}"
        );
        let red = Renderer::new(&[obj(1, 0.0, 0.0)], &CAM).render(size, 2);
        // The pixel where the sphere's centre projects.
        let (u, v, _) = CAM.project([0.0, 0.0, 0.7]);
        let px = |w: f64| ((w + 1.0) / 2.0 * size as f64) as u32;
        let c = ((px(-v) * size + px(u)) * 3) as usize;
        assert!(red[c] > 2 * red[c + 1] && red[c] > 2 * red[c + 2], "{:?}", &red[c..c + 3]);
    }

    #[test]
    fn a_lone_objects_visible_centroid_is_where_its_centre_projects() {
        for (shape, x, y) in [(1, 0.0, 0.0), (0, 1.5, -1.0), (2, -2.0, 1.5)] {
            let o = obj(shape, x, y);
            let v = Renderer::new(&[o], &CAM).visibility(64)[0];
            let c = v.centroid.unwrap();
            let want = CAM.pixel([o.x, o.y, o.z()], 64.0);
            // The silhouette's centroid sits within a pixel of the projected centre (perspective
            // and the shapes' outlines shift it a little), and the count is the sum's.
            assert!((c[0] - want[0]).hypot(c[1] - want[1]) < 1.0, "{shape}: {c:?} vs {want:?}");
            assert_eq!(v.pixels, Renderer::new(&[o], &CAM).visible_pixels(64)[0]);
            assert!(v.pixels > 20);
        }
        assert_eq!(Renderer::new(&[], &CAM).visibility(8), vec![]);
    }

    #[test]
    fn visible_pixels_drop_when_occluded() {
        let far = obj(2, -1.5, 1.5);
        let alone = Renderer::new(&[far], &CAM).visible_pixels(64)[0];
        // A large cube between the camera and the cylinder hides part of it.
        let (_, behind) = CAM.ground_axes();
        let p = (far.x - 1.2 * behind[0], far.y - 1.2 * behind[1]);
        let blocker = Object { x: p.0, y: p.1, ..obj(0, 0.0, 0.0) };
        let both = Renderer::new(&[far, blocker], &CAM).visible_pixels(64);
        assert!(alone > 40, "alone = {alone}");
        assert!(both[0] < alone, "{both:?} vs {alone}");
        assert!(both[1] > 0);
    }
}
