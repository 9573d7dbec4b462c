//! Deterministic fuzzing of the .npy and pickle readers: valid files (the np.save fixtures, a
//! hand-written protocol-5-style pickle, hand-built numeric arrays) are truncated, bit-flipped,
//! overwritten with every opcode, given inserted and deleted bytes, and given bad header fields.
//! Every input must read or fail with an error, never panic; some must fail naming the problem.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use storyvis_data::npy;
use storyvis_data::rng::Rng;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)).unwrap()
}

/// A v1 .npy with the given header dict text and payload.
fn with_header(dict: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((dict.len() as u16 + 1).to_le_bytes());
    b.extend(dict.as_bytes());
    b.push(b'\n');
    b.extend(payload);
    b
}

fn npy(descr: &str, fortran: bool, shape: &str, payload: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    with_header(
        &format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}"),
        payload,
    )
}

/// Pickle opcodes written by hand, protocol 4/5 style: MEMOIZE after each object as Python's
/// pickler does, STACK_GLOBAL, SHORT_BINUNICODE, BYTEARRAY8.
#[derive(Default)]
struct Pickle {
    bytes: Vec<u8>,
    memo: u8,
}

impl Pickle {
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend(b);
        self
    }
    /// MEMOIZE; the key it used.
    fn memoize(&mut self) -> u8 {
        self.bytes.push(0x94);
        self.memo += 1;
        self.memo - 1
    }
    fn text(&mut self, s: &str) -> &mut Self {
        self.op(&[0x8c, s.len() as u8]).op(s.as_bytes());
        self.memoize();
        self
    }
    fn global(&mut self, module: &str, name: &str) -> u8 {
        self.text(module).text(name).op(b"\x93");
        self.memoize()
    }
    fn get(&mut self, key: u8) -> &mut Self {
        self.op(&[b'h', key])
    }
    /// `numpy.dtype(descr)` with byte order `order`.
    fn dtype(&mut self, dtype: u8, descr: &str, order: &str) -> &mut Self {
        self.get(dtype).text(descr).op(b"\x89\x88\x87R");
        self.memoize();
        self.op(b"(K\x03").text(order).op(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    }
    /// An empty array from `_reconstruct`, ready for its BUILD state.
    fn array(&mut self, reconstruct: u8, ndarray: u8) -> &mut Self {
        self.get(reconstruct).get(ndarray).op(b"K\x00\x85C\x01b\x87R");
        self.memoize();
        self
    }
}

/// `np.save` of {"big": int32 > [-1, 2, 70000], "fortran": float64 2 × 3 column by column,
/// "half": float16 2 × 2, "list": [numpy float64 scalar 2.5, 3]}, written by hand.
fn protocol5_dict() -> (Vec<u8>, BTreeMap<String, Vec<f32>>) {
    let mut p = Pickle::default();
    p.op(b"\x80\x05");
    let reconstruct = p.global("numpy.core.multiarray", "_reconstruct");
    let ndarray = p.global("numpy", "ndarray");
    let dtype = p.global("numpy", "dtype");
    let scalar = p.global("numpy.core.multiarray", "scalar");
    p.op(b"0000"); // the globals stay in the memo only
    p.array(reconstruct, ndarray).op(b"(K\x01)").dtype(dtype, "O8", "|").op(b"\x89]");
    p.memoize();
    p.op(b"}");
    p.memoize();
    p.op(b"(")
        .text("big")
        .array(reconstruct, ndarray)
        .op(b"(K\x01K\x03\x85")
        .dtype(dtype, "i4", ">")
        .op(b"\x89C\x0c");
    p.op(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 1, 0x11, 0x70]).op(b"tb");
    p.text("fortran")
        .array(reconstruct, ndarray)
        .op(b"(K\x01K\x02K\x03\x86")
        .dtype(dtype, "f8", "<")
        .op(b"\x88\x96");
    let f: Vec<u8> = [1f64, 4., 2., 5., 3., 6.].iter().flat_map(|x| x.to_le_bytes()).collect();
    p.op(&(f.len() as u64).to_le_bytes()).op(&f).op(b"tb");
    p.text("half")
        .array(reconstruct, ndarray)
        .op(b"(K\x01K\x02K\x02\x86")
        .dtype(dtype, "f2", "<")
        .op(b"\x89C\x08");
    p.op(&[0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b, 0x00, 0x7c]).op(b"tb");
    p.text("list").op(b"]");
    p.memoize();
    p.op(b"(").get(scalar).get(dtype).text("f8").op(b"\x89\x88\x87R(K\x03").text("<");
    p.op(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbC\x08")
        .op(&2.5f64.to_le_bytes())
        .op(b"\x86RK\x03e");
    p.op(b"uatb.");
    // A FRAME over everything after PROTO.
    let mut pickle = p.bytes[..2].to_vec();
    pickle.push(0x95);
    pickle.extend((p.bytes.len() as u64 - 2).to_le_bytes());
    pickle.extend(&p.bytes[2..]);
    let want = [
        ("big", vec![-1.0, 2.0, 70000.0]),
        ("fortran", vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ("half", vec![1.0, -2.5, 65504.0, f32::INFINITY]),
        ("list", vec![2.5, 3.0]),
    ];
    (npy("|O", false, "()", &pickle), want.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Everything a reader of these files does with them, including formatting the errors.
fn exercise(bytes: &[u8]) {
    match npy::load(bytes) {
        Ok(v) => {
            if let Err(e) = npy::to_f32_vec(&v) {
                let _ = format!("{e:#}");
            }
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
    if let Err(e) = npy::dict_of_vectors(bytes) {
        let _ = format!("{e:#}");
    }
}

/// The errors of reading `bytes` as numbers and as a dict of vectors: a file is one or the
/// other, so the error that names its problem is among them.
fn errors(bytes: &[u8]) -> String {
    let numbers = npy::load(bytes).and_then(|v| npy::to_f32_vec(&v)).err();
    let dict = npy::dict_of_vectors(bytes).err();
    numbers.iter().chain(&dict).map(|e| format!("{e:#}")).collect::<Vec<_>>().join(" | ")
}

struct Fuzz {
    runs: usize,
    panics: Vec<(String, String)>,
}

impl Fuzz {
    fn run(&mut self, what: impl FnOnce() -> String, bytes: &[u8]) {
        self.runs += 1;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| exercise(bytes))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.panics.push((what(), msg));
        }
    }
}

/// The header dicts to try: NumPy's fields with bad values, and broken dict text.
fn bad_headers() -> Vec<String> {
    let descrs = [
        "<f8",
        "<c16",
        "U10",
        "|V8",
        "f16",
        "<f16",
        ">c8",
        "|S12",
        "<i3",
        "<f3",
        "<M8[ns]",
        "<m8",
        "|b1",
        "|O",
        "<U0",
        "|V0",
        "|S0",
        "<f2",
        ">u8",
        "",
        "'",
        "<",
        "x",
        "<f99999999999999999999",
        "<U4611686018427387904",
    ];
    let shapes = [
        "()",
        "(0,)",
        "(2,)",
        "(2, 2)",
        "(2, 3)",
        "(4, 1, 2)",
        "(99999999999, 99999999999)",
        "(-1, 2)",
        "(2, -3)",
        "(18446744073709551615, 2)",
        "(18446744073709551616,)",
        "(0, 18446744073709551615, 18446744073709551615)",
        "(3,",
        "3",
        "(a, b)",
        "(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2,2,2)",
    ];
    let mut out = Vec::new();
    for d in descrs {
        for s in shapes {
            for f in ["True", "False"] {
                out.push(format!("{{'descr': '{d}', 'fortran_order': {f}, 'shape': {s}, }}"));
            }
        }
    }
    let good = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
    out.extend([
        good.trim_end_matches('}').to_string(), // unterminated
        good.replace('{', ""),
        good.replace("'shape': (2, 2), ", ""),
        good.replace("'descr': '<f8'", "'descr': [('a', '<f8')]"),
        good.replace("'descr': '<f8'", "'descr': '<f8"),
        good.replace(" False", ""),
        "{".into(),
        "}".into(),
        "{}".into(),
        String::new(),
        "{'descr':".into(),
        "{'shape': ('descr': '<f8', 'fortran_order':}".into(),
    ]);
    out
}

#[test]
fn malformed_npy_and_pickles_are_errors_never_panics() {
    let start = std::time::Instant::now();
    let (p5, p5_want) = protocol5_dict();
    assert_eq!(npy::dict_of_vectors(&p5).unwrap(), p5_want);
    let f8 = |xs: &[f64]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("protocol2.npy", fixture("clevr-sv-dicts/protocol2.npy")),
        ("protocol4 CLEVR_dict.npy", fixture("clevr-sv-original/CLEVR_dict.npy")),
        ("protocol5-style dict", p5.clone()),
        ("<f8 Fortran 2x3", npy("<f8", true, "(2, 3)", &f8(&[1., 4., 2., 5., 3., 6.]))),
        (
            ">i4 Fortran 2x2",
            npy(
                ">i4",
                true,
                "(2, 2)",
                &[0, 0, 0, 1, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 4],
            ),
        ),
        ("<f2", npy("<f2", false, "(3,)", &[0x00, 0x3c, 0x00, 0xc1, 0x00, 0x7c])),
        ("|u1 Fortran 2x3x2", npy("|u1", true, "(2, 3, 2)", &(0..12).collect::<Vec<u8>>())),
        ("|b1", npy("|b1", false, "(2,)", &[0, 1])),
    ];
    let mut fuzz = Fuzz { runs: 0, panics: Vec::new() };
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng::new(0x5eed);
    for (name, seed) in &seeds {
        let n = seed.len();
        for cut in 0..n {
            fuzz.run(|| format!("{name} cut to {cut} bytes"), &seed[..cut]);
        }
        for _ in 0..1000 {
            let (pos, bit) = (rng.below(n), rng.below(8));
            let mut b = seed.clone();
            b[pos] ^= 1 << bit;
            fuzz.run(|| format!("{name} with bit {bit} of byte {pos} flipped"), &b);
        }
        // Every byte value, so every opcode, at some positions.
        for _ in 0..16 {
            let pos = rng.below(n);
            for v in 0..=255u8 {
                let mut b = seed.clone();
                b[pos] = v;
                fuzz.run(|| format!("{name} with byte {pos} set to 0x{v:02x}"), &b);
            }
        }
        for _ in 0..300 {
            let (pos, v) = (rng.below(n + 1), rng.below(256) as u8);
            let mut b = seed.clone();
            b.insert(pos, v);
            fuzz.run(|| format!("{name} with 0x{v:02x} inserted at {pos}"), &b);
            let pos = rng.below(n);
            let mut b = seed.clone();
            b.remove(pos);
            fuzz.run(|| format!("{name} without byte {pos}"), &b);
        }
        // Several changes at once.
        for i in 0..300 {
            let mut b = seed.clone();
            for _ in 0..1 + rng.below(8) {
                let pos = rng.below(b.len());
                match rng.below(3) {
                    0 => b[pos] = rng.below(256) as u8,
                    1 => b.insert(pos, rng.below(256) as u8),
                    _ => {
                        b.remove(pos);
                    }
                }
            }
            fuzz.run(|| format!("{name}, multiple mutation {i}: {b:02x?}"), &b);
        }
    }
    let pickle_payload = &seeds[0].1[128..];
    let payloads: [(&str, &[u8]); 4] = [
        ("no payload", &[]),
        ("32 bytes", &[0x3f; 32]),
        ("a pickle", pickle_payload),
        ("one byte", &[1]),
    ];
    for header in bad_headers() {
        for (what, payload) in payloads {
            fuzz.run(|| format!("header {header:?} with {what}"), &with_header(&header, payload));
        }
    }
    std::panic::set_hook(quiet);

    for (what, msg) in fuzz.panics.iter().take(20) {
        println!("PANIC on {what}: {msg}");
    }
    assert!(
        fuzz.panics.is_empty(),
        "{} of {} inputs panicked (the first are listed above)",
        fuzz.panics.len(),
        fuzz.runs
    );
    println!("{} malformed inputs, none panicked, in {:.1?}", fuzz.runs, start.elapsed());

    // Some malformed inputs must be errors that name the problem.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (npy("<c16", false, "(2,)", &[0; 32]), "unsupported NumPy dtype '<c16'"),
        (npy("U10", false, "(1,)", &[0; 40]), "unsupported NumPy dtype '=U10'"),
        (npy("|V8", true, "(2, 2)", &[0; 32]), "unsupported NumPy dtype '|V8'"),
        (npy("f16", false, "(1,)", &[0; 16]), "unsupported NumPy dtype '=f16'"),
        (npy("<x8", false, "(1,)", &[0; 8]), "unsupported NumPy dtype '<x8'"),
        (npy("<f8", false, "(99999999999, 99999999999)", &[0; 8]), "too many elements"),
        (npy("<f8", false, "(-1, 2)", &[0; 8]), "bad npy dimension \"-1\""),
        (npy("<f8", true, "(2, 2)", &[0; 31]), "needs 32 bytes, found 31 (truncated)"),
        (npy("<f8", true, "(2, 2)", &[0; 33]), "needs 32 bytes, found 33 (trailing data)"),
        (
            with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), ", &[0; 16]),
            "not a {...} dict",
        ),
        (seeds[0].1[..3000].to_vec(), "truncated pickle"),
        (
            with_header("{'descr': '|O', 'fortran_order': False, 'shape': (), }", b"\x80\x02\xff."),
            "opcode 0xff",
        ),
        (
            with_header(
                "{'descr': '|O', 'fortran_order': False, 'shape': (), }",
                b"\x80\x02}(K\x01u.",
            ),
            "odd number",
        ),
        (
            with_header(
                "{'descr': '|O', 'fortran_order': False, 'shape': (), }",
                &[b"]".repeat(200), b"a".repeat(199), b".".to_vec()].concat(),
            ),
            "nested more than 100 deep",
        ),
        (
            with_header(
                "{'descr': '|O', 'fortran_order': False, 'shape': (), }",
                &[&b"\x80\x02]"[..], &b"2a".repeat(64), b"."].concat(),
            ),
            "copies of shared values",
        ),
    ];
    for (bytes, want) in &cases {
        let e = errors(bytes);
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
    // The protocol-5-style dict with its Fortran array's data cut short, and a dtype replaced.
    let short = p5.windows(4).position(|w| w == [0x96, 48, 0, 0]).unwrap();
    let mut b = p5.clone();
    b[short + 1] = 40;
    b.drain(short + 9..short + 17);
    let e = errors(&b);
    assert!(e.contains("needs 48 bytes, found 40 (truncated)"), "{e}");
    let f2 = p5.windows(3).position(|w| w == [0x8c, 2, b'f']).unwrap();
    let mut b = p5.clone();
    b[f2 + 2..f2 + 4].copy_from_slice(b"c8");
    assert!(errors(&b).contains("unsupported NumPy dtype '<c8'"), "{}", errors(&b));
    // Fortran order in the header of an object array changes nothing: the pickle has its own.
    let header = "{'descr': '|O', 'fortran_order': True, 'shape': (2, 2), }";
    let reread = npy::dict_of_vectors(&with_header(header, pickle_payload)).unwrap();
    assert_eq!(reread, npy::dict_of_vectors(&seeds[0].1).unwrap());
}
