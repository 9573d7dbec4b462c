//! A reader for the subset of Python's pickle format that `np.save` produces for object
//! arrays (dicts of NumPy arrays, as in StoryGAN's `CLEVR_dict.npy`), protocols 0–5, as
//! written by Python 2 or 3 and NumPy 1 or 2.
//!
//! Nothing is executed: globals are recognised by name. NumPy's array reconstructor, `dtype`,
//! `scalar` and Python 3's `_codecs.encode` (used to carry Python 2 byte strings) are turned
//! into data; any other global stays an opaque `Value::Object`. Malformed input gives an error
//! naming the byte offset, never a panic.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A `module.name` reference not yet called.
    Global(String),
    Dtype(Dtype),
    Array(NdArray),
    /// A call of an unknown global, kept only so that the error can name it if it is used.
    Object(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dtype {
    /// NumPy type string without byte order: "f8", "f4", "i8", "O8", ...
    pub descr: String,
    /// '<', '>', '|' or '='.
    pub order: char,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub dtype: Option<Dtype>,
    pub data: ArrayData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    Raw(Vec<u8>),
    Objects(Vec<Value>),
}

impl Value {
    /// Text of a `str` (or a Python 2 `str`, i.e. latin-1 bytes).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }
}

/// Decodes raw little/big-endian numeric data of NumPy type `descr` into f64s.
pub fn numeric_to_f64(raw: &[u8], dtype: &Dtype) -> Result<Vec<f64>> {
    let big = dtype.order == '>';
    let (kind, width): (char, usize) = {
        let mut c = dtype.descr.chars();
        let k = c.next().context("empty dtype")?;
        let w = c.as_str().parse().with_context(|| format!("unsupported dtype {:?}", dtype.descr))?;
        (k, w)
    };
    if width == 0 || raw.len() % width != 0 {
        bail!("{} bytes is not a whole number of {:?} items", raw.len(), dtype.descr);
    }
    raw.chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            if big {
                b[..width].reverse();
            }
            Ok(match (kind, width) {
                ('f', 8) => f64::from_le_bytes(b),
                ('f', 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                ('i', w) => {
                    let shift = 64 - 8 * w as u32;
                    ((i64::from_le_bytes(b) << shift) >> shift) as f64
                }
                ('u', _) | ('b', 1) => u64::from_le_bytes(b) as f64,
                _ => bail!("unsupported dtype {:?}", dtype.descr),
            })
        })
        .collect()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.with_context(|| format!("truncated pickle: {n} bytes wanted at offset {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn uint(&mut self, n: usize) -> Result<usize> {
        let b = self.take(n)?;
        let mut v: u64 = 0;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as u64) << (8 * i);
        }
        usize::try_from(v).context("length out of range")
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&c| c == b'\n').context("truncated pickle: unterminated line")?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).context("pickle text line is not UTF-8")
    }
}

/// One stack slot: a value and, if it was memoised, its memo key, so that in-place changes
/// (SETITEM, APPEND, BUILD) reach the memo as they would reach the shared Python object.
type Slot = (Value, Option<usize>);

#[derive(Default)]
struct Machine {
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: HashMap<usize, Value>,
}

impl Machine {
    fn push(&mut self, v: Value) {
        self.stack.push((v, None));
    }
    fn pop(&mut self) -> Result<Value> {
        Ok(self.stack.pop().context("pickle stack underflow")?.0)
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let m = self.marks.pop().context("pickle: no mark")?;
        if m > self.stack.len() {
            bail!("pickle: mark beyond the stack");
        }
        Ok(self.stack.drain(m..).map(|s| s.0).collect())
    }
    /// Applies `f` to the top value, keeping the memo in step.
    fn modify_top(&mut self, f: impl FnOnce(&mut Value) -> Result<()>) -> Result<()> {
        let (v, key) = self.stack.last_mut().context("pickle stack underflow")?;
        f(v)?;
        if let Some(k) = key {
            self.memo.insert(*k, v.clone());
        }
        Ok(())
    }
    fn memoize(&mut self, key: usize) -> Result<()> {
        let top = self.stack.last_mut().context("pickle: memo of an empty stack")?;
        top.1 = Some(key);
        self.memo.insert(key, top.0.clone());
        Ok(())
    }
    fn get(&mut self, key: usize) -> Result<()> {
        let v = self.memo.get(&key).with_context(|| format!("pickle: memo key {key} unset"))?.clone();
        self.stack.push((v, Some(key)));
        Ok(())
    }
}

fn call(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(name) = callable else { bail!("pickle: call of a non-global {callable:?}") };
    let args = match args {
        Value::Tuple(a) => a,
        other => bail!("pickle: arguments of {name} are not a tuple: {other:?}"),
    };
    Ok(match name.as_str() {
        "numpy.core.multiarray._reconstruct" | "numpy._core.multiarray._reconstruct" => {
            Value::Array(NdArray { shape: vec![], dtype: None, data: ArrayData::Raw(vec![]) })
        }
        "numpy.dtype" => {
            let descr = args.first().and_then(Value::as_text).context("pickle: dtype without a type string")?;
            Value::Dtype(Dtype { descr, order: '=' })
        }
        "_codecs.encode" => {
            let s = args.first().and_then(Value::as_text).context("pickle: _codecs.encode without text")?;
            // Python 2 byte strings travel as latin-1 text: each char is one byte.
            Value::Bytes(s.chars().map(|c| c as u32 as u8).collect())
        }
        "numpy.core.multiarray.scalar" | "numpy._core.multiarray.scalar" => match args.as_slice() {
            [Value::Dtype(d), raw] => {
                let bytes = match raw {
                    Value::Bytes(b) => b.clone(),
                    other => other.as_text().map(|s| s.chars().map(|c| c as u32 as u8).collect()).unwrap_or_default(),
                };
                let v = numeric_to_f64(&bytes, d)?;
                Value::Float(*v.first().context("pickle: empty scalar")?)
            }
            _ => bail!("pickle: malformed numpy scalar"),
        },
        _ => Value::Object(name),
    })
}

fn build(obj: &mut Value, state: Value) -> Result<()> {
    match obj {
        Value::Array(a) => {
            let Value::Tuple(s) = state else { bail!("pickle: array state is not a tuple") };
            // (version, shape, dtype, is_fortran, data)
            let [_, shape, dtype, _, data] = <[Value; 5]>::try_from(s)
                .map_err(|s| anyhow::anyhow!("pickle: array state has {} items, expected 5", s.len()))?;
            let Value::Tuple(dims) = shape else { bail!("pickle: array shape is not a tuple") };
            a.shape = dims
                .iter()
                .map(|d| match d {
                    Value::Int(n) if *n >= 0 => Ok(*n as usize),
                    other => bail!("pickle: bad array dimension {other:?}"),
                })
                .collect::<Result<_>>()?;
            let Value::Dtype(d) = dtype else { bail!("pickle: array dtype is {dtype:?}") };
            a.dtype = Some(d);
            a.data = match data {
                Value::List(items) => ArrayData::Objects(items),
                Value::Bytes(b) => ArrayData::Raw(b),
                other => ArrayData::Raw(other.as_text().context("pickle: array data")?.chars().map(|c| c as u32 as u8).collect()),
            };
        }
        Value::Dtype(d) => {
            if let Value::Tuple(s) = state {
                if let Some(o) = s.get(1).and_then(Value::as_text).and_then(|t| t.chars().next()) {
                    d.order = o;
                }
            }
        }
        _ => {} // state of opaque objects is not needed
    }
    Ok(())
}

/// Runs a pickle program and returns the object it builds.
pub fn load(data: &[u8]) -> Result<Value> {
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine::default();
    loop {
        let at = r.pos;
        let op = r.u8()?;
        step(&mut r, &mut m, op).with_context(|| format!("pickle opcode 0x{op:02x} at offset {at}"))?;
        if op == b'.' {
            return m.pop();
        }
    }
}

/// The memo key of a PUT / GET opcode: text, one byte, four bytes, or (MEMOIZE) the next free.
fn memo_key(r: &mut Reader, m: &Machine, op: u8) -> Result<usize> {
    match op {
        b'p' | b'g' => r.line()?.parse().context("bad memo key"),
        b'q' | b'h' => Ok(r.u8()? as usize),
        b'r' | b'j' => r.uint(4),
        _ => Ok(m.memo.len()),
    }
}

fn step(r: &mut Reader, m: &mut Machine, op: u8) -> Result<()> {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).context("string is not UTF-8");
    match op {
        0x80 => {
            r.u8()?; // PROTO
        }
        0x95 => {
            r.take(8)?; // FRAME
        }
        b'.' => {}
        b'(' => m.marks.push(m.stack.len()),
        b'0' => {
            m.pop()?;
        }
        b'1' => {
            m.pop_mark()?;
        }
        b'2' => {
            let top = m.stack.last().context("pickle stack underflow")?.clone();
            m.stack.push(top);
        }
        b'N' => m.push(Value::None),
        0x88 => m.push(Value::Bool(true)),
        0x89 => m.push(Value::Bool(false)),
        b'J' => {
            let b = r.take(4)?;
            m.push(Value::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64));
        }
        b'K' => {
            let v = r.u8()?;
            m.push(Value::Int(v as i64));
        }
        b'M' => {
            let v = r.uint(2)?;
            m.push(Value::Int(v as i64));
        }
        0x8a | 0x8b => {
            let n = if op == 0x8a { r.u8()? as usize } else { r.uint(4)? };
            if n > 8 {
                bail!("integer of {n} bytes is too large");
            }
            let b = r.take(n)?;
            let mut v: i64 = 0;
            for (i, &x) in b.iter().enumerate() {
                v |= (x as i64) << (8 * i);
            }
            if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                v -= 1i64 << (8 * n);
            }
            m.push(Value::Int(v));
        }
        b'I' | b'L' => {
            let line = r.line()?.trim_end_matches('L');
            m.push(match line {
                "01" => Value::Bool(true),
                "00" => Value::Bool(false),
                s => Value::Int(s.parse().with_context(|| format!("bad integer {s:?}"))?),
            });
        }
        b'F' => {
            let s = r.line()?;
            m.push(Value::Float(s.parse().with_context(|| format!("bad float {s:?}"))?));
        }
        b'G' => {
            let b = r.take(8)?;
            m.push(Value::Float(f64::from_be_bytes(b.try_into()?)));
        }
        b'U' | b'T' | b'C' | b'B' | 0x8e | 0x96 => {
            let n = match op {
                b'U' | b'C' => r.u8()? as usize,
                b'T' | b'B' => r.uint(4)?,
                _ => r.uint(8)?,
            };
            m.push(Value::Bytes(r.take(n)?.to_vec()));
        }
        0x8c | b'X' | 0x8d => {
            let n = match op {
                0x8c => r.u8()? as usize,
                b'X' => r.uint(4)?,
                _ => r.uint(8)?,
            };
            m.push(Value::Str(text(r.take(n)?)?));
        }
        b')' => m.push(Value::Tuple(vec![])),
        b't' => {
            let items = m.pop_mark()?;
            m.push(Value::Tuple(items));
        }
        0x85..=0x87 => {
            let n = (op - 0x84) as usize;
            if m.stack.len() < n {
                bail!("pickle stack underflow");
            }
            let items = m.stack.split_off(m.stack.len() - n).into_iter().map(|s| s.0).collect();
            m.push(Value::Tuple(items));
        }
        b']' => m.push(Value::List(vec![])),
        b'l' => {
            let items = m.pop_mark()?;
            m.push(Value::List(items));
        }
        b'a' | b'e' => {
            let items = if op == b'a' { vec![m.pop()?] } else { m.pop_mark()? };
            m.modify_top(|l| match l {
                Value::List(v) => {
                    v.extend(items);
                    Ok(())
                }
                other => bail!("append to a non-list {other:?}"),
            })?;
        }
        b'}' => m.push(Value::Dict(vec![])),
        b'd' | b'u' | b's' => {
            let flat = match op {
                b's' => {
                    let v = m.pop()?;
                    let k = m.pop()?;
                    vec![k, v]
                }
                _ => m.pop_mark()?,
            };
            if flat.len() % 2 != 0 {
                bail!("odd number of dict items");
            }
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            if op == b'd' {
                m.push(Value::Dict(pairs));
            } else {
                m.modify_top(|d| match d {
                    Value::Dict(v) => {
                        v.extend(pairs);
                        Ok(())
                    }
                    other => bail!("set item of a non-dict {other:?}"),
                })?;
            }
        }
        b'c' => {
            let module = r.line()?.to_string();
            let name = r.line()?;
            m.push(Value::Global(format!("{module}.{name}")));
        }
        0x93 => {
            let name = m.pop()?.as_text().context("STACK_GLOBAL name")?;
            let module = m.pop()?.as_text().context("STACK_GLOBAL module")?;
            m.push(Value::Global(format!("{module}.{name}")));
        }
        b'R' | 0x81 => {
            let args = m.pop()?;
            let f = m.pop()?;
            m.push(call(f, args)?);
        }
        b'b' => {
            let state = m.pop()?;
            m.modify_top(|obj| build(obj, state))?;
        }
        b'p' | b'q' | b'r' | 0x94 => {
            let k = memo_key(r, m, op)?;
            m.memoize(k)?;
        }
        b'g' | b'h' | b'j' => {
            let k = memo_key(r, m, op)?;
            m.get(k)?;
        }
        other => bail!("unsupported pickle opcode 0x{other:02x}"),
    }
    Ok(())
}
