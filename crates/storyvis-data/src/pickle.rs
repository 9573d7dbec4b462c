//! A reader for the subset of Python's pickle format that `np.save` produces for object
//! arrays (dicts of NumPy arrays, as in StoryGAN's `CLEVR_dict.npy`), protocols 0–5, as
//! written by Python 2 or 3 and NumPy 1 or 2.
//!
//! Nothing is executed: globals are recognised by name. NumPy's array reconstructor, `dtype`,
//! `scalar` and Python 3's `_codecs.encode` (used to carry Python 2 byte strings) are turned
//! into data; any other global stays an opaque `Value::Object`. Malformed input gives an error
//! naming the byte offset, never a panic, and cannot make the reader use much more memory than
//! the input's size (see `Machine`).

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::HashMap;

pub use crate::dtype::{element_count, numeric_to_f64, raw_in_c_order, Dtype};

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
    /// An integer too wide for i64 (LONG1 / LONG4), as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// What a persistent id (PERSID / BINPERSID) refers to: the id itself, for the caller to
    /// resolve (`torch.save` names its storages this way).
    Persistent(Box<Value>),
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`: where its values are.
    Tensor(TensorRef),
}

/// A PyTorch tensor in a pickle: its storage (a persistent id's key and type) and the view.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage's key among the file's storages.
    pub storage: String,
    /// The storage's class, e.g. `torch.FloatStorage`.
    pub storage_type: String,
    /// Elements the storage holds, as its persistent id says.
    pub storage_len: usize,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
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

    /// What the value is, for messages ("a dict", "an object of numpy.foo"), without its
    /// contents, which may be large.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) => "an integer".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(_) => "a list".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(name) => format!("the global {name}"),
            Value::Dtype(d) => format!("the dtype '{}'", d.name()),
            Value::Array(_) => "an array".into(),
            Value::Object(name) => format!("an object of {name}"),
            Value::BigInt(_) => "a wide integer".into(),
            Value::Persistent(_) => "a persistent id".into(),
            Value::Tensor(_) => "a tensor".into(),
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// The next `n` bytes; a length beyond the input is an error before anything is allocated.
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.with_context(|| {
            format!("truncated pickle: {n} bytes wanted at offset {}", self.pos)
        })?;
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
        let n =
            rest.iter().position(|&c| c == b'\n').context("truncated pickle: unterminated line")?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).context("pickle text line is not UTF-8")
    }
}

/// Values nest at most this deep: deeper ones would overflow the thread's stack when dropped,
/// copied or compared (all recursive). `np.save`'s dicts of arrays nest about 5 deep.
const MAX_DEPTH: usize = 100;

/// Copies of values (see `Machine::budget`) may take this many bytes per input byte, plus
/// `COPY_FLOOR`. An `np.save` pickle copies each value a few times at most (memoised, then
/// taken into its container), plus small memoised globals and dtypes on each GET.
const COPY_PER_INPUT_BYTE: usize = 32;
const COPY_FLOOR: usize = 64 << 20;

/// A stack entry: a value of its own and its nesting depth, or a memoised value in
/// `Machine::cells`, shared with the memo as a Python object would be, so that in-place changes
/// (SETITEM, APPEND, BUILD) reach later GETs without copying.
enum Slot {
    Own(Value, usize),
    Cell(usize),
}

struct Machine {
    stack: Vec<Slot>,
    marks: Vec<usize>,
    /// Memo key → index in `cells`.
    memo: HashMap<usize, usize>,
    /// Memoised values and their nesting depths.
    cells: Vec<(Value, usize)>,
    /// Bytes that copies may still take. Everything else the machine holds comes from distinct
    /// input bytes, but DUP or GET followed by APPEND can double a value per two input bytes.
    budget: usize,
}

/// Bytes a copy of `v` takes, roughly.
fn weight(v: &Value) -> usize {
    let inner = match v {
        Value::Str(s) | Value::Global(s) | Value::Object(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::List(items) | Value::Tuple(items) => items.iter().map(weight).sum(),
        Value::Dict(pairs) => pairs.iter().map(|(k, v)| weight(k) + weight(v)).sum(),
        Value::Dtype(d) => d.descr.len(),
        Value::Array(a) => {
            a.shape.len() * size_of::<usize>()
                + match &a.data {
                    ArrayData::Raw(b) => b.len(),
                    ArrayData::Objects(items) => items.iter().map(weight).sum(),
                }
        }
        Value::BigInt(b) => b.len(),
        Value::Persistent(v) => weight(v),
        Value::Tensor(t) => {
            t.storage.len()
                + t.storage_type.len()
                + (t.size.len() + t.stride.len()) * size_of::<usize>()
        }
        Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
    };
    size_of::<Value>() + inner
}

/// A copy of `v`, paid from `budget`.
fn copy(budget: &mut usize, v: &Value) -> Result<Value> {
    *budget = budget.checked_sub(weight(v)).context(
        "pickle: copies of shared values would take far more memory than the input's size \
         (is it made to explode?)",
    )?;
    Ok(v.clone())
}

impl Machine {
    fn new(input_len: usize) -> Machine {
        Machine {
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            cells: Vec::new(),
            budget: input_len.saturating_mul(COPY_PER_INPUT_BYTE).saturating_add(COPY_FLOOR),
        }
    }
    fn push(&mut self, v: Value) {
        self.stack.push(Slot::Own(v, 0));
    }
    /// Pushes a container whose deepest item is `items_depth` deep.
    fn push_container(&mut self, v: Value, items_depth: usize) -> Result<()> {
        let depth = items_depth + 1;
        ensure!(depth <= MAX_DEPTH, "pickle: values nested more than {MAX_DEPTH} deep");
        self.stack.push(Slot::Own(v, depth));
        Ok(())
    }
    /// A slot's value and depth; a memoised value is copied.
    fn resolve(&mut self, slot: Slot) -> Result<(Value, usize)> {
        match slot {
            Slot::Own(v, d) => Ok((v, d)),
            Slot::Cell(c) => {
                let (v, d) = &self.cells[c];
                Ok((copy(&mut self.budget, v)?, *d))
            }
        }
    }
    /// The values of `slots` and the depth of the deepest.
    fn resolve_all(&mut self, slots: Vec<Slot>) -> Result<(Vec<Value>, usize)> {
        let mut depth = 0;
        let mut out = Vec::with_capacity(slots.len());
        for s in slots {
            let (v, d) = self.resolve(s)?;
            depth = depth.max(d);
            out.push(v);
        }
        Ok((out, depth))
    }
    fn pop_slot(&mut self) -> Result<Slot> {
        self.stack.pop().context("pickle stack underflow")
    }
    fn pop(&mut self) -> Result<(Value, usize)> {
        let s = self.pop_slot()?;
        self.resolve(s)
    }
    fn pop_value(&mut self) -> Result<Value> {
        Ok(self.pop()?.0)
    }
    /// The slots above the last mark, removed from the stack.
    fn pop_mark_slots(&mut self) -> Result<Vec<Slot>> {
        let m = self.marks.pop().context("pickle: no mark")?;
        ensure!(m <= self.stack.len(), "pickle: mark beyond the stack");
        Ok(self.stack.split_off(m))
    }
    fn pop_mark(&mut self) -> Result<(Vec<Value>, usize)> {
        let slots = self.pop_mark_slots()?;
        self.resolve_all(slots)
    }
    /// Applies `f` to the top value in place (in its memo cell if it is memoised); what `f`
    /// adds is at most `depth` deep.
    fn modify_top(&mut self, depth: usize, f: impl FnOnce(&mut Value) -> Result<()>) -> Result<()> {
        ensure!(depth <= MAX_DEPTH, "pickle: values nested more than {MAX_DEPTH} deep");
        let (v, d) = match self.stack.last_mut().context("pickle stack underflow")? {
            Slot::Own(v, d) => (v, d),
            Slot::Cell(c) => {
                let (v, d) = &mut self.cells[*c];
                (v, d)
            }
        };
        f(v)?;
        *d = (*d).max(depth);
        Ok(())
    }
    fn dup(&mut self) -> Result<()> {
        let slot = match self.stack.last().context("pickle stack underflow")? {
            Slot::Cell(c) => Slot::Cell(*c),
            Slot::Own(v, d) => Slot::Own(copy(&mut self.budget, v)?, *d),
        };
        self.stack.push(slot);
        Ok(())
    }
    /// Memoises the top value under `key`: it moves into a cell that the stack then refers to.
    fn memoize(&mut self, key: usize) -> Result<()> {
        let cell = match self.stack.pop().context("pickle: memo of an empty stack")? {
            Slot::Cell(c) => c,
            Slot::Own(v, d) => {
                self.cells.push((v, d));
                self.cells.len() - 1
            }
        };
        self.stack.push(Slot::Cell(cell));
        self.memo.insert(key, cell);
        Ok(())
    }
    /// The top value, the result of the program: it leaves its memo cell without a copy.
    fn into_result(mut self) -> Result<Value> {
        Ok(match self.pop_slot()? {
            Slot::Own(v, _) => v,
            Slot::Cell(c) => self.cells.swap_remove(c).0,
        })
    }
    fn get(&mut self, key: usize) -> Result<()> {
        let cell = *self.memo.get(&key).with_context(|| format!("pickle: memo key {key} unset"))?;
        self.stack.push(Slot::Cell(cell));
        Ok(())
    }
}

fn call(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(name) = callable else {
        bail!("pickle: call of {}, not of a global", callable.kind())
    };
    let args = match args {
        Value::Tuple(a) => a,
        other => bail!("pickle: arguments of {name} are {}, not a tuple", other.kind()),
    };
    Ok(match name.as_str() {
        "numpy.core.multiarray._reconstruct" | "numpy._core.multiarray._reconstruct" => {
            Value::Array(NdArray { shape: vec![], dtype: None, data: ArrayData::Raw(vec![]) })
        }
        "numpy.dtype" => {
            let descr = args
                .first()
                .and_then(Value::as_text)
                .context("pickle: dtype without a type string")?;
            Value::Dtype(Dtype::from_typestr(&descr))
        }
        "_codecs.encode" => {
            let s = args
                .first()
                .and_then(Value::as_text)
                .context("pickle: _codecs.encode without text")?;
            // Python 2 byte strings travel as latin-1 text: each char is one byte.
            Value::Bytes(s.chars().map(|c| c as u32 as u8).collect())
        }
        "numpy.core.multiarray.scalar" | "numpy._core.multiarray.scalar" => match args.as_slice() {
            [Value::Dtype(d), raw] => {
                let bytes = match raw {
                    Value::Bytes(b) => b.clone(),
                    other => other
                        .as_text()
                        .map(|s| s.chars().map(|c| c as u32 as u8).collect())
                        .unwrap_or_default(),
                };
                let v = numeric_to_f64(&bytes, d)?;
                Value::Float(*v.first().context("pickle: empty scalar")?)
            }
            _ => bail!("pickle: malformed numpy scalar"),
        },
        // A state dict: its items come by SETITEMS (its `_metadata` by BUILD, not needed).
        "collections.OrderedDict" if args.is_empty() => Value::Dict(vec![]),
        "torch._utils._rebuild_tensor_v2" => Value::Tensor(rebuilt_tensor(&args)?),
        _ => Value::Object(name),
    })
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)`
/// where the storage is a persistent id `('storage', storage_type, key, location, numel, …)`.
fn rebuilt_tensor(args: &[Value]) -> Result<TensorRef> {
    ensure!(args.len() >= 4, "pickle: _rebuild_tensor_v2 with {} arguments", args.len());
    let Value::Persistent(pid) = &args[0] else {
        bail!("pickle: a tensor's storage is {}, not a persistent id", args[0].kind())
    };
    let Value::Tuple(pid) = pid.as_ref() else {
        bail!("pickle: a storage's persistent id is {}, not a tuple", pid.kind())
    };
    let count = |v: &Value, what: &str| match v {
        Value::Int(n) => {
            usize::try_from(*n).map_err(|_| anyhow!("pickle: a tensor's {what} is negative ({n})"))
        }
        other => bail!("pickle: a tensor's {what} is {}", other.kind()),
    };
    let dims = |v: &Value, what: &str| match v {
        Value::Tuple(items) => items.iter().map(|d| count(d, what)).collect::<Result<Vec<_>>>(),
        other => bail!("pickle: a tensor's {what} is {}, not a tuple", other.kind()),
    };
    let (storage, storage_type, storage_len) = match pid.as_slice() {
        [tag, Value::Global(ty), key, _location, numel, ..]
            if tag.as_text().as_deref() == Some("storage") =>
        {
            (
                key.as_text().context("pickle: a storage key that is not text")?,
                ty.clone(),
                count(numel, "storage length")?,
            )
        }
        _ => bail!("pickle: a persistent id that is not a storage"),
    };
    let (size, stride) = (dims(&args[2], "size")?, dims(&args[3], "stride")?);
    ensure!(
        size.len() == stride.len(),
        "pickle: a tensor of {} dimensions with {} strides",
        size.len(),
        stride.len()
    );
    Ok(TensorRef {
        storage,
        storage_type,
        storage_len,
        offset: count(&args[1], "storage offset")?,
        size,
        stride,
    })
}

fn build(obj: &mut Value, state: Value) -> Result<()> {
    match obj {
        Value::Array(a) => {
            let Value::Tuple(s) = state else {
                bail!("pickle: array state is {}, not a tuple", state.kind())
            };
            // (version, shape, dtype, is_fortran, data)
            let [_, shape, dtype, fortran, data] = <[Value; 5]>::try_from(s)
                .map_err(|s| anyhow!("pickle: array state has {} items, expected 5", s.len()))?;
            let Value::Tuple(dims) = shape else {
                bail!("pickle: array shape is {}, not a tuple", shape.kind())
            };
            a.shape = dims
                .iter()
                .map(|d| match d {
                    Value::Int(n) => usize::try_from(*n)
                        .map_err(|_| anyhow!("pickle: negative array dimension {n}")),
                    other => bail!("pickle: array dimension is {}", other.kind()),
                })
                .collect::<Result<_>>()?;
            let Value::Dtype(d) = dtype else { bail!("pickle: array dtype is {}", dtype.kind()) };
            let fortran = match fortran {
                Value::Bool(b) => b,
                Value::Int(i) => i != 0,
                other => bail!("pickle: array order flag is {}", other.kind()),
            };
            a.data = match data {
                // NumPy pickles the items of object arrays as a list in C order whatever the
                // layout (its `_getlist_pkl` walks the array's flat iterator).
                Value::List(items) => {
                    let n = element_count(&a.shape)?;
                    ensure!(
                        items.len() == n,
                        "pickle: object array of shape {:?} holds {} items",
                        a.shape,
                        items.len()
                    );
                    ArrayData::Objects(items)
                }
                other => {
                    let raw = match other {
                        Value::Bytes(b) => b,
                        other => other
                            .as_text()
                            .context("pickle: array data")?
                            .chars()
                            .map(|c| c as u32 as u8)
                            .collect(),
                    };
                    ArrayData::Raw(raw_in_c_order(raw, &a.shape, &d, fortran)?)
                }
            };
            a.dtype = Some(d);
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
    Ok(load_prefix(data)?.0)
}

/// Runs the pickle program at the start of `data` and returns the object it builds and the
/// bytes it took (`torch.save`'s legacy files hold several programs one after another).
pub fn load_prefix(data: &[u8]) -> Result<(Value, usize)> {
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine::new(data.len());
    loop {
        let at = r.pos;
        let op = r.u8()?;
        if op == b'.' {
            let v = m.into_result().with_context(|| format!("pickle STOP at offset {at}"))?;
            return Ok((v, r.pos));
        }
        step(&mut r, &mut m, op)
            .with_context(|| format!("pickle opcode 0x{op:02x} at offset {at}"))?;
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
        b'(' => m.marks.push(m.stack.len()),
        b'0' => {
            m.pop_slot()?;
        }
        b'1' => {
            m.pop_mark_slots()?;
        }
        b'2' => m.dup()?,
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
                ensure!(n <= 64, "integer of {n} bytes is too large");
                m.push(Value::BigInt(r.take(n)?.to_vec()));
                return Ok(());
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
        b')' => m.push_container(Value::Tuple(vec![]), 0)?,
        b't' => {
            let (items, depth) = m.pop_mark()?;
            m.push_container(Value::Tuple(items), depth)?;
        }
        0x85..=0x87 => {
            let n = (op - 0x84) as usize;
            let first = m.stack.len().checked_sub(n).context("pickle stack underflow")?;
            let slots = m.stack.split_off(first);
            let (items, depth) = m.resolve_all(slots)?;
            m.push_container(Value::Tuple(items), depth)?;
        }
        b']' => m.push_container(Value::List(vec![]), 0)?,
        b'l' => {
            let (items, depth) = m.pop_mark()?;
            m.push_container(Value::List(items), depth)?;
        }
        b'a' | b'e' => {
            let (items, depth) = if op == b'a' {
                let (v, d) = m.pop()?;
                (vec![v], d)
            } else {
                m.pop_mark()?
            };
            m.modify_top(depth + 1, |l| match l {
                Value::List(v) => {
                    v.extend(items);
                    Ok(())
                }
                other => bail!("append to {}, not a list", other.kind()),
            })?;
        }
        b'}' => m.push_container(Value::Dict(vec![]), 0)?,
        b'd' | b'u' | b's' => {
            let (flat, depth) = match op {
                b's' => {
                    let (v, dv) = m.pop()?;
                    let (k, dk) = m.pop()?;
                    (vec![k, v], dv.max(dk))
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
                m.push_container(Value::Dict(pairs), depth)?;
            } else {
                m.modify_top(depth + 1, |d| match d {
                    Value::Dict(v) => {
                        v.extend(pairs);
                        Ok(())
                    }
                    other => bail!("set item of {}, not a dict", other.kind()),
                })?;
            }
        }
        b'c' => {
            let module = r.line()?.to_string();
            let name = r.line()?;
            m.push(Value::Global(format!("{module}.{name}")));
        }
        0x93 => {
            let name = m.pop_value()?.as_text().context("STACK_GLOBAL name")?;
            let module = m.pop_value()?.as_text().context("STACK_GLOBAL module")?;
            m.push(Value::Global(format!("{module}.{name}")));
        }
        b'R' | 0x81 => {
            let args = m.pop_value()?;
            let f = m.pop_value()?;
            m.push(call(f, args)?);
        }
        b'Q' => {
            let (pid, depth) = m.pop()?;
            m.push_container(Value::Persistent(Box::new(pid)), depth)?;
        }
        b'P' => {
            let pid = r.line()?.to_string();
            m.push(Value::Persistent(Box::new(Value::Str(pid))));
        }
        b'b' => {
            let (state, depth) = m.pop()?;
            // The array takes the state's items: no deeper than the state tuple.
            m.modify_top(depth, |obj| build(obj, state))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol-2 pickle of a 2 × 3 float64 array as NumPy's `__reduce__` writes it, with
    /// `is_fortran` and the raw data as given.
    fn pickled_array(fortran: bool, data: &[f64]) -> Vec<u8> {
        let mut p = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85C\x01b\x87R".to_vec();
        // State: (1, (2, 3), dtype('<f8'), is_fortran, data).
        p.extend(b"(K\x01K\x02K\x03\x86cnumpy\ndtype\n\x8c\x02f8\x89\x88\x87R");
        p.extend(b"(K\x03\x8c\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
        p.push(if fortran { 0x88 } else { 0x89 });
        let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        p.push(b'B');
        p.extend((raw.len() as u32).to_le_bytes());
        p.extend(raw);
        p.extend(b"tb.");
        p
    }

    fn numbers(v: &Value) -> Vec<f64> {
        let Value::Array(NdArray { dtype: Some(d), data: ArrayData::Raw(raw), .. }) = v else {
            panic!("{v:?}")
        };
        numeric_to_f64(raw, d).unwrap()
    }

    #[test]
    fn pickled_fortran_arrays_are_reordered() {
        // [[1, 2, 3], [4, 5, 6]] column by column.
        let v = load(&pickled_array(true, &[1., 4., 2., 5., 3., 6.])).unwrap();
        assert_eq!(numbers(&v), [1., 2., 3., 4., 5., 6.]);
        let Value::Array(a) = &v else { unreachable!() };
        assert_eq!(
            (a.shape.as_slice(), a.dtype.as_ref().unwrap().name()),
            (&[2, 3][..], "<f8".to_string())
        );
        let v = load(&pickled_array(false, &[1., 4., 2., 5., 3., 6.])).unwrap();
        assert_eq!(numbers(&v), [1., 4., 2., 5., 3., 6.]);
        let e = format!("{:#}", load(&pickled_array(true, &[1., 2., 3., 4., 5.])).unwrap_err());
        assert!(e.contains("needs 48 bytes, found 40 (truncated)"), "{e}");
    }

    #[test]
    fn memoised_values_are_shared_until_taken() {
        // l = []; memo[0] = l; l.append(1); [l, memo[0]]: both see the append.
        let v = load(b"\x80\x02]q\x00K\x01a(h\x00h\x00l.").unwrap();
        let one = Value::List(vec![Value::Int(1)]);
        assert_eq!(v, Value::List(vec![one.clone(), one]));
    }

    #[test]
    fn inputs_made_to_exhaust_memory_or_the_stack_are_errors() {
        // DUP and APPEND double a list per two bytes: 2^60 items from 130 bytes.
        let mut p = b"\x80\x02]".to_vec();
        p.extend(b"2a".repeat(60));
        p.push(b'.');
        let e = format!("{:#}", load(&p).unwrap_err());
        assert!(e.contains("copies of shared values"), "{e}");
        // The same through the memo: GET and APPEND.
        let mut p = b"\x80\x02]q\x00".to_vec();
        p.extend(b"h\x00a".repeat(60));
        p.push(b'.');
        let e = format!("{:#}", load(&p).unwrap_err());
        assert!(e.contains("copies of shared values"), "{e}");
        // Lists nested a million deep would overflow the stack when dropped.
        let mut p = vec![b']'; 1_000_000];
        p.extend(vec![b'a'; 999_999]);
        p.push(b'.');
        let e = format!("{:#}", load(&p).unwrap_err());
        assert!(e.contains("nested more than 100 deep"), "{e}");
        // Lengths beyond the input are refused before anything is allocated.
        for p in [
            &b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f."[..],
            b"B\xff\xff\xff\xff.",
            b"\x8d\0\0\0\0\0\0\0\x01x.",
        ] {
            let e = format!("{:#}", load(p).unwrap_err());
            assert!(e.contains("truncated pickle") || e.contains("length out of range"), "{e}");
        }
    }
}
