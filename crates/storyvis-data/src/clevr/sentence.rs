//! English sentences for CLEVR-SV frames.
//!
//! Each frame's sentence describes the object that frame adds: its size, colour, material and
//! shape, and where it is, relative to a randomly chosen earlier object (or, in the first
//! frame, to the scene). Relations are CLEVR's four, measured on the camera's ground axes.
//! Wording varies between a few templates; attribute words are always the canonical ones
//! (SHAPES, COLORS, ...) so every sentence is parseable back into attributes.
//!
//! `Phrasing::Paraphrase` words the same sentences (the same random draws: template, anchor,
//! relation) in words the standard templates never use, for testing whether a model
//! understands words it never trained on: "a big red shiny ball" for "a large red metal
//! sphere", other relation and region phrases, other templates. Colours, "left" and "right" keep
//! their names (no everyday synonyms).

use super::scene::{Camera, Object, COLORS, MATERIALS, SHAPES, SIZES};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// How sentences are worded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Phrasing {
    /// The training templates and CLEVR's attribute words.
    #[default]
    Standard,
    /// The same sentences in other words (see the module header).
    Paraphrase,
}

/// Paraphrase words for SIZES, MATERIALS and SHAPES, index for index.
pub const PARAPHRASE_SIZES: [&str; 2] = ["big", "tiny"];
pub const PARAPHRASE_MATERIALS: [&str; 2] = ["matte", "shiny"];
pub const PARAPHRASE_SHAPES: [&str; 3] = ["block", "ball", "tube"];

impl Phrasing {
    /// "large red metal sphere" or "big red shiny ball".
    pub fn noun_phrase(self, o: &Object) -> String {
        match self {
            Phrasing::Standard => o.noun_phrase(),
            Phrasing::Paraphrase => {
                format!(
                    "{} {} {} {}",
                    PARAPHRASE_SIZES[o.size],
                    COLORS[o.color],
                    PARAPHRASE_MATERIALS[o.material],
                    PARAPHRASE_SHAPES[o.shape]
                )
            }
        }
    }

    pub fn relation(self, r: Relation) -> &'static str {
        match (self, r) {
            (Phrasing::Standard, r) => r.phrase(),
            (Phrasing::Paraphrase, Relation::LeftOf) => "on the left side of",
            (Phrasing::Paraphrase, Relation::RightOf) => "on the right side of",
            (Phrasing::Paraphrase, Relation::Behind) => "farther away than",
            (Phrasing::Paraphrase, Relation::InFrontOf) => "closer to us than",
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
fn scene_region(o: &Object, camera: &Camera, phrasing: Phrasing) -> &'static str {
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
        [
            "at the front left of the scene",
            "at the front of the scene",
            "at the front right of the scene",
        ],
        ["on the left of the scene", "in the middle of the scene", "on the right of the scene"],
        [
            "at the back left of the scene",
            "at the back of the scene",
            "at the back right of the scene",
        ],
    ];
    const PARAPHRASED: [[&str; 3]; 3] = [
        ["in the near left corner", "close to us in the centre", "in the near right corner"],
        [
            "on the left side of the picture",
            "in the centre of the picture",
            "on the right side of the picture",
        ],
        ["in the far left corner", "far away in the centre", "in the far right corner"],
    ];
    match phrasing {
        Phrasing::Standard => REGIONS[depth][lateral],
        Phrasing::Paraphrase => PARAPHRASED[depth][lateral],
    }
}

/// The sentence for frame `t` (0-based) of a story whose objects appear in order.
pub fn caption(objects: &[Object], t: usize, camera: &Camera, rng: &mut Rng) -> Caption {
    caption_in(Phrasing::Standard, objects, t, camera, rng)
}

/// `caption` worded by `phrasing` (the same random draws whatever the phrasing).
pub fn caption_in(
    phrasing: Phrasing,
    objects: &[Object],
    t: usize,
    camera: &Camera,
    rng: &mut Rng,
) -> Caption {
    let new = &objects[t];
    let a = format!("a {}", phrasing.noun_phrase(new));
    let standard = phrasing == Phrasing::Standard;
    if t == 0 {
        let region = scene_region(new, camera, phrasing);
        let text = match (rng.below(3), standard) {
            (0, true) => format!("there is {a} {region}."),
            (1, true) => format!("{a} stands {region}."),
            (_, true) => format!("the story begins with {a} {region}."),
            (0, false) => format!("we see {a} {region}."),
            (1, false) => format!("{a} sits {region}."),
            (_, false) => format!("the tale opens with {a} {region}."),
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
    let rel = phrasing.relation(relation);
    let b = format!("the {}", phrasing.noun_phrase(other));
    let text = match (rng.below(6), standard) {
        (0, true) => format!("{a} is {rel} {b}."),
        (1, true) => format!("there is {a} {rel} {b}."),
        (2, true) => format!("{a} appears {rel} {b}."),
        (3, true) => format!("next, {a} is placed {rel} {b}."),
        (4, true) => format!("{rel} {b} there is now {a}."),
        (_, true) => format!("someone adds {a} {rel} {b}."),
        (0, false) => format!("{a} sits {rel} {b}."),
        (1, false) => format!("we see {a} {rel} {b}."),
        (2, false) => format!("{a} shows up {rel} {b}."),
        (3, false) => format!("then {a} gets put {rel} {b}."),
        (4, false) => format!("{rel} {b} we also find {a}."),
        (_, false) => format!("somebody drops {a} {rel} {b}."),
    };
    Caption { text, anchor: Some(anchor), relation: Some(relation) }
}

/// An object's four attributes, as indices into SHAPES, COLORS, MATERIALS and SIZES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub shape: usize,
    pub color: usize,
    pub material: usize,
    pub size: usize,
}

impl Attributes {
    pub fn of(o: &Object) -> Attributes {
        Attributes { shape: o.shape, color: o.color, material: o.material, size: o.size }
    }
}

/// A relation a sentence states: `subject` stands in `relation` to `anchor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stated {
    pub subject: Attributes,
    pub relation: Relation,
    pub anchor: Attributes,
}

const RELATIONS: [Relation; 4] =
    [Relation::LeftOf, Relation::RightOf, Relation::Behind, Relation::InFrontOf];

/// The relation a sentence states between two objects it names in full ("a SIZE COLOR
/// MATERIAL SHAPE", in the standard or the paraphrase words), read back from the words of
/// either phrasing: the relation phrase, "the" and the anchor's noun phrase after it, and the
/// subject, the nearest "a …" noun phrase before the phrase or, where the sentence puts the
/// relation first ("to the left of the X there is now a Y."), the first one after the anchor.
/// None for a sentence without one (a first frame's region: "on the left side of the picture"
/// is no relation, since "the picture" names no object).
pub fn stated_relation(text: &str) -> Option<Stated> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '.' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    // The four words of a noun phrase starting at i.
    let noun = |i: usize| -> Option<Attributes> {
        let w = lower.get(i..i + 4)?;
        let find = |standard: &[&str], paraphrase: &[&str], w: &str| {
            standard
                .iter()
                .position(|s| *s == w)
                .or_else(|| paraphrase.iter().position(|s| *s == w))
        };
        Some(Attributes {
            size: find(&SIZES, &PARAPHRASE_SIZES, w[0])?,
            color: COLORS.iter().position(|c| *c == w[1])?,
            material: find(&MATERIALS, &PARAPHRASE_MATERIALS, w[2])?,
            shape: find(&SHAPES, &PARAPHRASE_SHAPES, w[3])?,
        })
    };
    let article = |i: usize, a: &str| lower.get(i) == Some(&a);
    for start in 0..lower.len() {
        for phrasing in [Phrasing::Standard, Phrasing::Paraphrase] {
            for relation in RELATIONS {
                let phrase: Vec<&str> = phrasing.relation(relation).split(' ').collect();
                if lower.get(start..start + phrase.len()) != Some(&phrase[..]) {
                    continue;
                }
                let after = start + phrase.len();
                let Some(anchor) = article(after, "the").then(|| noun(after + 1)).flatten() else {
                    continue;
                };
                let before =
                    (0..start).rev().find_map(|i| article(i, "a").then(|| noun(i + 1)).flatten());
                let subject = before.or_else(|| {
                    (after + 5..lower.len())
                        .find_map(|i| article(i, "a").then(|| noun(i + 1)).flatten())
                });
                if let Some(subject) = subject {
                    return Some(Stated { subject, relation, anchor });
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clevr::scene::{Placement, Story, FRAMES};

    #[test]
    fn sentences_name_the_added_object_and_a_true_relation() {
        let mut templates = std::collections::HashSet::new();
        for i in 0..300 {
            let mut rng = Rng::for_item(11, i);
            let s = Story::sample(&mut rng, &Placement::default()).unwrap();
            for t in 0..FRAMES {
                let c = caption(&s.objects, t, &s.camera, &mut rng);
                let o = &s.objects[t];
                let phrase = format!(
                    "a {} {} {} {}",
                    SIZES[o.size], COLORS[o.color], MATERIALS[o.material], SHAPES[o.shape]
                );
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
                for r in
                    [Relation::LeftOf, Relation::RightOf, Relation::Behind, Relation::InFrontOf]
                {
                    pattern = pattern.replace(r.phrase(), "REL");
                }
                templates.insert(pattern);
            }
        }
        assert!(templates.len() >= 9, "little variety: {templates:?}");
    }

    #[test]
    fn paraphrases_draw_alike_and_share_no_attribute_or_template_word_with_the_standard() {
        let word_set = |texts: &[String]| -> std::collections::HashSet<String> {
            texts
                .iter()
                .flat_map(|t| {
                    t.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (mut standard, mut paraphrased) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let s = Story::sample(&mut Rng::for_item(11, i), &Placement::default()).unwrap();
            let (mut r1, mut r2) = (Rng::for_item(5, i), Rng::for_item(5, i));
            for t in 0..FRAMES {
                let c = caption(&s.objects, t, &s.camera, &mut r1);
                let p = caption_in(Phrasing::Paraphrase, &s.objects, t, &s.camera, &mut r2);
                // The same draws: the same anchor and relation, and the generators stay in step.
                assert_eq!((c.anchor, c.relation), (p.anchor, p.relation));
                let o = &s.objects[t];
                assert!(
                    p.text.contains(&format!("a {}", Phrasing::Paraphrase.noun_phrase(o))),
                    "{:?}",
                    p.text
                );
                if let (Some(k), Some(rel)) = (p.anchor, p.relation) {
                    assert!(
                        p.text.contains(&format!(
                            "the {}",
                            Phrasing::Paraphrase.noun_phrase(&s.objects[k])
                        )),
                        "{:?}",
                        p.text
                    );
                    assert!(p.text.contains(Phrasing::Paraphrase.relation(rel)));
                }
                standard.push(c.text);
                paraphrased.push(p.text);
            }
            assert_eq!(r1.next_u64(), r2.next_u64());
        }
        let (sw, pw) = (word_set(&standard), word_set(&paraphrased));
        // The words both wordings use: the colours, "left" and "right" (no everyday synonym),
        // and function words; nothing else.
        let mut shared: Vec<&str> = sw.intersection(&pw).map(String::as_str).collect();
        shared.sort_unstable();
        let mut allowed: Vec<&str> = COLORS.to_vec();
        allowed.extend(["a", "in", "left", "of", "on", "right", "the", "to", "with"]);
        allowed.sort_unstable();
        assert_eq!(shared, allowed);
        // No size, material or shape word of the standard wording, and no content word of its
        // templates, appears in a paraphrase.
        for w in SHAPES.iter().chain(&MATERIALS).chain(&SIZES).chain(&[
            "stands", "begins", "story", "scene", "appears", "placed", "adds", "someone", "next",
            "behind", "front",
        ]) {
            assert!(sw.contains(*w), "{w} is not a standard word");
            assert!(!pw.contains(*w), "a paraphrase says {w:?}");
        }
        for w in PARAPHRASE_SHAPES.iter().chain(&PARAPHRASE_MATERIALS).chain(&PARAPHRASE_SIZES) {
            assert!(pw.contains(*w) && !sw.contains(*w), "{w}");
        }
    }

    #[test]
    fn relations_follow_the_camera_axes() {
        let cam = Camera { jitter: [0.0; 3] };
        let (right, behind) = cam.ground_axes();
        let base = Object { shape: 0, color: 0, material: 0, size: 0, x: 0.0, y: 0.0, angle: 0.0 };
        let at = |dx: f64, dy: f64| Object { x: dx, y: dy, ..base };
        let r = at(right[0], right[1]);
        let b = at(behind[0], behind[1]);
        assert!(
            Relation::RightOf.holds(&r, &base, &cam) && !Relation::LeftOf.holds(&r, &base, &cam)
        );
        assert!(
            Relation::Behind.holds(&b, &base, &cam) && !Relation::InFrontOf.holds(&b, &base, &cam)
        );
        // "behind" points away from the camera: the camera stands in front of the origin.
        let p = cam.position();
        assert!(Relation::InFrontOf.holds(&at(p[0] * 0.1, p[1] * 0.1), &base, &cam));
    }

    #[test]
    fn the_stated_relation_is_read_back_from_every_template_in_both_phrasings() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..400 {
            let s = Story::sample(&mut Rng::for_item(13, i), &Placement::default()).unwrap();
            for phrasing in [Phrasing::Standard, Phrasing::Paraphrase] {
                let mut rng = Rng::for_item(17, i);
                for t in 0..FRAMES {
                    let c = caption_in(phrasing, &s.objects, t, &s.camera, &mut rng);
                    let got = stated_relation(&c.text);
                    match (c.anchor, c.relation) {
                        (Some(k), Some(relation)) => {
                            let want = Stated {
                                subject: Attributes::of(&s.objects[t]),
                                relation,
                                anchor: Attributes::of(&s.objects[k]),
                            };
                            assert_eq!(got, Some(want), "{:?}", c.text);
                            seen.insert((
                                phrasing,
                                relation,
                                c.text.starts_with(phrasing.relation(relation)),
                            ));
                        }
                        _ => assert_eq!(got, None, "{:?}", c.text),
                    }
                }
            }
        }
        // Both phrasings, all four relations, each with the relation first and after the subject.
        assert_eq!(seen.len(), 2 * 4 * 2, "{seen:?}");
    }

    #[test]
    fn region_phrases_and_plain_lists_state_no_relation() {
        let cam = Camera { jitter: [0.0; 3] };
        for (lateral, behind) in [(-2.0, -2.0), (0.0, 0.0), (2.0, 2.0), (-2.0, 0.0), (2.0, 0.0)] {
            let (r, b) = cam.ground_axes();
            let o = Object {
                shape: 1,
                color: 2,
                material: 0,
                size: 1,
                x: lateral * r[0] + behind * b[0],
                y: lateral * r[1] + behind * b[1],
                angle: 0.0,
            };
            for phrasing in [Phrasing::Standard, Phrasing::Paraphrase] {
                let region = scene_region(&o, &cam, phrasing);
                let text = format!("a {} {region}.", phrasing.noun_phrase(&o));
                assert_eq!(stated_relation(&text), None, "{text:?}");
            }
        }
        assert_eq!(stated_relation("a large red metal cube and a small blue rubber sphere."), None);
        // An anchor named in part is not read.
        assert_eq!(stated_relation("a large red metal cube to the left of the blue sphere."), None);
        let cube = Attributes { shape: 0, color: 1, material: 1, size: 0 };
        let ball = Attributes { shape: 1, color: 2, material: 0, size: 1 };
        assert_eq!(
            stated_relation("A large red metal cube, to the left of the small blue rubber sphere, with a small gray metal cylinder."),
            Some(Stated { subject: cube, relation: Relation::LeftOf, anchor: ball })
        );
    }
}
