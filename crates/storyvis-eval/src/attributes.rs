//! What the headline F1 hides: per-attribute accuracy (is the *shape* right, or only the
//! colour?), persistence (do the objects of earlier frames stay?) and seed diversity (does the
//! noise change the picture?). A model that draws the right colours and sizes with chance
//! shapes and materials scores a micro-F1 near 0.7 on CLEVR-SV; these columns say which.

use serde::{Deserialize, Serialize};
use storyvis_data::clevr::scene::{LABEL_LEN, SLOT_LEN};
use storyvis_data::dataset::StoryRecord;

/// Labels grouped by attribute: the part of a label's name before ':' ("shape:cube" →
/// "shape"), in order of first appearance; a name without ':' is its own group.
pub fn attribute_groups(label_names: &[String]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, name) in label_names.iter().enumerate() {
        let g = name.split_once(':').map_or(name.as_str(), |(g, _)| g);
        match groups.iter_mut().find(|(n, _)| n == g) {
            Some((_, members)) => members.push(i),
            None => groups.push((g.to_string(), vec![i])),
        }
    }
    groups
}

/// One attribute's accuracy: the share of frames whose predicted values of that attribute
/// (the set of shapes present, say) are exactly the true ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeAccuracy {
    pub attribute: String,
    pub accuracy: f64,
}

/// Per-attribute accuracy of `predictions` (frames × labels) against `truth` (the same, flat).
pub fn attribute_accuracy(
    predictions: &[Vec<bool>],
    truth: &[f32],
    groups: &[(String, Vec<usize>)],
) -> Vec<AttributeAccuracy> {
    let l = truth.len() / predictions.len().max(1);
    groups
        .iter()
        .map(|(name, members)| {
            let right = predictions
                .iter()
                .zip(truth.chunks(l))
                .filter(|(p, t)| members.iter().all(|&i| p[i] == (t[i] > 0.5)))
                .count();
            AttributeAccuracy {
                attribute: name.clone(),
                accuracy: right as f64 / predictions.len().max(1) as f64,
            }
        })
        .collect()
}

/// The labels of the object each frame of a CLEVR-SV story introduces (slot t of the story's
/// last frame vector, as the dataset encodes it), per story; `None` when the dataset's frames
/// carry no such slots (captioned images, other datasets).
pub fn introduced_objects(stories: &[&StoryRecord], labels: usize) -> Option<Vec<Vec<Vec<usize>>>> {
    if labels != LABEL_LEN {
        return None;
    }
    stories
        .iter()
        .map(|s| {
            let t = s.frames.len();
            let v = &s.frames.last()?.vector;
            (v.len() >= t * SLOT_LEN).then(|| {
                (0..t)
                    .map(|k| (0..LABEL_LEN).filter(|&i| v[k * SLOT_LEN + i] > 0.5).collect())
                    .collect()
            })
        })
        .collect::<Option<Vec<_>>>()
        .filter(|o: &Vec<Vec<Vec<usize>>>| {
            o.iter().all(|story| story.iter().all(|obj| !obj.is_empty()))
        })
}

/// Persistence as counts (kept, introduced): for every frame t ≥ 2 of every story and every
/// object introduced in frames 1..t−1, whether all of that object's labels (its shape, colour,
/// material and size) are still detected at frame t. `predictions` are frames in story order,
/// repeated per seed; `objects` per story (from [`introduced_objects`]).
pub fn persistence_counts(predictions: &[Vec<bool>], objects: &[Vec<Vec<usize>>]) -> (u64, u64) {
    let (mut kept, mut introduced) = (0, 0);
    let t = objects.first().map_or(1, Vec::len);
    for (i, story) in predictions.chunks(t).enumerate() {
        let objs = &objects[i % objects.len()];
        for (frame, p) in story.iter().enumerate().skip(1) {
            for obj in &objs[..frame] {
                introduced += 1;
                kept += u64::from(obj.iter().all(|&l| p[l]));
            }
        }
    }
    (kept, introduced)
}

/// Mean absolute difference in grey levels (0–255) between `a` and `b`, flat [0, 1] values of
/// equal length: how far apart two drawings are.
pub fn grey_level_difference(a: &[f32], b: &[f32]) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum();
    255.0 * sum / a.len().max(1) as f64
}

/// Seed diversity: the mean grey-level difference between the same frame drawn with seed k
/// and seed k + 1, over all frames and consecutive seed pairs; `pixels` holds K draws of
/// `per_seed` values each. `None` for a single seed.
pub fn seed_diversity(pixels: &[f32], per_seed: usize) -> Option<f64> {
    let draws: Vec<&[f32]> = pixels.chunks(per_seed).collect();
    (draws.len() >= 2).then(|| {
        draws.windows(2).map(|w| grey_level_difference(w[0], w[1])).sum::<f64>()
            / (draws.len() - 1) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        storyvis_data::clevr::scene::label_names()
    }

    #[test]
    fn groups_follow_the_label_names() {
        let g = attribute_groups(&names());
        let summary: Vec<(&str, Vec<usize>)> =
            g.iter().map(|(n, m)| (n.as_str(), m.clone())).collect();
        assert_eq!(
            summary,
            vec![
                ("shape", vec![0, 1, 2]),
                ("color", (3..11).collect()),
                ("material", vec![11, 12]),
                ("size", vec![13, 14])
            ]
        );
        assert_eq!(attribute_groups(&["smileys".into(), "animals".into()]).len(), 2);
    }

    #[test]
    fn attribute_accuracy_counts_frames_with_every_value_right() {
        let groups = attribute_groups(&["shape:a".into(), "shape:b".into(), "color:x".into()]);
        let truth = [1.0, 0.0, 1.0, /* */ 1.0, 1.0, 0.0, /* */ 0.0, 1.0, 1.0];
        let p = |v: [bool; 3]| v.to_vec();
        // Frame 1 right; frame 2 misses shape b, colour right; frame 3 shape right, colour wrong.
        let preds = vec![p([true, false, true]), p([true, false, false]), p([false, true, false])];
        let acc = attribute_accuracy(&preds, &truth, &groups);
        assert_eq!(
            acc,
            vec![
                AttributeAccuracy { attribute: "shape".into(), accuracy: 2.0 / 3.0 },
                AttributeAccuracy { attribute: "color".into(), accuracy: 2.0 / 3.0 }
            ]
        );
    }

    #[test]
    fn persistence_counts_earlier_objects_still_detected() {
        // One story of 3 frames over 4 labels: object 1 = labels {0, 2}, object 2 = {1, 3},
        // object 3 = {0, 3}.
        let objects = vec![vec![vec![0, 2], vec![1, 3], vec![0, 3]]];
        let p = |v: [bool; 4]| v.to_vec();
        // Frame 2 keeps object 1; frame 3 keeps object 2 but lost label 2 of object 1.
        let preds = vec![
            p([true, false, true, false]),
            p([true, true, true, true]),
            p([true, true, false, true]),
        ];
        assert_eq!(persistence_counts(&preds, &objects), (2, 3));
        // A second seed of the same story, where nothing stays: its objects are the same.
        let mut twice = preds.clone();
        twice.extend(vec![p([false; 4]); 3]);
        assert_eq!(persistence_counts(&twice, &objects), (2, 6));
    }

    #[test]
    fn diversity_is_the_grey_level_difference_between_seeds() {
        // Two seeds of 4 values: differ by 10/255 everywhere → 10 grey levels; three seeds
        // with the third equal to the second → (10 + 0) / 2.
        let a = [0.2f32; 4];
        let b = a.map(|x| x + 10.0 / 255.0);
        let two: Vec<f32> = a.iter().chain(&b).copied().collect();
        assert!((seed_diversity(&two, 4).unwrap() - 10.0).abs() < 1e-4);
        let three: Vec<f32> = two.iter().chain(&b).copied().collect();
        assert!((seed_diversity(&three, 4).unwrap() - 5.0).abs() < 1e-4);
        assert_eq!(seed_diversity(&a, 4), None);
    }
}
