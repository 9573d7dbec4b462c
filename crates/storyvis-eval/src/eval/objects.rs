//! Where drawn objects are: the object detector's findings on a frame against the frame's true
//! objects, and the relation its sentence states checked on the drawing, as GeNeVA-GAN's
//! evaluation does (El-Nouby et al., ICCV 2019, §5: precision, recall and F1 of detected
//! objects, and the relational similarity RSIM).
//!
//! Two matchings, each for what it measures:
//! - by place, for precision / recall / F1, per-object accuracy and the object count: a
//!   detection and a true object are the same object when their centres are at most
//!   `detector::MATCH_PIXELS` apart (Hungarian);
//! - by identity, for relations and RSIM: the true object is found in the drawing as the
//!   detection that names most of its attributes, colour and shape counting double, with at most
//!   one of the two wrong (GeNeVA finds objects by its 24 shape-and-colour classes; one of the two
//!   may miss here so that a model's lumpy shapes, which the shape columns already count, do not
//!   hide where it put the object), so that an object drawn in the wrong place is found, and its
//!   place judged.
//!
//! Places are compared on the ground, as CLEVR's relations are defined: each centre is taken
//! back to the ground plane at the height of its object's radius by the mean camera
//! (`Camera::unproject`; a drawing's camera is unknown), then read on the camera's right and
//! behind axes. In the image, a large object's centre stands higher than a small one's at the
//! same depth, and perspective can swap left and right for objects at different depths.

use crate::detector::Detection;
use anyhow::{Context, Result};
use serde::Serialize;
use storyvis_data::clevr::scene::{Camera, RADII};
use storyvis_data::clevr::sentence::{Attributes, Relation, Stated};
use storyvis_data::dataset::FrameObject;
use tch::Tensor;

/// The frame side the centres are in.
const SIZE: f64 = crate::detector::SIZE as f64;

/// The camera every place is read with.
fn camera() -> Camera {
    Camera { jitter: [0.0; 3] }
}

/// (right, behind) on the ground of a centre (64×64 pixels) of an object of size class `size`.
pub fn ground(centre: [f32; 2], size: u8) -> Option<[f64; 2]> {
    let cam = camera();
    let [x, y] = cam.unproject([centre[0] as f64, centre[1] as f64], SIZE, RADII[size as usize])?;
    let (r, b) = cam.to_view(x, y);
    Some([r, b])
}

/// Whether the ground places (right, behind) `a` and `b` stand in `relation`.
pub fn holds(relation: Relation, a: [f64; 2], b: [f64; 2]) -> bool {
    match relation {
        Relation::LeftOf => a[0] < b[0],
        Relation::RightOf => a[0] > b[0],
        Relation::Behind => a[1] > b[1],
        Relation::InFrontOf => a[1] < b[1],
    }
}

/// Each true object's detection by identity, or none: the assignment that finds the most true
/// objects and, among those, names the most of their attributes (a wrong shape or colour costs
/// 2, a wrong material or size 1, at most 2 in all: one of shape and colour may be wrong; the
/// distance, in 200-pixel units and at most 0.4, only breaks ties).
pub fn find_by_identity(truth: &[FrameObject], found: &[Detection]) -> Vec<Option<usize>> {
    const GATE: f64 = 2.5;
    const WEIGHTS: [f64; 4] = [2.0, 2.0, 1.0, 1.0];
    let cost: Vec<f64> = truth
        .iter()
        .flat_map(|t| {
            found.iter().map(move |d| {
                let wrong: f64 = (0..4)
                    .map(|k| WEIGHTS[k] * (t.attributes[k] != d.attributes[k]) as u8 as f64)
                    .sum();
                // At most 0.4 (half the smallest step of `wrong`): it never decides whether an
                // object is found, only which detection.
                wrong
                    + (((t.centre[0] - d.centre[0]) as f64)
                        .hypot((t.centre[1] - d.centre[1]) as f64)
                        / 200.0)
                        .min(0.4)
            })
        })
        .collect();
    let mut out = vec![None; truth.len()];
    for (i, j) in
        storyvis_metrics::match_within(&cost, truth.len(), found.len(), GATE).expect("finite costs")
    {
        out[i] = Some(j);
    }
    out
}

/// GeNeVA's relational similarity of one frame: the recall of its true objects (found by
/// identity) times the share of their pairwise relations the drawing keeps, each pair compared
/// on both ground axes and each object also against the scene's centre (GeNeVA compares every
/// object with the image's centre on the diagonal of its relation matrix); 0 when none is found.
/// `truth[i]` and `drawn[i]`: object i's true ground place and its drawn one, if found.
pub fn relational_similarity(truth: &[[f64; 2]], drawn: &[Option<[f64; 2]>]) -> f64 {
    let found: Vec<usize> = (0..truth.len()).filter(|&i| drawn[i].is_some()).collect();
    if truth.is_empty() || found.is_empty() {
        return 0.0;
    }
    let sign = |a: f64, b: f64| (a > b) as i8 - (a < b) as i8;
    let (mut kept, mut all) = (0usize, 0usize);
    for &i in &found {
        for &j in &found {
            let (ti, di) = (truth[i], drawn[i].expect("found"));
            // The diagonal: the object against the scene's centre (the origin of the ground).
            let (tj, dj) =
                if i == j { ([0.0; 2], [0.0; 2]) } else { (truth[j], drawn[j].expect("found")) };
            for axis in 0..2 {
                kept += (sign(ti[axis], tj[axis]) == sign(di[axis], dj[axis])) as usize;
                all += 1;
            }
        }
    }
    found.len() as f64 / truth.len() as f64 * kept as f64 / all as f64
}

/// The object columns of one row of `eval`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ObjectScores {
    /// Detections against true objects matched by place (`detector::score`).
    #[serde(flatten)]
    pub placed: crate::detector::DetectionScores,
    /// Of the relations the frames' sentences state, the share the drawing keeps (both named
    /// objects found by identity, standing as stated); absent when no sentence states one.
    pub relation_accuracy: Option<f64>,
    /// Relations checked.
    pub relations: usize,
    /// GeNeVA's RSIM, averaged over frames.
    pub rsim: f64,
}

/// The object columns of drawn frames: `truth[n]` frame n's true objects (centres in 64×64
/// pixels), `stated[n]` the relation its sentence states if any, `found[n]` the detections.
pub fn object_scores(
    truth: &[Vec<FrameObject>],
    stated: &[Option<Stated>],
    found: &[Vec<Detection>],
) -> Result<ObjectScores> {
    let placed = crate::detector::score(truth, found)?;
    let (mut kept, mut relations, mut rsim) = (0usize, 0usize, 0.0);
    for ((t, s), d) in truth.iter().zip(stated).zip(found) {
        let by_identity = find_by_identity(t, d);
        let true_places: Vec<[f64; 2]> =
            t.iter().map(|o| ground(o.centre, o.attributes[3]).unwrap_or([f64::NAN; 2])).collect();
        let drawn: Vec<Option<[f64; 2]>> = by_identity
            .iter()
            .map(|j| j.and_then(|j| ground(d[j].centre, d[j].attributes[3])))
            .collect();
        rsim += relational_similarity(&true_places, &drawn);
        if let Some(s) = s {
            relations += 1;
            let named = |a: Attributes| {
                t.iter()
                    .enumerate()
                    .filter(move |(_, o)| {
                        o.attributes
                            == [a.shape as u8, a.color as u8, a.material as u8, a.size as u8]
                    })
                    .map(|(k, _)| k)
            };
            // Two objects alike in every attribute: the subject is the later one (the object a
            // story's frame adds is its last), the anchor another.
            let pair = named(s.subject)
                .rev()
                .find_map(|i| named(s.anchor).find(|&j| j != i).map(|j| (i, j)));
            if let Some((i, j)) = pair {
                if let (Some(a), Some(b)) = (drawn[i], drawn[j]) {
                    kept += holds(s.relation, a, b) as usize;
                }
            }
        }
    }
    let frames = truth.len().max(1) as f64;
    Ok(ObjectScores {
        placed,
        relation_accuracy: (relations > 0).then(|| kept as f64 / relations as f64),
        relations,
        rsim: rsim / frames,
    })
}

#[cfg(test)]
mod tests;

/// The name of the floor row whose frames hold the right objects in random places.
pub const RANDOM_PLACES: &str = "floor: right objects, random places";

/// Frames that draw each frame's own objects at random places (placed as a story's are, seen by
/// the mean camera, rendered from a 4:3 frame twice the side across): what relation accuracy
/// and RSIM are worth by chance, with the right objects. `objects[n]`: frame n's. [N, 3, 64, 64]
/// in [−1, 1]; the same frames for the same objects and seed.
pub fn random_places(objects: &[Vec<FrameObject>], seed: u64) -> Result<Tensor> {
    use rayon::prelude::*;
    use storyvis_data::clevr::render::Renderer;
    use storyvis_data::clevr::scene::{place, Placement};
    let cam = camera();
    let side = SIZE as u32;
    let pixels: Vec<Vec<u8>> = objects
        .par_iter()
        .enumerate()
        .map(|(n, objs)| {
            let attributes: Vec<[u8; 4]> = objs.iter().map(|o| o.attributes).collect();
            let mut rng = storyvis_data::rng::Rng::for_item(seed, n as u64);
            let placed = place(&attributes, &cam, &Placement::default(), &mut rng)
                .with_context(|| format!("frame {n}'s {} objects find no places", objs.len()))?;
            Ok(Renderer::new(&placed, &cam).render_scaled(side, 2, 1))
        })
        .collect::<Result<_>>()?;
    let flat: Vec<u8> = pixels.concat();
    let hwc = Tensor::from_slice(&flat).view([objects.len() as i64, SIZE as i64, SIZE as i64, 3]);
    Ok(storyvis_core::data::to_unit(&hwc.permute([0, 3, 1, 2])))
}
