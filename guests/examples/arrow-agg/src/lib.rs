//! The group-by kernel of the `arrow-agg` guest, plain arrow-rs (no famfs), so the host builds
//! and benchmarks the very same code natively.
//!
//! Groups the rows of record batches by a key column and aggregates a numeric value column per
//! group: count, sum, mean, min and max, as pandas' `groupby(key, dropna=False, sort=True)
//! [value].agg(["count", "sum", "mean", "min", "max"])` does:
//! - keys: integers, strings (`Utf8`, `LargeUtf8`, `Utf8View`), or dictionaries of them; null
//!   keys form one group, listed last; groups are sorted by key (numbers by value, strings by
//!   their UTF-8 bytes);
//! - values: integers (summed exactly, in 128 bits) or floating point (`f64` sums); nulls and
//!   NaNs are skipped; `count` is the number of values aggregated; a group without any has sum 0
//!   and no mean, min or max.
#![deny(missing_docs)]

mod batch;
mod group;
mod output;

pub use batch::to_record_batch;
pub use group::{Group, GroupBy, Key, Num};
pub use output::{write_csv, write_json};

use arrow_schema::DataType;

/// Why a column cannot be grouped by or aggregated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AggError {
    /// The key column's type is not supported.
    #[error(
        "the key column '{column}' has type {data_type}: group by an integer or string column, or a dictionary of them"
    )]
    KeyType {
        /// The column's name.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// The value column's type is not supported.
    #[error("the value column '{column}' has type {data_type}: aggregate an integer or floating-point column")]
    ValueType {
        /// The column's name.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A batch's columns are not of the types the aggregation was set up for.
    #[error("a batch's {which} column has type {found}, not {expected} as the schema said")]
    TypeChanged {
        /// `key` or `value`.
        which: &'static str,
        /// The schema's type.
        expected: DataType,
        /// The batch's type.
        found: DataType,
    },
    /// The key and value columns have different lengths.
    #[error("a batch's key column has {keys} rows and its value column {values}")]
    Length {
        /// Rows of the key column.
        keys: usize,
        /// Rows of the value column.
        values: usize,
    },
}
