//! A reader for state dicts in PyTorch's legacy `torch.save` format (before PyTorch 1.6, and
//! `_use_new_zipfile_serialization=False` after): several pickles one after another, then the
//! raw storages. Nothing is executed (see `pickle`).
//!
//! The layout (PyTorch's `torch/serialization.py`, `_legacy_save`):
//! 1. the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001 and a dict of system
//!    facts (byte order, type sizes), each a pickle of its own;
//! 2. the object, a pickle whose tensors are `torch._utils._rebuild_tensor_v2` calls on
//!    storages named by persistent ids `('storage', type, key, location, numel, view)`;
//! 3. a pickle of the storage keys, in the order their data follows;
//! 4. per key: the element count (8 bytes, little-endian), then the elements.

use crate::pickle::{self, TensorRef, Value};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;

const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL: i64 = 1001;

/// A state dict read from a legacy `torch.save` file: tensor names in file order, each with
/// where its values lie in `storages`.
#[derive(Debug)]
pub struct StateDict {
    pub tensors: Vec<(String, TensorRef)>,
    storages: HashMap<String, Vec<u8>>,
}

/// The bytes per element of a storage class.
fn element_size(storage_type: &str) -> Result<usize> {
    Ok(match storage_type.rsplit('.').next().unwrap_or_default() {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        other => bail!("a storage of the unsupported type {other}"),
    })
}

impl StateDict {
    /// Reads `path` (the error names it).
    pub fn read(path: &Path) -> Result<StateDict> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        StateDict::parse(&bytes).with_context(|| {
            format!("{} is not a readable legacy torch.save state dict", path.display())
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<StateDict> {
        ensure!(
            !bytes.starts_with(b"PK"),
            "it is a zip (PyTorch 1.6+) file; this reader takes the legacy format only"
        );
        let mut at = 0;
        let mut next = || -> Result<Value> {
            let (v, used) = pickle::load_prefix(&bytes[at..])
                .with_context(|| format!("the pickle at byte {at}"))?;
            at += used;
            Ok(v)
        };
        ensure!(
            matches!(next()?, Value::BigInt(b) if b == MAGIC),
            "no torch.save magic number at its start"
        );
        ensure!(
            matches!(next()?, Value::Int(PROTOCOL)),
            "not torch.save's protocol version {PROTOCOL}"
        );
        let Value::Dict(facts) = next()? else {
            bail!("no system facts after the protocol version")
        };
        let little = facts
            .iter()
            .find(|(k, _)| k.as_text().as_deref() == Some("little_endian"))
            .map(|(_, v)| v.clone());
        ensure!(
            little == Some(Value::Bool(true)),
            "written on a big-endian machine (not supported)"
        );
        let Value::Dict(items) = next()? else {
            bail!("the saved object is not a dict of tensors")
        };
        let Value::List(keys) = next()? else { bail!("no list of storage keys after the object") };
        let mut tensors = Vec::with_capacity(items.len());
        for (k, v) in items {
            let name = k.as_text().context("a state-dict key that is not text")?;
            let Value::Tensor(t) = v else { bail!("{name} is {}, not a tensor", v.kind()) };
            tensors.push((name, t));
        }
        let kinds: HashMap<&str, &TensorRef> =
            tensors.iter().map(|(_, t)| (t.storage.as_str(), t)).collect();
        let mut storages = HashMap::new();
        for key in keys {
            let key = key.as_text().context("a storage key that is not text")?;
            let t = kinds
                .get(key.as_str())
                .with_context(|| format!("storage {key} belongs to no tensor"))?;
            let head = bytes
                .get(at..at + 8)
                .with_context(|| format!("truncated: storage {key}'s length is missing"))?;
            let count = u64::from_le_bytes(head.try_into().expect("8 bytes")) as usize;
            ensure!(
                count == t.storage_len,
                "storage {key} holds {count} elements, its tensors say {}",
                t.storage_len
            );
            let len = count
                .checked_mul(element_size(&t.storage_type)?)
                .context("storage length out of range")?;
            let data = bytes
                .get(at + 8..)
                .and_then(|rest| rest.get(..len))
                .with_context(|| format!("truncated: storage {key} needs {len} bytes"))?;
            storages.insert(key, data.to_vec());
            at += 8 + len;
        }
        for (name, t) in &tensors {
            ensure!(
                storages.contains_key(&t.storage),
                "{name}'s storage {} is not in the file",
                t.storage
            );
        }
        Ok(StateDict { tensors, storages })
    }

    /// The tensor `name` of a float storage as (shape, values in C order), its strides followed.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (_, t) = self
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("no tensor {name} in the state dict"))?;
        ensure!(
            t.storage_type.ends_with("FloatStorage"),
            "{name} is a {}, not a FloatStorage",
            t.storage_type
        );
        let raw = &self.storages[&t.storage];
        let count: usize = t.size.iter().product();
        // The last element a view reaches must lie inside its storage.
        let reach = t.offset
            + t.size.iter().zip(&t.stride).map(|(&n, &s)| n.saturating_sub(1) * s).sum::<usize>();
        ensure!(
            count == 0 || reach < t.storage_len,
            "{name}'s view reaches element {reach} of a storage of {}",
            t.storage_len
        );
        let at = |i: usize| f32::from_le_bytes(raw[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let mut values = Vec::with_capacity(count);
        let mut index = vec![0usize; t.size.len()];
        for _ in 0..count {
            values.push(at(
                t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>()
            ));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok((t.size.clone(), values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy file of one tensor `w`: a 2 × 3 float view with strides (1, 2) of a storage
    /// [0, 1, 2, 3, 4, 5] (so w = [[0, 2, 4], [1, 3, 5]]), and `count` written as its length.
    fn file(count: u64, data_len: usize) -> Vec<u8> {
        let mut f = b"\x80\x02\x8a\x0a".to_vec();
        f.extend(MAGIC);
        f.extend(b".\x80\x02M\xe9\x03.\x80\x02}q\x00X\x0d\x00\x00\x00little_endian\x88s.");
        // OrderedDict(); d['w'] = _rebuild_tensor_v2(pid, 0, (2, 3), (1, 2), False, OrderedDict())
        f.extend(b"\x80\x02ccollections\nOrderedDict\n)Rq\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(");
        f.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x02\x00\x00\x0042X\x03\x00\x00\x00cpuK\x06NtQ");
        f.extend(b"K\x00K\x02K\x03\x86K\x01K\x02\x86\x89ccollections\nOrderedDict\n)RtRs.");
        f.extend(b"\x80\x02]X\x02\x00\x00\x0042a.");
        f.extend(count.to_le_bytes());
        f.extend((0..6).flat_map(|i| (i as f32).to_le_bytes()).take(data_len));
        f
    }

    #[test]
    fn a_strided_view_is_read_in_c_order() {
        let sd = StateDict::parse(&file(6, 24)).unwrap();
        assert_eq!(sd.tensors.len(), 1);
        assert_eq!(sd.f32("w").unwrap(), (vec![2, 3], vec![0., 2., 4., 1., 3., 5.]));
        assert!(format!("{:#}", sd.f32("v").unwrap_err()).contains("no tensor v"));
    }

    #[test]
    fn damaged_files_are_errors() {
        let e = |b: &[u8]| format!("{:#}", StateDict::parse(b).unwrap_err());
        assert!(
            e(&file(6, 20)).contains("truncated: storage 42 needs 24 bytes"),
            "{}",
            e(&file(6, 20))
        );
        assert!(e(&file(5, 24)).contains("holds 5 elements"), "{}", e(&file(5, 24)));
        assert!(e(b"PK\x03\x04").contains("zip"));
        let mut f = file(6, 24);
        f[5] ^= 1;
        assert!(e(&f).contains("magic"), "{}", e(&f));
        assert!(e(&file(6, 24)[..60]).contains("pickle"), "{}", e(&file(6, 24)[..60]));
    }
}
