use super::*;

fn object(attributes: [u8; 4], x: f32, y: f32) -> FrameObject {
    FrameObject { attributes, centre: [x, y], visible: Some(30) }
}

/// Outputs [1, OUTPUTS, CELLS, CELLS] with every heat logit at `base`.
fn blank(base: f64) -> Tensor {
    let out = Tensor::zeros([1, OUTPUTS, CELLS, CELLS], (Kind::Float, Device::Cpu));
    let _ = out.narrow(1, 0, 1).fill_(base);
    out
}

fn set(out: &Tensor, channel: i64, cell: (i64, i64), value: f64) {
    let _ = out.get(0).get(channel).get(cell.1).get(cell.0).fill_(value);
}

#[test]
fn decode_reads_local_maxima_with_their_offsets_and_attributes() {
    let out = blank(-8.0);
    // An object at cell (5, 9) with offset (0.25, −0.5): centre ((5.5 + .25)·2, (9.5 − .5)·2).
    set(&out, 0, (5, 9), 3.0);
    set(&out, 1, (5, 9), 0.25);
    set(&out, 2, (5, 9), -0.5);
    // Its attributes: shape 2, colour 6, material 1, size 0.
    for (channel, v) in [(3 + 2, 4.0), (6 + 6, 4.0), (14 + 1, 4.0), (16, 4.0)] {
        set(&out, channel, (5, 9), v);
    }
    // A neighbour of the peak that is hot but cooler: not an object of its own.
    set(&out, 0, (6, 9), 2.0);
    // A second object, cooler, far away; and a local maximum below the threshold.
    set(&out, 0, (20, 3), 1.0);
    set(&out, 0, (28, 28), -1.0);
    let found = decode(&out, THRESHOLD);
    assert_eq!(found.len(), 1);
    let d = &found[0];
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].centre, [11.5, 18.0]);
    assert_eq!(d[0].attributes, [2, 6, 1, 0]);
    assert!((d[0].score as f64 - 1.0 / (1.0 + (-3f64).exp())).abs() < 1e-6);
    assert_eq!(d[1].centre, [41.0, 7.0]);
    // σ(−1) = 0.27 is under the threshold, σ(1) = 0.73 over it.
    assert!(decode(&out, 0.8).iter().all(|d| d.len() == 1));
    assert_eq!(decode(&out, 0.2)[0].len(), 3);
}

#[test]
fn targets_put_a_unit_peak_at_each_centre_cell_and_the_rest_in_the_offset() {
    // A large object at pixel (11.5, 18.0): cell coordinates (5.25, 8.5), rounded (5, 9) with
    // the offset (0.25, −0.5); a small one at (40.9, 7.1); one outside the frame (skipped).
    let objs = [
        object([0, 1, 0, 0], 11.5, 18.0),
        object([1, 2, 1, 1], 40.9, 7.1),
        object([2, 3, 0, 1], 70.0, 10.0),
    ];
    let t = Targets::new(&[&objs[..]], 64).unwrap();
    assert_eq!(t.objects.len(), 2);
    assert_eq!(t.of_frame, vec![vec![0, 1]]);
    let o = t.objects[0];
    assert_eq!((o.frame, o.cell, o.attributes), (0, 9 * CELLS + 5, [0, 1, 0, 0]));
    assert!(
        (o.offset[0] - 0.25).abs() < 1e-6 && (o.offset[1] + 0.5).abs() < 1e-6,
        "{:?}",
        o.offset
    );
    let h = |x: i64, y: i64| t.heat.double_value(&[0, 0, y, x]);
    assert_eq!(h(5, 9), 1.0);
    // A Gaussian of σ = 1 (large) around the large one's cell; σ = 0.7 around the small one's.
    assert!((h(6, 9) - (-0.5f64).exp()).abs() < 1e-6 && (h(5, 11) - (-2.0f64).exp()).abs() < 1e-6);
    let small = t.objects[1].cell;
    let (sx, sy) = (small % CELLS, small / CELLS);
    assert_eq!((sx, sy), (20, 3));
    assert!((h(sx + 1, sy) - (-1.0 / (2.0 * 0.49f64)).exp()).abs() < 1e-6);
    // Far from both: nothing.
    assert!(h(30, 30) < 1e-12);
    // Frames of 128 pixels are read at 64: the same object at twice the pixel coordinates.
    let big = [object([0, 1, 0, 0], 23.0, 36.0)];
    assert_eq!(Targets::new(&[&big[..]], 128).unwrap().objects[0], o);
    // Attributes outside CLEVR's groups are an error.
    assert!(Targets::new(&[&[object([3, 0, 0, 0], 10.0, 10.0)][..]], 64).is_err());
}

#[test]
fn the_focal_loss_is_centernets_by_hand() {
    let logits = Tensor::from_slice(&[2.0f32, -1.0, 0.5]).view([1, 1, 1, 3]);
    let target = Tensor::from_slice(&[1.0f32, 0.5, 0.0]).view([1, 1, 1, 3]);
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    let (p0, p1, p2) = (s(2.0), s(-1.0), s(0.5));
    let want = (-(1.0 - p0).powi(2) * p0.ln()
        - 0.5f64.powi(4) * p1 * p1 * (1.0 - p1).ln()
        - p2 * p2 * (1.0 - p2).ln())
        / 2.0;
    let got = focal_loss(&logits, &target, 2).double_value(&[]);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn scores_count_matches_misses_extras_and_attributes() {
    let truth = vec![
        vec![
            object([0, 1, 0, 0], 10.0, 10.0),
            object([1, 2, 1, 1], 40.0, 40.0),
            object([2, 3, 0, 1], 20.0, 50.0),
        ],
        vec![object([0, 0, 0, 0], 30.0, 30.0)],
    ];
    let det =
        |attributes: [u8; 4], x: f32, y: f32| Detection { centre: [x, y], score: 0.9, attributes };
    let found = vec![
        // The first object found with the right attributes, the second with the wrong shape, the
        // third missed (the nearest detection is 6 px away), one extra far away.
        vec![
            det([0, 1, 0, 0], 11.0, 10.5),
            det([2, 2, 1, 1], 42.0, 41.0),
            det([2, 3, 0, 1], 26.0, 50.0),
            det([0, 0, 0, 0], 60.0, 5.0),
        ],
        vec![det([0, 0, 0, 0], 30.0, 33.5)],
    ];
    let s = score(&truth, &found).unwrap();
    assert_eq!((s.frames, s.objects, s.detections, s.matched), (2, 4, 5, 3));
    assert!((s.precision - 0.6).abs() < 1e-12 && (s.recall - 0.75).abs() < 1e-12);
    assert!((s.f1 - 2.0 * 0.6 * 0.75 / 1.35).abs() < 1e-12);
    assert_eq!(s.count_accuracy, 0.5);
    assert!(
        (s.shape - 2.0 / 3.0).abs() < 1e-12
            && s.colour == 1.0
            && s.material == 1.0
            && s.size == 1.0
    );
    // Matched large objects: the first and frame 2's, both shapes right; the small one wrong.
    assert_eq!((s.shape_large, s.shape_small), (1.0, 0.0));
    assert!(score(&truth, &found[..1]).is_err());
}
