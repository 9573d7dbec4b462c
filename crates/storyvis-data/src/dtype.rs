//! NumPy array element types (`dtype`): parsing type strings, decoding raw numeric payloads
//! (booleans, integers, IEEE half, single and double floats, either byte order) and putting a
//! Fortran-ordered payload into C order. Shared by the `.npy` reader and the pickle reader.

use anyhow::{bail, ensure, Context, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Dtype {
    /// NumPy type string without byte order: "f8", "f4", "i8", "O8", ...
    pub descr: String,
    /// '<', '>', '|' or '='.
    pub order: char,
}

impl Dtype {
    /// A dtype from a NumPy type string with or without its byte order ("<f8", "f8").
    pub fn from_typestr(s: &str) -> Dtype {
        match s.chars().next() {
            Some(order @ ('<' | '>' | '|' | '=')) => Dtype { descr: s[1..].to_string(), order },
            _ => Dtype { descr: s.to_string(), order: '=' },
        }
    }

    /// The type string with its byte order, as NumPy writes it: "<f8".
    pub fn name(&self) -> String {
        format!("{}{}", self.order, self.descr)
    }

    /// The kind letter and the number after it: "f8" → ('f', 8), "U10" → ('U', 10),
    /// "M8[ns]" → ('M', 8).
    fn kind_width(&self) -> Option<(char, usize)> {
        let mut chars = self.descr.chars();
        let kind = chars.next()?;
        let rest = chars.as_str();
        let (num, unit) =
            rest.split_at(rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()));
        // Only datetimes and timedeltas carry something after the width: their unit.
        let unit_ok = unit.is_empty()
            || (matches!(kind, 'M' | 'm') && unit.starts_with('[') && unit.ends_with(']'));
        Some((kind, num.parse().ok()?)).filter(|_| unit_ok)
    }

    /// Bytes per item (the width; four per character for unicode), for any NumPy kind.
    pub fn itemsize(&self) -> Result<usize> {
        let size = match self.kind_width() {
            Some(('b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V' | 'm' | 'M' | 'O', w)) => Some(w),
            Some(('U', w)) => w.checked_mul(4),
            _ => None,
        };
        size.with_context(|| format!("unsupported NumPy dtype '{}'", self.name()))
    }
}

/// IEEE 754 binary16: sign, 5 exponent bits (bias 15), 10 fraction bits.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f64::from(h & 0x3ff);
    sign * match exponent {
        // Subnormal: 0.fraction × 2^-14.
        0 => fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        e => (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Decodes raw numeric data of a NumPy dtype into f64s: booleans, integers of 1, 2, 4 or 8
/// bytes and IEEE floats of 2, 4 or 8 bytes, in either byte order. Any other dtype (complex,
/// strings, datetimes, float128, widths such as "i3") is an error naming it.
pub fn numeric_to_f64(raw: &[u8], dtype: &Dtype) -> Result<Vec<f64>> {
    let (kind, width) = match dtype.kind_width() {
        Some(kw @ (('b', 1) | ('i' | 'u', 1 | 2 | 4 | 8) | ('f', 2 | 4 | 8))) => kw,
        _ => bail!(
            "unsupported NumPy dtype '{}': only booleans, integers of 1, 2, 4 or 8 bytes and floats of \
             2, 4 or 8 bytes can be read as numbers",
            dtype.name()
        ),
    };
    ensure!(
        raw.len() % width == 0,
        "{} bytes is not a whole number of '{}' items",
        raw.len(),
        dtype.name()
    );
    let big = dtype.order == '>';
    let items = raw.chunks_exact(width).map(|c| {
        // The item's bits as an unsigned integer of its width.
        let bits = if big {
            c.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b))
        } else {
            c.iter().rev().fold(0u64, |v, &b| (v << 8) | u64::from(b))
        };
        match (kind, width) {
            ('f', 2) => f16_to_f64(bits as u16),
            ('f', 4) => f64::from(f32::from_bits(bits as u32)),
            ('f', _) => f64::from_bits(bits),
            ('i', _) => {
                // Sign-extend from the item's width.
                let shift = 64 - 8 * width as u32;
                ((bits << shift) as i64 >> shift) as f64
            }
            ('b', _) => f64::from(u8::from(bits != 0)),
            _ => bits as f64,
        }
    });
    Ok(items.collect())
}

/// The number of elements of an array of `shape`, or an error if it does not fit a `usize`.
pub fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .with_context(|| format!("array shape {shape:?} has too many elements"))
}

/// Checks that `raw` holds exactly the items of an array of `shape` and `dtype`, and returns
/// them in C (row-major) order. NumPy writes the raw data of a Fortran-ordered array
/// (`fortran_order` in a .npy header, `is_fortran` in a pickled array's state) column-major.
pub fn raw_in_c_order(
    raw: Vec<u8>,
    shape: &[usize],
    dtype: &Dtype,
    fortran: bool,
) -> Result<Vec<u8>> {
    let itemsize = dtype.itemsize()?;
    let n = element_count(shape)?;
    let want = n.checked_mul(itemsize).with_context(|| {
        format!("array of shape {shape:?} and dtype '{}' is too large", dtype.name())
    })?;
    ensure!(
        raw.len() == want,
        "array data of shape {shape:?} and dtype '{}' needs {want} bytes, found {} ({})",
        dtype.name(),
        raw.len(),
        if raw.len() < want { "truncated" } else { "trailing data" }
    );
    if !fortran || shape.len() < 2 || want == 0 {
        return Ok(raw);
    }
    // Walk the C-order index (last axis fastest) and copy each item from its Fortran offset
    // (first axis fastest, strides 1, d0, d0·d1, ...).
    let strides: Vec<usize> = shape
        .iter()
        .scan(1usize, |s, &d| {
            let stride = *s;
            *s *= d; // at most n: every dimension is positive here
            Some(stride)
        })
        .collect();
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(raw.len());
    for _ in 0..n {
        out.extend_from_slice(&raw[offset * itemsize..(offset + 1) * itemsize]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
            offset -= strides[axis] * shape[axis];
        }
    }
    Ok(out)
}
