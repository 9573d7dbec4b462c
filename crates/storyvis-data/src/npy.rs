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
    let descr = field(text, "descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .context("npy 'descr' is not a plain type string (structured arrays are not supported)")?
        .to_string();
    let fortran_order = field(text, "fortran_order")?.starts_with("True");
    let shape = field(text, "shape")?;
    let inner = shape.strip_prefix('(').and_then(|s| s.split(')').next()).context("npy 'shape' is not a tuple")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().with_context(|| format!("bad npy dimension {s:?}")))
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
    let end = start.checked_add(hlen).filter(|&e| e <= bytes.len()).context("truncated .npy header")?;
    let text = std::str::from_utf8(&bytes[start..end]).context(".npy header is not text")?;
    Ok((parse_header(text)?, &bytes[end..]))
}

/// Reads a `.npy` file as a pickle value: object arrays through the pickle reader, numeric
/// arrays as `Value::Array` with raw data.
pub fn load(bytes: &[u8]) -> Result<Value> {
    let (h, payload) = split(bytes)?;
    let (order, descr) = match h.descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, h.descr[1..].to_string()),
        _ => ('=', h.descr.clone()),
    };
    if descr.starts_with('O') {
        return pickle::load(payload).context("reading the pickled payload");
    }
    Ok(Value::Array(NdArray { shape: h.shape, dtype: Some(Dtype { descr, order }), data: ArrayData::Raw(payload.to_vec()) }))
}

/// The numbers of a numeric array (or a list of numbers) as f32.
pub fn to_f32_vec(v: &Value) -> Result<Vec<f32>> {
    match v {
        Value::Array(NdArray { dtype: Some(d), data: ArrayData::Raw(raw), shape }) => {
            let nums = pickle::numeric_to_f64(raw, d)?;
            let want: usize = shape.iter().product();
            ensure!(nums.len() == want, "array of shape {shape:?} holds {} numbers", nums.len());
            Ok(nums.into_iter().map(|x| x as f32).collect())
        }
        Value::Array(NdArray { data: ArrayData::Objects(items), .. }) | Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|x| match x {
                Value::Float(f) => Ok(*f as f32),
                Value::Int(i) => Ok(*i as f32),
                other => bail!("expected a number, found {other:?}"),
            })
            .collect(),
        Value::Object(name) => bail!("expected numbers, found an object of {name}"),
        other => bail!("expected numbers, found {other:?}"),
    }
}

/// Loads an `np.save`d dict from names to numeric vectors (e.g. `CLEVR_dict.npy`).
pub fn load_dict_of_vectors(path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = load(&bytes).with_context(|| format!("{} is not a readable .npy file", path.display()))?;
    // np.save wraps a dict in a 0-d object array.
    let dict = match value {
        Value::Array(NdArray { data: ArrayData::Objects(mut items), .. }) if items.len() == 1 => items.remove(0),
        other => other,
    };
    let Value::Dict(pairs) = dict else {
        bail!("{} does not hold a dict (found {})", path.display(), kind(&dict));
    };
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        let key = k.as_text().with_context(|| format!("{}: a key is not a string: {k:?}", path.display()))?;
        let vec = to_f32_vec(&v).with_context(|| format!("{}: entry {key:?}", path.display()))?;
        out.insert(key, vec);
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "an array",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dict",
        _ => "a scalar or object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 75), }").unwrap();
        assert_eq!(h, Header { descr: "<f4".into(), fortran_order: false, shape: vec![3, 75] });
        let h = parse_header("{'descr': '|O', 'fortran_order': False, 'shape': (), }").unwrap();
        assert!(h.shape.is_empty());
        assert!(parse_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }").is_err());
    }

    #[test]
    fn numeric_npy_round_trip() {
        // A hand-built v1 .npy of float64 [1.5, -2.0].
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(1.5f64.to_le_bytes());
        bytes.extend((-2.0f64).to_le_bytes());
        assert_eq!(to_f32_vec(&load(&bytes).unwrap()).unwrap(), vec![1.5, -2.0]);
        // Truncations are errors, never panics.
        for cut in 0..bytes.len() - 16 {
            let _ = load(&bytes[..cut]).and_then(|v| to_f32_vec(&v));
        }
        assert!(load(&bytes[..bytes.len() - 3]).and_then(|v| to_f32_vec(&v)).is_err());
    }
}
