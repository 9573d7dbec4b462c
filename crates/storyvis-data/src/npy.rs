//! NumPy's `.npy` files: the header, numeric payloads, and pickled object payloads
//! (`np.save` of a dict, read back by `np.load(..., allow_pickle=True).item()`).

use crate::pickle::{self, ArrayData, Dtype, NdArray, Value};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The parsed header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
#[derive(Debug, PartialEq)]
pub struct Header {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

fn field<'a>(dict: &'a str, key: &str) -> Result<&'a str> {
    let pat = format!("'{key}':");
    let start = dict.find(&pat).with_context(|| format!("npy header lacks '{key}'"))? + pat.len();
    Ok(dict[start..].trim_start())
}

fn parse_header(text: &str) -> Result<Header> {
    let trimmed = text.trim_end();
    ensure!(trimmed.starts_with('{') && trimmed.ends_with('}'), "npy header is not a {{...}} dict");
    let descr = field(text, "descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .context("npy 'descr' is not a plain type string (structured arrays are not supported)")?
        .to_string();
    let fortran_order = field(text, "fortran_order")?.starts_with("True");
    let shape = field(text, "shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .context("npy 'shape' is not a tuple")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L').parse().with_context(|| format!("bad npy dimension {s:?}"))
        })
        .collect::<Result<_>>()?;
    Ok(Header { descr, fortran_order, shape })
}

/// Splits a `.npy` file into its header and payload.
pub fn split(bytes: &[u8]) -> Result<(Header, &[u8])> {
    ensure!(bytes.len() >= 10 && bytes.starts_with(MAGIC), "not a .npy file (bad magic)");
    let (len_bytes, start) = match bytes[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => bail!(".npy format version {v} is not supported"),
    };
    ensure!(bytes.len() >= start, "truncated .npy header");
    let mut hlen = 0usize;
    for i in 0..len_bytes {
        hlen |= (bytes[8 + i] as usize) << (8 * i);
    }
    let end =
        start.checked_add(hlen).filter(|&e| e <= bytes.len()).context("truncated .npy header")?;
    let text = std::str::from_utf8(&bytes[start..end]).context(".npy header is not text")?;
    Ok((parse_header(text)?, &bytes[end..]))
}

/// Reads a `.npy` file as a pickle value: object arrays through the pickle reader, numeric
/// arrays as `Value::Array` with raw data in C order.
pub fn load(bytes: &[u8]) -> Result<Value> {
    let (h, payload) = split(bytes)?;
    let dtype = Dtype::from_typestr(&h.descr);
    if dtype.descr.starts_with('O') {
        // The pickled array carries its own shape and layout; np.load ignores the header's.
        return pickle::load(payload).context("reading the pickled payload");
    }
    let data = pickle::raw_in_c_order(payload.to_vec(), &h.shape, &dtype, h.fortran_order)?;
    Ok(Value::Array(NdArray { shape: h.shape, dtype: Some(dtype), data: ArrayData::Raw(data) }))
}

/// The numbers of a numeric array (or a list of numbers) as f32.
pub fn to_f32_vec(v: &Value) -> Result<Vec<f32>> {
    match v {
        Value::Array(NdArray { dtype: Some(d), data: ArrayData::Raw(raw), shape }) => {
            let nums = pickle::numeric_to_f64(raw, d)?;
            let want = pickle::element_count(shape)?;
            ensure!(nums.len() == want, "array of shape {shape:?} holds {} numbers", nums.len());
            Ok(nums.into_iter().map(|x| x as f32).collect())
        }
        Value::Array(NdArray { data: ArrayData::Objects(items), .. })
        | Value::List(items)
        | Value::Tuple(items) => items
            .iter()
            .map(|x| match x {
                Value::Float(f) => Ok(*f as f32),
                Value::Int(i) => Ok(*i as f32),
                Value::Bool(b) => Ok(f32::from(u8::from(*b))),
                other => bail!("expected a number, found {}", other.kind()),
            })
            .collect(),
        other => bail!("expected numbers, found {}", other.kind()),
    }
}

/// Reads the bytes of an `np.save`d dict from names to numeric vectors.
pub fn dict_of_vectors(bytes: &[u8]) -> Result<BTreeMap<String, Vec<f32>>> {
    // np.save wraps a dict in a 0-d object array.
    let dict = match load(bytes)? {
        Value::Array(NdArray { data: ArrayData::Objects(mut items), .. }) if items.len() == 1 => {
            items.remove(0)
        }
        other => other,
    };
    let Value::Dict(pairs) = dict else {
        bail!("it does not hold a dict (found {})", dict.kind());
    };
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        let key = k.as_text().with_context(|| format!("a key is {}, not a string", k.kind()))?;
        let vec = to_f32_vec(&v).with_context(|| format!("entry {key:?}"))?;
        out.insert(key, vec);
    }
    Ok(out)
}

/// Loads an `np.save`d dict from names to numeric vectors (e.g. `CLEVR_dict.npy`).
pub fn load_dict_of_vectors(path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    dict_of_vectors(&bytes)
        .with_context(|| format!("{} is not a readable .npy dict of vectors", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        let h =
            parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 75), }").unwrap();
        assert_eq!(h, Header { descr: "<f4".into(), fortran_order: false, shape: vec![3, 75] });
        let h = parse_header("{'descr': '|O', 'fortran_order': False, 'shape': (), }").unwrap();
        assert!(h.shape.is_empty());
        assert!(parse_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }")
            .is_err());
    }

    /// A hand-built v1 .npy: header fields as NumPy writes them, then `payload`.
    fn npy(descr: &str, fortran: bool, shape: &str, payload: &[u8]) -> Vec<u8> {
        let order = if fortran { "True" } else { "False" };
        with_header(
            &format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n"),
            payload,
        )
    }

    fn with_header(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(payload);
        bytes
    }

    fn numbers(bytes: &[u8]) -> Result<Vec<f32>> {
        to_f32_vec(&load(bytes)?)
    }

    fn f8(xs: &[f64]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn message(r: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn fortran_order_is_read_back_in_c_order() {
        // [[1, 2], [3, 4]] stored column by column; the same bytes in C order stay as they are.
        assert_eq!(
            numbers(&npy("<f8", true, "(2, 2)", &f8(&[1., 3., 2., 4.]))).unwrap(),
            [1., 2., 3., 4.]
        );
        assert_eq!(
            numbers(&npy("<f8", false, "(2, 2)", &f8(&[1., 3., 2., 4.]))).unwrap(),
            [1., 3., 2., 4.]
        );
        // Not square: [[1, 2, 3], [4, 5, 6]].
        let got = numbers(&npy("<f8", true, "(2, 3)", &f8(&[1., 4., 2., 5., 3., 6.]))).unwrap();
        assert_eq!(got, [1., 2., 3., 4., 5., 6.]);
        // Three axes: item (i, j, k) = 12i + 4j + k lies at i + 2j + 6k in Fortran order.
        let mut f = vec![0.0; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    f[i + 2 * j + 6 * k] = (12 * i + 4 * j + k) as f64;
                }
            }
        }
        let want: Vec<f32> = (0..24).map(|x| x as f32).collect();
        assert_eq!(numbers(&npy("<f8", true, "(2, 3, 4)", &f8(&f))).unwrap(), want);
        // Big-endian int32 [[1, -2], [3, 4]], column by column.
        let be: Vec<u8> = [1i32, 3, -2, 4].iter().flat_map(|x| x.to_be_bytes()).collect();
        assert_eq!(numbers(&npy(">i4", true, "(2, 2)", &be)).unwrap(), [1., -2., 3., 4.]);
        // One axis, and none: both orders are the same.
        assert_eq!(numbers(&npy("<f8", true, "(3,)", &f8(&[1., 2., 3.]))).unwrap(), [1., 2., 3.]);
        assert_eq!(numbers(&npy("<f8", true, "()", &f8(&[2.5]))).unwrap(), [2.5]);
        assert!(numbers(&npy("<f8", true, "(0, 3)", &[])).unwrap().is_empty());
    }

    #[test]
    fn the_payload_must_match_the_shape() {
        let e = message(load(&npy("<f8", true, "(2, 2)", &f8(&[1., 2., 3.]))));
        assert!(e.contains("needs 32 bytes, found 24 (truncated)"), "{e}");
        let e = message(load(&npy("<f8", false, "(2, 2)", &f8(&[1., 2., 3., 4., 5.]))));
        assert!(e.contains("needs 32 bytes, found 40 (trailing data)"), "{e}");
        let e = message(load(&npy("<f8", false, "(99999999999, 99999999999)", &[])));
        assert!(e.contains("too many elements"), "{e}");
        let e = message(load(&npy("<f8", false, "(4611686018427387904,)", &[])));
        assert!(e.contains("too large"), "{e}");
        let e = message(load(&npy("<f8", false, "(2, -3)", &[])));
        assert!(e.contains("bad npy dimension \"-3\""), "{e}");
        let e = message(load(&with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), ",
            &[0; 16],
        )));
        assert!(e.contains("not a {...} dict"), "{e}");
    }

    #[test]
    fn every_numeric_dtype_in_both_byte_orders() {
        let decode = |descr: &str, raw: &[u8]| {
            pickle::numeric_to_f64(raw, &Dtype::from_typestr(descr)).unwrap()
        };
        let both = |kind: &str, items: &[(Vec<u8>, f64)]| {
            let le: Vec<u8> = items.iter().flat_map(|(b, _)| b.iter().rev().copied()).collect();
            let be: Vec<u8> = items.iter().flat_map(|(b, _)| b.clone()).collect();
            let want: Vec<f64> = items.iter().map(|(_, x)| *x).collect();
            for (descr, raw) in [(format!("<{kind}"), le), (format!(">{kind}"), be)] {
                let got = decode(&descr, &raw);
                assert!(got.len() == want.len(), "{descr}: {got:?}");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        g == w && g.is_sign_negative() == w.is_sign_negative(),
                        "{descr}: {got:?} vs {want:?}"
                    );
                }
            }
        };
        // Big-endian bytes of each item, and its value.
        let half = |bits: u16, x: f64| (bits.to_be_bytes().to_vec(), x);
        both(
            "f2",
            &[
                half(0x3c00, 1.0),
                half(0xc100, -2.5),
                half(0x7bff, 65504.0),
                half(0x0001, 2f64.powi(-24)), // the smallest subnormal
                half(0x03ff, 1023.0 * 2f64.powi(-24)), // the largest subnormal
                half(0x0400, 2f64.powi(-14)), // the smallest normal
                half(0x8000, -0.0),
                half(0x7c00, f64::INFINITY),
                half(0xfc00, f64::NEG_INFINITY),
            ],
        );
        assert!(decode("<f2", &[0x00, 0x7e])[0].is_nan());
        assert!(decode(">f2", &[0x7c, 0x01])[0].is_nan());
        both(
            "f4",
            &[(1.5f32.to_be_bytes().to_vec(), 1.5), ((-0.25f32).to_be_bytes().to_vec(), -0.25)],
        );
        both(
            "f8",
            &[(0.1f64.to_be_bytes().to_vec(), 0.1), (f64::MAX.to_be_bytes().to_vec(), f64::MAX)],
        );
        both("i1", &[(vec![0x80], -128.0), (vec![0x7f], 127.0), (vec![0xff], -1.0)]);
        both("u1", &[(vec![0xff], 255.0)]);
        both(
            "i2",
            &[(i16::MIN.to_be_bytes().to_vec(), -32768.0), (300i16.to_be_bytes().to_vec(), 300.0)],
        );
        both("u2", &[(u16::MAX.to_be_bytes().to_vec(), 65535.0)]);
        both(
            "i4",
            &[
                (i32::MIN.to_be_bytes().to_vec(), i32::MIN as f64),
                ((-7i32).to_be_bytes().to_vec(), -7.0),
            ],
        );
        both("u4", &[(u32::MAX.to_be_bytes().to_vec(), u32::MAX as f64)]);
        both(
            "i8",
            &[
                ((-1i64 << 53).to_be_bytes().to_vec(), -(2f64.powi(53))),
                ((-1i64).to_be_bytes().to_vec(), -1.0),
            ],
        );
        both("u8", &[(u64::MAX.to_be_bytes().to_vec(), u64::MAX as f64)]);
        assert_eq!(decode("|b1", &[0, 1, 2]), [0.0, 1.0, 1.0]);
        // Through a whole .npy: half floats and bools as f32.
        let half_npy = npy("<f2", false, "(3,)", &[0x00, 0x3c, 0x00, 0xc1, 0x00, 0x7c]);
        assert_eq!(numbers(&half_npy).unwrap(), [1.0, -2.5, f32::INFINITY]);
        assert_eq!(numbers(&npy("|b1", true, "(1, 2)", &[1, 0])).unwrap(), [1.0, 0.0]);
    }

    #[test]
    fn other_dtypes_are_errors_naming_them() {
        let sized = [
            ("<c16", 16),
            ("<c8", 8),
            ("<f16", 16),
            ("<U10", 40),
            ("|S12", 12),
            ("|V20", 20),
            ("<M8[ns]", 8),
            ("<m8[s]", 8),
            ("<i3", 3),
            ("<f3", 3),
            ("|b2", 2),
            ("<u16", 16),
        ];
        for (descr, itemsize) in sized {
            // The file is well formed (Fortran order reorders by the item size), but not numbers.
            let file = npy(descr, true, "(2, 2)", &vec![7u8; 4 * itemsize]);
            let e = message(numbers(&file));
            assert!(e.contains(&format!("unsupported NumPy dtype '{descr}'")), "{descr}: {e}");
            // Items wider than 8 bytes once panicked; any raw length is an error now.
            for len in [0, 1, itemsize, 3 * itemsize + 1] {
                assert!(pickle::numeric_to_f64(&vec![0; len], &Dtype::from_typestr(descr)).is_err());
            }
        }
        // Type strings NumPy does not have fail at load, named.
        for descr in ["<x4", "<f", "<M8ns", "f8x", "<U99999999999999999999"] {
            let e = message(load(&npy(descr, false, "(1,)", &[0; 8])));
            assert!(e.contains("unsupported NumPy dtype"), "{descr}: {e}");
        }
    }

    #[test]
    fn numeric_npy_round_trip() {
        let bytes = npy("<f8", false, "(2,)", &f8(&[1.5, -2.0]));
        assert_eq!(numbers(&bytes).unwrap(), vec![1.5, -2.0]);
        // Every truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(numbers(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
    }
}
