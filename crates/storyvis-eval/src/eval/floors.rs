//! Floor rows: what a model that draws nothing of the story would score. On CLEVR-SV a flat
//! grey frame beats every trained model on SSIM, so a table without floors ranks nothing; a
//! model's row means something only where it clears them.
//!
//! - flat mean colour: every frame one colour, the training frames' mean;
//! - mean frame: every frame the training frames' per-pixel mean (an empty-looking scene);
//! - previous frame: frame t is the ground truth of frame t − 1 (frame 1 the mean frame),
//!   a perfect drawing one step late (stories only).

use super::Reference;
use crate::classifier::at_size;
use anyhow::Result;
use storyvis_core::data::{load_images, to_unit};
use storyvis_data::dataset::{Dataset, Split, StoryRecord};
use tch::{Kind, Tensor};

/// Training stories the means are taken over (the first ones of the split).
const MEAN_STORIES: usize = 1000;

/// The floors' frames, each [N·T, 3, 64, 64] in [−1, 1] like the held-out stories of
/// `reference` they stand in for, with their row names.
pub fn floor_frames(
    ds: &Dataset,
    stories: &[&StoryRecord],
    reference: &Reference,
) -> Result<Vec<(&'static str, Tensor)>> {
    let t = ds.header.frames_per_story as i64;
    // The means come from the training split; a dataset without one uses the held-out frames.
    let mut train: Vec<&StoryRecord> = ds.split(Split::Train).take(MEAN_STORIES).collect();
    if train.is_empty() {
        train = stories.to_vec();
    }
    // The mean frame [1, 3, 64, 64], summed 100 stories at a time (large frames stay bounded).
    let mut sum: Option<Tensor> = None;
    for chunk in train.chunks(100) {
        let part = to_unit(&at_size(&load_images(ds, chunk)?.flatten(0, 1))).sum_dim_intlist(
            0,
            true,
            Kind::Float,
        );
        sum = Some(match sum {
            Some(s) => s + part,
            None => part,
        });
    }
    let mean = sum.expect("at least one story") / (train.len() as f64 * t as f64);
    Ok(floors_of(&reference.frames(), &mean, t))
}

/// The floors for ground-truth frames `truth` [N·T, 3, H, W] (stories in order) and the mean
/// frame `mean` [1, 3, H, W].
pub fn floors_of(truth: &Tensor, mean: &Tensor, t: i64) -> Vec<(&'static str, Tensor)> {
    let n = truth.size()[0];
    let colour = mean.mean_dim([2i64, 3].as_slice(), true, Kind::Float).expand_as(mean);
    let mut floors = vec![
        ("floor: flat mean colour", colour.expand_as(truth).contiguous()),
        ("floor: mean frame", mean.expand_as(truth).contiguous()),
    ];
    if t >= 2 {
        let stories = truth.view([n / t, t, truth.size()[1], truth.size()[2], truth.size()[3]]);
        let first = mean.unsqueeze(0).expand([n / t, 1, -1, -1, -1], false);
        let late = Tensor::cat(&[first, stories.narrow(1, 0, t - 1)], 1);
        floors.push(("floor: previous frame", late.flatten(0, 1).contiguous()));
    }
    floors
}

/// Micro-F1 on the evaluated real frames this far below the classifier's own held-out score
/// means the frames are unlike those it was trained on.
pub const WARN_GAP: f64 = 0.05;

/// The warning when the classifier scores the evaluated real frames (`real`) far below its
/// own held-out micro-F1 (`held_out`).
pub fn classifier_warning(held_out: f64, real: f64) -> Option<String> {
    (held_out - real > WARN_GAP).then(|| {
        format!(
            "the classifier scores these real frames at micro-F1 {real:.3}, far below its own held-out {held_out:.3}: \
             the frames are unlike those it was trained on, so its columns say little about the models here"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn floors_are_the_means_and_the_late_truth() {
        // Two stories of 3 frames, 1×2×2 "images" whose pixels are their frame index.
        let (n, t) = (6, 3);
        let truth = Tensor::arange(n, (Kind::Float, Device::Cpu))
            .view([n, 1, 1, 1])
            .expand([n, 1, 2, 2], false)
            .contiguous();
        let mean = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 6.0]).view([1, 1, 2, 2]);
        let f = floors_of(&truth, &mean, t);
        let names: Vec<&str> = f.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["floor: flat mean colour", "floor: mean frame", "floor: previous frame"]
        );
        assert!(f[0].1.equal(&Tensor::full([n, 1, 2, 2], 3.0, (Kind::Float, Device::Cpu))));
        assert!(f[1].1.equal(&mean.expand([n, 1, 2, 2], false)));
        // Story 1: mean, frame 0, frame 1; story 2: mean, frame 3, frame 4.
        let late = &f[2].1;
        assert!(late.get(0).equal(&mean.get(0)) && late.get(3).equal(&mean.get(0)));
        let firsts: Vec<f32> = [1, 2, 4, 5]
            .iter()
            .map(|&i| late.get(i).get(0).get(0).get(0).double_value(&[]) as f32)
            .collect();
        assert_eq!(firsts, [0.0, 1.0, 3.0, 4.0]);
        // Single images have no previous frame.
        assert_eq!(floors_of(&truth, &mean, 1).len(), 2);
    }

    #[test]
    fn the_warning_fires_only_on_a_real_gap() {
        assert!(classifier_warning(0.98, 0.57)
            .unwrap()
            .contains("0.570, far below its own held-out 0.980"));
        assert_eq!(classifier_warning(0.98, 0.96), None);
        assert_eq!(classifier_warning(0.90, 0.95), None);
    }
}
