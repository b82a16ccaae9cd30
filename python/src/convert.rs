//! Values between Rust and Python: serde values as plain Python objects, sizes as the CLI
//! spells them (the limits' values are famfs_runtime::request's to read).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// A JSON value as Python `dict`/`list`/`str`/`int`/`float`/`bool`/`None`.
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Anything serde can serialize, as a Python object.
pub fn to_py<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    json_to_py(py, &v)
}

/// A size in bytes: an `int`, or a string such as `"512M"` or `"4G"`.
pub fn size(arg: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if let Ok(n) = arg.extract::<u64>() {
        return Ok(n);
    }
    let text: String = arg
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a number of bytes or a size such as \"512M\"")))?;
    famfs::units::parse_size(&text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}
