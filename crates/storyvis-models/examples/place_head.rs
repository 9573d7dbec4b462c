//! How often the place head of a `layout` story model (storygan-fast) puts each new object in
//! the relation its sentence states to the object it names, before anything is drawn: on the
//! held-out stories of a CLEVR-SV set whose frames list their objects, each relation ("to the
//! left of the Y", "behind the Y", …) checked in the frame's coordinates (left: a smaller x than
//! Y's, behind: a smaller y, i.e. higher in the frame), with
//! - teacher forcing: the true places of the earlier objects, the head's most likely place
//!   (`grid`: the most likely cell's centre; `mean`: the mean) against the true anchor's place;
//! - as a user's story is drawn: every place predicted (drawn at the model's temperature, one
//!   seed) from the places predicted before it, against the anchor's predicted place;
//! - the true places against each other (the frame-coordinate reading of a relation stated on
//!   the ground: perspective can swap it where objects stand at different depths).
//!
//!   cargo run --release -p storyvis-models --example place_head -- CHECKPOINT DATA [STORIES]
use anyhow::{ensure, Context, Result};
use std::path::PathBuf;
use storyvis_data::clevr::sentence::{stated_relation, Relation};
use storyvis_data::dataset::{Dataset, Split};
use storyvis_models::storygan::data::StoryData;
use storyvis_models::storygan::sample::load_with;
use tch::{Device, Kind, Tensor};

/// Whether `p` stands in `r` to `a`, in frame coordinates (x to the right, y downwards).
fn holds(r: Relation, p: (f64, f64), a: (f64, f64)) -> bool {
    match r {
        Relation::LeftOf => p.0 < a.0,
        Relation::RightOf => p.0 > a.0,
        Relation::Behind => p.1 < a.1,
        Relation::InFrontOf => p.1 > a.1,
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ensure!(args.len() >= 2, "usage: place_head CHECKPOINT DATA [STORIES]");
    let n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let model = load_with(
        &PathBuf::from(&args[0]),
        Device::Cpu,
        storyvis_core::checkpoint::Weights::Average,
    )?;
    let ds = Dataset::open(&PathBuf::from(&args[1]))?;
    let items: Vec<_> = ds.split(Split::Test).take(n).collect();
    let mut cfg = model.cfg.clone();
    cfg.layout = true;
    let data = StoryData::load(&ds, &items, &cfg, &model.vocab)?.with_places(&ds, &items, &cfg)?;
    let index: Vec<i64> = (0..items.len() as i64).collect();
    let batch = data.batch(&index, Device::Cpu);
    let g = model.generator();
    let placer = g.placer.as_ref().context("not a layout model")?;
    let truth = batch.places.context("places")?;
    let (forced, free) = tch::no_grad(|| {
        let s = g.encode_text(&batch.text);
        let t = s.size()[1];
        // Teacher forcing, each frame's most likely place.
        let out = placer.outputs(&s, &truth);
        let forced = if out.size()[2] == 2 {
            out
        } else {
            let side = (out.size()[2] as f64).sqrt() as i64;
            let cell = out.argmax(-1, false);
            let centre = |i: Tensor| (i.to_kind(Kind::Float) + 0.5) * (2.0 / side as f64) - 1.0;
            Tensor::stack(
                &[centre(cell.remainder(side)), centre(cell.floor_divide_scalar(side))],
                -1,
            )
        };
        tch::manual_seed(0);
        let free = placer.predict(&s);
        assert_eq!(free.size()[1], t);
        (forced, free)
    });
    let at = |p: &Tensor, i: usize, t: usize| {
        (p.double_value(&[i as i64, t as i64, 0]), p.double_value(&[i as i64, t as i64, 1]))
    };
    let (mut total, mut hits) = (0usize, [0usize; 3]);
    for (i, story) in items.iter().enumerate() {
        for (t, f) in story.frames.iter().enumerate() {
            let Some(stated) = stated_relation(&f.sentence) else { continue };
            let want = [
                stated.anchor.shape,
                stated.anchor.color,
                stated.anchor.material,
                stated.anchor.size,
            ];
            let anchors: Vec<usize> = (0..t)
                .filter(|&j| f.objects[j].attributes.iter().map(|&a| a as usize).eq(want))
                .collect();
            let [j] = anchors[..] else { continue };
            total += 1;
            hits[0] += holds(stated.relation, at(&forced, i, t), at(&truth, i, j)) as usize;
            hits[1] += holds(stated.relation, at(&free, i, t), at(&free, i, j)) as usize;
            hits[2] += holds(stated.relation, at(&truth, i, t), at(&truth, i, j)) as usize;
        }
    }
    let share = |h: usize| h as f64 / total.max(1) as f64;
    println!("{total} stated relations in {} held-out stories", items.len());
    println!("teacher-forced, most likely place: {:.3}", share(hits[0]));
    println!("as drawn (seed 0), predicted from predicted places: {:.3}", share(hits[1]));
    println!("true places, read in frame coordinates: {:.3}", share(hits[2]));
    Ok(())
}
