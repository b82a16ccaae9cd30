//! The group-by: keys interned to dense group ids, then one pass over the values per batch.

use crate::AggError;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowDictionaryKeyType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType};
use arrow_buffer::ArrowNativeType;
use arrow_schema::{DataType, Field};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A group's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A signed integer key.
    Int(i64),
    /// An unsigned integer key.
    UInt(u64),
    /// A string key.
    Str(String),
    /// The null key.
    Null,
}

impl Key {
    /// Numbers by value, strings by bytes, null last.
    fn order(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::UInt(a), Key::UInt(b)) => a.cmp(b),
            (Key::Str(a), Key::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Key::Null, Key::Null) => Ordering::Equal,
            (Key::Null, _) => Ordering::Greater,
            (_, Key::Null) => Ordering::Less,
            // One column has one kind of key; order the kinds anyway.
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Key::Int(_) => 0,
            Key::UInt(_) => 1,
            Key::Str(_) => 2,
            Key::Null => 3,
        }
    }
}

/// A number: integers exactly, floating point as `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// An integer (sums of 64-bit integers need up to 128 bits).
    Int(i128),
    /// A floating-point number.
    Float(f64),
}

impl Num {
    /// As `f64` (rounded for integers beyond 2^53).
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// One group's aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The key.
    pub key: Key,
    /// Values aggregated (non-null, non-NaN).
    pub count: u64,
    /// Their sum (0 for none).
    pub sum: Num,
    /// The smallest (none without values).
    pub min: Option<Num>,
    /// The largest (none without values).
    pub max: Option<Num>,
}

impl Group {
    /// `sum / count`, none without values.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum.as_f64() / self.count as f64)
    }
}

/// FxHash-style hashing (a rotate, xor and multiply per word): the keys are not chosen by an
/// attacker who gains from collisions (the guest hashes its own dataset), and SipHash would
/// cost more than the aggregation itself.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply mixes upward; the table indexes with the low bits.
        self.0.rotate_left(26)
    }
}

type FastMap<K> = HashMap<K, u32, BuildHasherDefault<FastHasher>>;

/// What kind of key a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Signed,
    Unsigned,
    Str,
}

fn key_kind(t: &DataType) -> Option<KeyKind> {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Some(KeyKind::Signed),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => Some(KeyKind::Unsigned),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(KeyKind::Str),
        DataType::Dictionary(k, v) if k.is_dictionary_key_type() => match key_kind(v) {
            Some(kind) if !matches!(**v, DataType::Dictionary(..)) => Some(kind),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a value column is floating point (`Some(true)`) or integer (`Some(false)`).
fn is_float(t: &DataType) -> Option<bool> {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(true),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Some(false),
        _ => None,
    }
}

/// Counts, sums, minima and maxima of a value column per key of a key column, over batches.
#[derive(Debug)]
pub struct GroupBy {
    key_type: DataType,
    value_type: DataType,
    key_kind: KeyKind,
    float: bool,
    /// Integer keys (as their 64 bits) to group ids.
    ints: FastMap<u64>,
    /// String keys to group ids.
    strs: FastMap<Box<str>>,
    null: Option<u32>,
    keys: Vec<Key>,
    count: Vec<u64>,
    isum: Vec<i128>,
    imin: Vec<i128>,
    imax: Vec<i128>,
    fsum: Vec<f64>,
    fmin: Vec<f64>,
    fmax: Vec<f64>,
    /// Each row's group id, for the batch being aggregated.
    gids: Vec<u32>,
    /// Dictionary value index to group id (`u32::MAX`: not seen yet), for the batch.
    dict_gids: Vec<u32>,
}

impl GroupBy {
    /// Groups by `key` and aggregates `value` (fields of the batches' schema), or says why
    /// their types are not supported.
    pub fn new(key: &Field, value: &Field) -> Result<GroupBy, AggError> {
        let key_kind = key_kind(key.data_type())
            .ok_or_else(|| AggError::KeyType { column: key.name().clone(), data_type: key.data_type().clone() })?;
        let float = is_float(value.data_type()).ok_or_else(|| AggError::ValueType {
            column: value.name().clone(),
            data_type: value.data_type().clone(),
        })?;
        Ok(GroupBy {
            key_type: key.data_type().clone(),
            value_type: value.data_type().clone(),
            key_kind,
            float,
            ints: FastMap::default(),
            strs: FastMap::default(),
            null: None,
            keys: Vec::new(),
            count: Vec::new(),
            isum: Vec::new(),
            imin: Vec::new(),
            imax: Vec::new(),
            fsum: Vec::new(),
            fmin: Vec::new(),
            fmax: Vec::new(),
            gids: Vec::new(),
            dict_gids: Vec::new(),
        })
    }

    /// Number of groups so far.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no rows were seen.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Aggregates one batch: its key and value columns.
    pub fn update(&mut self, key: &dyn Array, value: &dyn Array) -> Result<(), AggError> {
        if key.data_type() != &self.key_type {
            return Err(AggError::TypeChanged {
                which: "key",
                expected: self.key_type.clone(),
                found: key.data_type().clone(),
            });
        }
        if value.data_type() != &self.value_type {
            return Err(AggError::TypeChanged {
                which: "value",
                expected: self.value_type.clone(),
                found: value.data_type().clone(),
            });
        }
        if key.len() != value.len() {
            return Err(AggError::Length { keys: key.len(), values: value.len() });
        }
        let mut gids = std::mem::take(&mut self.gids);
        gids.clear();
        gids.reserve(key.len());
        self.group_ids(key, &mut gids);
        match value.data_type() {
            DataType::Int8 => self.add_ints::<Int8Type>(value, &gids),
            DataType::Int16 => self.add_ints::<Int16Type>(value, &gids),
            DataType::Int32 => self.add_ints::<Int32Type>(value, &gids),
            DataType::Int64 => self.add_ints::<Int64Type>(value, &gids),
            DataType::UInt8 => self.add_ints::<UInt8Type>(value, &gids),
            DataType::UInt16 => self.add_ints::<UInt16Type>(value, &gids),
            DataType::UInt32 => self.add_ints::<UInt32Type>(value, &gids),
            DataType::UInt64 => self.add_ints::<UInt64Type>(value, &gids),
            DataType::Float16 => self.add_floats::<Float16Type>(value, &gids),
            DataType::Float32 => self.add_floats::<Float32Type>(value, &gids),
            DataType::Float64 => self.add_floats::<Float64Type>(value, &gids),
            // `new` accepted only the types above, and the type was checked against it.
            _ => {}
        }
        self.gids = gids;
        Ok(())
    }

    /// The groups, sorted by key (null last).
    pub fn finish(self) -> Vec<Group> {
        let mut groups: Vec<Group> = self
            .keys
            .into_iter()
            .enumerate()
            .map(|(g, key)| {
                let count = self.count[g];
                let (sum, min, max) = if self.float {
                    (Num::Float(self.fsum[g]), Num::Float(self.fmin[g]), Num::Float(self.fmax[g]))
                } else {
                    (Num::Int(self.isum[g]), Num::Int(self.imin[g]), Num::Int(self.imax[g]))
                };
                let some = |n| (count > 0).then_some(n);
                Group { key, count, sum, min: some(min), max: some(max) }
            })
            .collect();
        groups.sort_by(|a, b| a.key.order(&b.key));
        groups
    }

    /// A new group for `key`.
    fn push(&mut self, key: Key) -> u32 {
        let g = self.keys.len() as u32;
        self.keys.push(key);
        self.count.push(0);
        if self.float {
            self.fsum.push(0.0);
            self.fmin.push(f64::INFINITY);
            self.fmax.push(f64::NEG_INFINITY);
        } else {
            self.isum.push(0);
            self.imin.push(i128::MAX);
            self.imax.push(i128::MIN);
        }
        g
    }

    fn null_id(&mut self) -> u32 {
        match self.null {
            Some(g) => g,
            None => {
                let g = self.push(Key::Null);
                self.null = Some(g);
                g
            }
        }
    }

    /// The group id of integer key `v` (`i128` holds every integer key type).
    fn int_id(&mut self, v: i128) -> u32 {
        let (bits, key) = match self.key_kind {
            KeyKind::Unsigned => (v as u64, Key::UInt(v as u64)),
            _ => (v as i64 as u64, Key::Int(v as i64)),
        };
        if let Some(&g) = self.ints.get(&bits) {
            return g;
        }
        let g = self.push(key);
        self.ints.insert(bits, g);
        g
    }

    fn str_id(&mut self, s: &str) -> u32 {
        if let Some(&g) = self.strs.get(s) {
            return g;
        }
        let g = self.push(Key::Str(s.to_string()));
        self.strs.insert(s.into(), g);
        g
    }

    /// The group id of row `i` of a (non-dictionary) key array; null rows get the null group.
    fn id_at(&mut self, a: &dyn Array, i: usize) -> u32 {
        if a.is_null(i) {
            return self.null_id();
        }
        match a.data_type() {
            DataType::Int8 => self.int_id(a.as_primitive::<Int8Type>().value(i).into()),
            DataType::Int16 => self.int_id(a.as_primitive::<Int16Type>().value(i).into()),
            DataType::Int32 => self.int_id(a.as_primitive::<Int32Type>().value(i).into()),
            DataType::Int64 => self.int_id(a.as_primitive::<Int64Type>().value(i).into()),
            DataType::UInt8 => self.int_id(a.as_primitive::<UInt8Type>().value(i).into()),
            DataType::UInt16 => self.int_id(a.as_primitive::<UInt16Type>().value(i).into()),
            DataType::UInt32 => self.int_id(a.as_primitive::<UInt32Type>().value(i).into()),
            DataType::UInt64 => self.int_id(a.as_primitive::<UInt64Type>().value(i).into()),
            DataType::Utf8 => self.str_id(a.as_string::<i32>().value(i)),
            DataType::LargeUtf8 => self.str_id(a.as_string::<i64>().value(i)),
            DataType::Utf8View => self.str_id(a.as_string_view().value(i)),
            // `key_kind` accepts nothing else (dictionaries go through `dict_ids`).
            _ => self.null_id(),
        }
    }

    /// Each row's group id, appended to `gids`.
    fn group_ids(&mut self, key: &dyn Array, gids: &mut Vec<u32>) {
        match key.data_type() {
            DataType::Int8 => self.int_ids::<Int8Type>(key, gids),
            DataType::Int16 => self.int_ids::<Int16Type>(key, gids),
            DataType::Int32 => self.int_ids::<Int32Type>(key, gids),
            DataType::Int64 => self.int_ids::<Int64Type>(key, gids),
            DataType::UInt8 => self.int_ids::<UInt8Type>(key, gids),
            DataType::UInt16 => self.int_ids::<UInt16Type>(key, gids),
            DataType::UInt32 => self.int_ids::<UInt32Type>(key, gids),
            DataType::UInt64 => self.int_ids::<UInt64Type>(key, gids),
            DataType::Utf8 => {
                for s in key.as_string::<i32>() {
                    gids.push(match s {
                        Some(s) => self.str_id(s),
                        None => self.null_id(),
                    });
                }
            }
            DataType::LargeUtf8 => {
                for s in key.as_string::<i64>() {
                    gids.push(match s {
                        Some(s) => self.str_id(s),
                        None => self.null_id(),
                    });
                }
            }
            DataType::Utf8View => {
                for s in key.as_string_view() {
                    gids.push(match s {
                        Some(s) => self.str_id(s),
                        None => self.null_id(),
                    });
                }
            }
            DataType::Dictionary(k, _) => match **k {
                DataType::Int8 => self.dict_ids::<Int8Type>(key, gids),
                DataType::Int16 => self.dict_ids::<Int16Type>(key, gids),
                DataType::Int32 => self.dict_ids::<Int32Type>(key, gids),
                DataType::Int64 => self.dict_ids::<Int64Type>(key, gids),
                DataType::UInt8 => self.dict_ids::<UInt8Type>(key, gids),
                DataType::UInt16 => self.dict_ids::<UInt16Type>(key, gids),
                DataType::UInt32 => self.dict_ids::<UInt32Type>(key, gids),
                DataType::UInt64 => self.dict_ids::<UInt64Type>(key, gids),
                _ => gids.extend(std::iter::repeat_n(self.null_id(), key.len())),
            },
            // `new` accepted only the types above.
            _ => gids.extend(std::iter::repeat_n(self.null_id(), key.len())),
        }
    }

    fn int_ids<T: ArrowPrimitiveType>(&mut self, key: &dyn Array, gids: &mut Vec<u32>)
    where
        T::Native: Into<i128>,
    {
        let a = key.as_primitive::<T>();
        match a.nulls().filter(|n| n.null_count() > 0) {
            None => gids.extend(a.values().iter().map(|&v| self.int_id(v.into()))),
            Some(nulls) => {
                for (i, &v) in a.values().iter().enumerate() {
                    gids.push(if nulls.is_null(i) { self.null_id() } else { self.int_id(v.into()) });
                }
            }
        }
    }

    /// Dictionary keys: each dictionary value is interned once per batch, on first use (so a
    /// dictionary value no row uses makes no group).
    fn dict_ids<K: ArrowDictionaryKeyType>(&mut self, key: &dyn Array, gids: &mut Vec<u32>) {
        let dict = key.as_dictionary::<K>();
        let values = dict.values();
        self.dict_gids.clear();
        self.dict_gids.resize(values.len(), u32::MAX);
        let nulls = dict.keys().nulls().filter(|n| n.null_count() > 0).cloned();
        for (i, k) in dict.keys().values().iter().enumerate() {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                gids.push(self.null_id());
                continue;
            }
            // arrow-rs validated the keys against the dictionary; an index past it would be
            // a null rather than a panic.
            let j = k.as_usize();
            let g = match self.dict_gids.get(j) {
                Some(&g) if g != u32::MAX => g,
                Some(_) => {
                    let g = self.id_at(values.as_ref(), j);
                    self.dict_gids[j] = g;
                    g
                }
                None => self.null_id(),
            };
            gids.push(g);
        }
    }

    fn add_ints<T: ArrowPrimitiveType>(&mut self, value: &dyn Array, gids: &[u32])
    where
        T::Native: Into<i128>,
    {
        let a = value.as_primitive::<T>();
        let nulls = a.nulls().filter(|n| n.null_count() > 0);
        for (i, (&v, &g)) in a.values().iter().zip(gids).enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                continue;
            }
            let (v, g) = (v.into(), g as usize);
            self.count[g] += 1;
            self.isum[g] += v;
            self.imin[g] = self.imin[g].min(v);
            self.imax[g] = self.imax[g].max(v);
        }
    }

    fn add_floats<T: ArrowPrimitiveType>(&mut self, value: &dyn Array, gids: &[u32])
    where
        T::Native: Into<f64>,
    {
        let a = value.as_primitive::<T>();
        let nulls = a.nulls().filter(|n| n.null_count() > 0);
        for (i, (&v, &g)) in a.values().iter().zip(gids).enumerate() {
            let v: f64 = v.into();
            if v.is_nan() || nulls.is_some_and(|n| n.is_null(i)) {
                continue;
            }
            let g = g as usize;
            self.count[g] += 1;
            self.fsum[g] += v;
            self.fmin[g] = self.fmin[g].min(v);
            self.fmax[g] = self.fmax[g].max(v);
        }
    }
}
