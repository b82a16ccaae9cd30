//! From the SDK's arrow-rs (60) to DataFusion's (59) through the Arrow C data interface, the
//! ABI made for handing arrays between Arrow libraries: the buffers are not copied, the
//! imported arrays keep the exported ones (and so their mapped windows) alive. The SDK's decoder
//! validated every value; the import checks only the layout again.

use datafusion::arrow::array::{ArrayRef, make_array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ffi as df_ffi;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::Result;
use famfs_guest::arrow::{arrow_array as sdk, arrow_schema as sdk_schema};
use std::mem::{ManuallyDrop, align_of, size_of};
use std::sync::Arc;

/// An error of the SDK's arrow-rs as DataFusion's.
fn sdk_error(e: sdk_schema::ArrowError) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// Moves a C data interface struct from one arrow-rs's type to the other's.
///
/// # Safety
/// `A` and `B` must be the same C struct of the Arrow C data interface (`ArrowArray` or
/// `ArrowSchema`) as two arrow-rs versions declare it: `#[repr(C)]`, the fields the
/// specification fixes, in its order.
unsafe fn move_c_struct<A, B>(a: A) -> B {
    const { assert!(size_of::<A>() == size_of::<B>() && align_of::<A>() == align_of::<B>()) };
    let a = ManuallyDrop::new(a);
    // SAFETY: the caller promises both types are the same C struct; the value is moved (the
    // source is never dropped), so its release callback runs exactly once, from `B`'s drop.
    unsafe { std::ptr::read((&*a as *const A).cast::<B>()) }
}

/// The SDK's schema as DataFusion's.
pub fn schema(schema: &sdk_schema::Schema) -> Result<SchemaRef> {
    let exported = sdk_schema::ffi::FFI_ArrowSchema::try_from(schema).map_err(sdk_error)?;
    // SAFETY: both are arrow-rs's `FFI_ArrowSchema`, the C data interface's `ArrowSchema`.
    let imported: df_ffi::FFI_ArrowSchema = unsafe { move_c_struct(exported) };
    Ok(Arc::new(Schema::try_from(&imported)?))
}

/// The SDK's record batch as DataFusion's, with `schema` (from [`schema`] of the batch's).
pub fn batch(batch: &sdk::RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| array(column.as_ref(), field.data_type()))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?)
}

fn array(column: &dyn sdk::Array, data_type: &datafusion::arrow::datatypes::DataType) -> Result<ArrayRef> {
    let exported = sdk::ffi::FFI_ArrowArray::new(&column.to_data());
    // SAFETY: both are arrow-rs's `FFI_ArrowArray`, the C data interface's `ArrowArray`.
    let imported: df_ffi::FFI_ArrowArray = unsafe { move_c_struct(exported) };
    // SAFETY: `imported` is a valid ArrowArray (exported just above from an array arrow-rs 60
    // built and validated); its type is `data_type` because the caller's schema is the batch's
    // own, converted through the C data interface (ArrowSource::scan checks that the file's
    // schema is still the table's before reading it). The layout is checked again below.
    let data = unsafe { df_ffi::from_ffi_and_data_type(imported, data_type.clone())? };
    // Buffer sizes against lengths and offsets (cheap, no pass over the values): a mismatch is
    // an error here rather than an out-of-bounds read later.
    data.validate()?;
    Ok(make_array(data))
}
