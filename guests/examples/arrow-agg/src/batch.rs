//! The groups as an Arrow record batch: what `arrow-agg --format arrow` writes (an Arrow IPC
//! stream), so that pyarrow and the Ray reducer read typed columns instead of parsing text.

use crate::{Group, Key, Num};
use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, Field, Schema};
use std::sync::Arc;

/// One record batch, one row per group: the key column (named `key_name`: Int64, UInt64 or
/// Utf8, as the keys are; null for the null key), `count` (UInt64), `sum`, `mean` (Float64),
/// `min` and `max`. `sum`, `min` and `max` are Int64 when every value was an integer that fits,
/// else Float64; a missing mean, min or max is null.
pub fn to_record_batch(key_name: &str, groups: &[Group]) -> Result<RecordBatch, ArrowError> {
    let key = key_column(groups);
    let mut count = UInt64Builder::with_capacity(groups.len());
    let mut mean = Float64Builder::with_capacity(groups.len());
    for g in groups {
        count.append_value(g.count);
        mean.append_option(g.mean());
    }
    let nums = |pick: fn(&Group) -> Option<Num>| numbers(groups.iter().map(pick));
    let (sum, min, max) = (nums(|g| Some(g.sum)), nums(|g| g.min), nums(|g| g.max));
    let columns: Vec<ArrayRef> = vec![key, Arc::new(count.finish()), sum, Arc::new(mean.finish()), min, max];
    let fields: Vec<Field> = [key_name, "count", "sum", "mean", "min", "max"]
        .iter()
        .zip(&columns)
        .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn key_column(groups: &[Group]) -> ArrayRef {
    let is = |f: fn(&Key) -> bool| groups.iter().any(|g| f(&g.key));
    if is(|k| matches!(k, Key::Str(_))) {
        let mut b = StringBuilder::new();
        for g in groups {
            match &g.key {
                Key::Str(s) => b.append_value(s),
                _ => b.append_null(),
            }
        }
        Arc::new(b.finish())
    } else if is(|k| matches!(k, Key::UInt(_))) {
        let mut b = UInt64Builder::with_capacity(groups.len());
        for g in groups {
            b.append_option(if let Key::UInt(u) = g.key { Some(u) } else { None });
        }
        Arc::new(b.finish())
    } else {
        let mut b = Int64Builder::with_capacity(groups.len());
        for g in groups {
            b.append_option(if let Key::Int(i) = g.key { Some(i) } else { None });
        }
        Arc::new(b.finish())
    }
}

/// Int64 when every number is an integer within i64, else Float64.
fn numbers(values: impl Iterator<Item = Option<Num>> + Clone) -> ArrayRef {
    let all_int64 = values.clone().flatten().all(|n| matches!(n, Num::Int(i) if i64::try_from(i).is_ok()));
    if all_int64 {
        let mut b = Int64Builder::new();
        for v in values {
            b.append_option(v.map(|n| if let Num::Int(i) = n { i as i64 } else { 0 }));
        }
        Arc::new(b.finish())
    } else {
        let mut b = Float64Builder::new();
        for v in values {
            b.append_option(v.map(Num::as_f64));
        }
        Arc::new(b.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::DataType;

    fn group(key: Key, count: u64, sum: Num, min: Option<Num>, max: Option<Num>) -> Group {
        Group { key, count, sum, min, max }
    }

    #[test]
    fn integer_groups_stay_integers_and_missing_values_are_null() {
        let groups = vec![
            group(Key::Int(1), 2, Num::Int(7), Some(Num::Int(3)), Some(Num::Int(4))),
            group(Key::Null, 0, Num::Int(0), None, None),
        ];
        let b = to_record_batch("k", &groups).unwrap();
        assert_eq!(b.schema().field(0).name(), "k");
        assert_eq!(b.column(0).data_type(), &DataType::Int64);
        assert!(b.column(0).is_null(1));
        assert_eq!(b.column(2).as_primitive::<Int64Type>().value(0), 7);
        assert_eq!(b.column(3).as_primitive::<Float64Type>().value(0), 3.5);
        assert!(b.column(3).is_null(1) && b.column(4).is_null(1) && b.column(5).is_null(1));
    }

    #[test]
    fn float_values_and_huge_integer_sums_are_float64() {
        let groups = vec![
            group(Key::Str("a".into()), 1, Num::Float(1.5), Some(Num::Float(1.5)), Some(Num::Float(1.5))),
            group(Key::Str("b".into()), 2, Num::Int(i128::from(i64::MAX) * 2), Some(Num::Int(1)), Some(Num::Int(2))),
        ];
        let b = to_record_batch("name", &groups).unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Utf8);
        assert_eq!(b.column(2).data_type(), &DataType::Float64);
        assert_eq!(b.column(4).data_type(), &DataType::Float64);
        assert_eq!(b.column(2).as_primitive::<Float64Type>().value(1), (i64::MAX as f64) * 2.0);
    }
}
