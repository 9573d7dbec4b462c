//! English sentences for CLEVR-SV frames.
//!
//! Each frame's sentence describes the object that frame adds: its size, colour, material and
//! shape, and where it is, relative to a randomly chosen earlier object (or, in the first
//! frame, to the scene). Relations are CLEVR's four, measured on the camera's ground axes.
//! Wording varies between a few templates; attribute words are always the canonical ones
//! (SHAPES, COLORS, ...) so every sentence is parseable back into attributes.

use super::scene::{Camera, Object};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    LeftOf,
    RightOf,
    Behind,
    InFrontOf,
}

impl Relation {
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::Behind => "behind",
            Relation::InFrontOf => "in front of",
        }
    }

    /// Whether `a` stands in this relation to `b`, seen from `camera`.
    pub fn holds(self, a: &Object, b: &Object, camera: &Camera) -> bool {
        let (ar, ab) = camera.to_view(a.x, a.y);
        let (br, bb) = camera.to_view(b.x, b.y);
        match self {
            Relation::LeftOf => ar < br,
            Relation::RightOf => ar > br,
            Relation::Behind => ab > bb,
            Relation::InFrontOf => ab < bb,
        }
    }
}

/// A generated sentence and what it asserts, so that tests (and callers) can check it.
#[derive(Clone, Debug, PartialEq)]
pub struct Caption {
    pub text: String,
    /// Index of the earlier object the new one is related to (None in the first frame).
    pub anchor: Option<usize>,
    pub relation: Option<Relation>,
}

/// Where a lone object stands in the view: "at the back on the left of the scene".
fn scene_region(o: &Object, camera: &Camera) -> &'static str {
    let (r, b) = camera.to_view(o.x, o.y);
    let lateral = if r < -1.0 {
        0
    } else if r > 1.0 {
        2
    } else {
        1
    };
    let depth = if b < -1.0 {
        0
    } else if b > 1.0 {
        2
    } else {
        1
    };
    const REGIONS: [[&str; 3]; 3] = [
        // depth: front, middle, back; lateral: left, centre, right
        ["at the front left of the scene", "at the front of the scene", "at the front right of the scene"],
        ["on the left of the scene", "in the middle of the scene", "on the right of the scene"],
        ["at the back left of the scene", "at the back of the scene", "at the back right of the scene"],
    ];
    REGIONS[depth][lateral]
}

/// The sentence for frame `t` (0-based) of a story whose objects appear in order.
pub fn caption(objects: &[Object], t: usize, camera: &Camera, rng: &mut Rng) -> Caption {
    let new = &objects[t];
    let a = format!("a {}", new.noun_phrase());
    if t == 0 {
        let region = scene_region(new, camera);
        let text = match rng.below(3) {
            0 => format!("there is {a} {region}."),
            1 => format!("{a} stands {region}."),
            _ => format!("the story begins with {a} {region}."),
        };
        return Caption { text, anchor: None, relation: None };
    }
    let anchor = rng.below(t);
    let other = &objects[anchor];
    // Placement keeps every pair apart on both axes, so both candidate relations are true.
    let (nr, nb) = camera.to_view(new.x, new.y);
    let (or, ob) = camera.to_view(other.x, other.y);
    let relation = if rng.below(2) == 0 {
        if nr < or {
            Relation::LeftOf
        } else {
            Relation::RightOf
        }
    } else if nb > ob {
        Relation::Behind
    } else {
        Relation::InFrontOf
    };
    let rel = relation.phrase();
    let b = format!("the {}", other.noun_phrase());
    let text = match rng.below(6) {
        0 => format!("{a} is {rel} {b}."),
        1 => format!("there is {a} {rel} {b}."),
        2 => format!("{a} appears {rel} {b}."),
        3 => format!("next, {a} is placed {rel} {b}."),
        4 => format!("{rel} {b} there is now {a}."),
        _ => format!("someone adds {a} {rel} {b}."),
    };
    Caption { text, anchor: Some(anchor), relation: Some(relation) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clevr::scene::{Placement, Story, COLORS, FRAMES, MATERIALS, SHAPES, SIZES};

    #[test]
    fn sentences_name_the_added_object_and_a_true_relation() {
        let mut templates = std::collections::HashSet::new();
        for i in 0..300 {
            let mut rng = Rng::for_item(11, i);
            let s = Story::sample(&mut rng, &Placement::default()).unwrap();
            for t in 0..FRAMES {
                let c = caption(&s.objects, t, &s.camera, &mut rng);
                let o = &s.objects[t];
                let phrase = format!("a {} {} {} {}", SIZES[o.size], COLORS[o.color], MATERIALS[o.material], SHAPES[o.shape]);
                assert!(c.text.contains(&phrase), "{:?} lacks {phrase}", c.text);
                assert!(c.text.ends_with('.') && !c.text[..c.text.len() - 1].contains('.'));
                match (t, c.anchor, c.relation) {
                    (0, None, None) => assert!(c.text.contains("of the scene")),
                    (_, Some(k), Some(rel)) => {
                        assert!(k < t);
                        let other = &s.objects[k];
                        assert!(c.text.contains(&format!("the {}", other.noun_phrase())));
                        assert!(c.text.contains(rel.phrase()));
                        assert!(rel.holds(o, other, &s.camera), "{:?}", c.text);
                    }
                    other => panic!("frame {t}: {other:?}"),
                }
                // The sentence with attribute words and relations blanked out: its template.
                let mut pattern = c.text.clone();
                for w in SHAPES.iter().chain(&COLORS).chain(&MATERIALS).chain(&SIZES) {
                    pattern = pattern.replace(w, "_");
                }
                for r in [Relation::LeftOf, Relation::RightOf, Relation::Behind, Relation::InFrontOf] {
                    pattern = pattern.replace(r.phrase(), "REL");
                }
                templates.insert(pattern);
            }
        }
        assert!(templates.len() >= 9, "little variety: {templates:?}");
    }

    #[test]
    fn relations_follow_the_camera_axes() {
        let cam = Camera { jitter: [0.0; 3] };
        let (right, behind) = cam.ground_axes();
        let base = Object { shape: 0, color: 0, material: 0, size: 0, x: 0.0, y: 0.0, angle: 0.0 };
        let at = |dx: f64, dy: f64| Object { x: dx, y: dy, ..base };
        let r = at(right[0], right[1]);
        let b = at(behind[0], behind[1]);
        assert!(Relation::RightOf.holds(&r, &base, &cam) && !Relation::LeftOf.holds(&r, &base, &cam));
        assert!(Relation::Behind.holds(&b, &base, &cam) && !Relation::InFrontOf.holds(&b, &base, &cam));
        // "behind" points away from the camera: the camera stands in front of the origin.
        let p = cam.position();
        assert!(Relation::InFrontOf.holds(&at(p[0] * 0.1, p[1] * 0.1), &base, &cam));
    }
}
