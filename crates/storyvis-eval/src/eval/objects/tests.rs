use super::*;

/// An object of `attributes` standing at (right, behind) on the ground, as a frame lists it.
fn at(attributes: [u8; 4], right: f64, behind: f64) -> FrameObject {
    let cam = camera();
    let (r, b) = cam.ground_axes();
    let (x, y) = (right * r[0] + behind * b[0], right * r[1] + behind * b[1]);
    let [px, py] = cam.pixel([x, y, RADII[attributes[3] as usize]], SIZE);
    FrameObject { attributes, centre: [px as f32, py as f32], visible: Some(40) }
}

fn det(o: FrameObject) -> Detection {
    Detection { centre: o.centre, score: 0.9, attributes: o.attributes }
}

#[test]
fn ground_places_are_read_back_at_the_objects_heights() {
    for (attributes, right, behind) in [([0, 1, 0, 0], 1.5, -0.5), ([1, 2, 1, 1], -2.0, 2.0)] {
        let o = at(attributes, right, behind);
        let [r, b] = ground(o.centre, attributes[3]).unwrap();
        // f32 pixels: a thousandth of a unit.
        assert!((r - right).abs() < 2e-3 && (b - behind).abs() < 2e-3, "{r} {b}");
    }
    assert!(
        holds(Relation::LeftOf, [-1.0, 0.0], [1.0, 0.0])
            && !holds(Relation::RightOf, [-1.0, 0.0], [1.0, 0.0])
    );
    assert!(
        holds(Relation::Behind, [0.0, 2.0], [0.0, 1.0])
            && holds(Relation::InFrontOf, [0.0, 1.0], [0.0, 2.0])
    );
}

#[test]
fn objects_are_found_by_the_attributes_they_are_drawn_with() {
    let truth = [at([0, 1, 0, 0], 0.0, 0.0), at([1, 2, 1, 1], 2.0, 0.0)];
    let found = [
        // A red cube, but metal and small, far away: still the red cube.
        Detection { attributes: [0, 1, 1, 1], ..det(at([0, 1, 0, 0], -2.0, 2.0)) },
        // A blue cylinder where the blue sphere was: the sphere with a wrong shape.
        det(at([2, 2, 1, 1], 2.0, 0.0)),
    ];
    assert_eq!(find_by_identity(&truth, &found), vec![Some(0), Some(1)]);
    // Wrong in shape and colour both, or in shape and size: nobody's.
    let found = [det(at([2, 2, 0, 0], 0.0, 0.0)), det(at([1, 1, 0, 1], 0.0, 0.0))];
    assert_eq!(find_by_identity(&truth[..1], &found), vec![None]);
    // Two red cubes drawn: the one alike in material and size wins, whatever the distance.
    let found = [det(at([0, 1, 1, 0], 0.0, 0.0)), det(at([0, 1, 0, 0], 2.0, 2.0))];
    assert_eq!(find_by_identity(&truth[..1], &found), vec![Some(1)]);
    // A red sphere 90 pixels away (past any frame) is still the red cube, its shape wrong.
    let far = Detection {
        centre: [truth[0].centre[0] + 90.0, truth[0].centre[1]],
        score: 0.9,
        attributes: [1, 1, 0, 0],
    };
    assert_eq!(find_by_identity(&truth[..1], &[far]), vec![Some(0)]);
    // One drawing for two objects that both fit it: it is found once.
    let found = [det(at([0, 1, 0, 0], 0.0, 0.0))];
    assert_eq!(find_by_identity(&[truth[0], truth[0]], &found).iter().flatten().count(), 1);
}

#[test]
fn rsim_is_recall_times_the_share_of_kept_relation_signs() {
    // A found, B missed, C found with its behind-coordinate on the other side of A's and of
    // the centre's. By hand over (A, A), (A, C), (C, A), (C, C) on two axes: 2 + 1 + 1 + 1 of 8
    // signs kept; recall 2 of 3.
    let truth = [[1.0, 2.0], [-1.0, 0.5], [0.5, -1.0]];
    let drawn = [Some([2.0, 1.0]), None, Some([0.8, 1.5])];
    let got = relational_similarity(&truth, &drawn);
    assert!((got - 2.0 / 3.0 * 5.0 / 8.0).abs() < 1e-12, "{got}");
    // Everything found where it was: 1; nothing found: 0.
    let same: Vec<Option<[f64; 2]>> = truth.iter().map(|&t| Some(t)).collect();
    assert_eq!(relational_similarity(&truth, &same), 1.0);
    assert_eq!(relational_similarity(&truth, &[None, None, None]), 0.0);
}

#[test]
fn a_stated_relation_counts_when_both_objects_are_found_standing_as_stated() {
    let (cube, ball) = ([0, 1, 0, 0], [1, 2, 1, 1]);
    let stated = Some(Stated {
        subject: Attributes { shape: 0, color: 1, material: 0, size: 0 },
        relation: Relation::RightOf,
        anchor: Attributes { shape: 1, color: 2, material: 1, size: 1 },
    });
    let scene = vec![at(cube, 1.5, 0.3), at(ball, -1.0, 0.8)];
    let truth = vec![scene.clone(); 4];
    let found = vec![
        // Drawn as told.
        scene.iter().map(|&o| det(o)).collect(),
        // The two swapped: the cube now left of the ball.
        vec![det(at(cube, -1.0, 0.8)), det(at(ball, 1.5, 0.3))],
        // The ball missing.
        vec![det(scene[0])],
        // Drawn as told, but this frame's sentence states nothing.
        scene.iter().map(|&o| det(o)).collect(),
    ];
    let s = object_scores(&truth, &[stated, stated, stated, None], &found).unwrap();
    assert_eq!((s.relations, s.relation_accuracy), (3, Some(1.0 / 3.0)));
    // RSIM: 1; the swap keeps each object's behind-sign against the centre and nothing of the
    // pair's (2 of 8); the lone cube all its signs at half the recall; 1.
    let want = (1.0 + 0.25 + 0.5 + 1.0) / 4.0;
    assert!((s.rsim - want).abs() < 1e-12, "{} vs {want}", s.rsim);
    // By place, the swapped frame's objects are where the others were, with other attributes.
    assert_eq!((s.placed.recall, s.placed.count_accuracy), (7.0 / 8.0, 0.75));
    assert!(object_scores(&truth, &[None; 4], &found).unwrap().relation_accuracy.is_none());
    // Two red cubes alike in every attribute, the later one right of the earlier: the subject is
    // the later (the object the frame adds), the anchor the other.
    let twins = vec![at(cube, -1.0, 0.3), at(cube, 1.5, 0.8)];
    let same_cube = Attributes { shape: 0, color: 1, material: 0, size: 0 };
    let said = Some(Stated { subject: same_cube, relation: Relation::RightOf, anchor: same_cube });
    let drawn: Vec<Detection> = twins.iter().map(|&o| det(o)).collect();
    assert_eq!(object_scores(&[twins], &[said], &[drawn]).unwrap().relation_accuracy, Some(1.0));
}

#[test]
fn random_places_draw_the_objects_somewhere_else_the_same_way_for_a_seed() {
    let objects = vec![
        vec![at([0, 1, 0, 0], 0.0, 0.0)],
        vec![at([1, 2, 1, 1], 1.0, 1.0), at([2, 7, 0, 0], -1.0, -1.0)],
    ];
    let a = random_places(&objects, 3).unwrap();
    assert_eq!(a.size(), [2, 3, 64, 64]);
    assert!(a.equal(&random_places(&objects, 3).unwrap()));
    assert!(!a.equal(&random_places(&objects, 4).unwrap()));
    // A red object is drawn in the first frame: some pixels far redder than green.
    let red = (a.get(0).get(0) - a.get(0).get(1)).max().double_value(&[]);
    assert!(red > 0.4, "{red}");
    // Objects that cannot all be placed are an error, not a panic.
    let crowd: Vec<FrameObject> = (0..40).map(|_| at([0, 1, 0, 0], 0.0, 0.0)).collect();
    assert!(random_places(&[crowd], 0).is_err());
}
