//! Python exceptions. The classes live in `kvs/_errors.py` (so they can carry attributes and be
//! subclassed per AWS error kind); Rust looks them up by name when it raises one.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || {
            PyModule::import(py, "kvs._errors").map(|m| m.unbind())
        })
        .map(|m| m.bind(py))
}

/// Builds an exception of the `kvs` class `class` (falling back to `KvsError` for names the
/// module does not define) with `message` and keyword attributes.
pub fn kvs_error(
    py: Python<'_>,
    class: &str,
    message: String,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = errors_module(py)?;
        let cls = match module.getattr(class) {
            Ok(c) => c,
            Err(_) => module.getattr("KvsError")?,
        };
        let kwargs = PyDict::new(py);
        for (k, v) in attrs {
            kwargs.set_item(*k, v.bind(py))?;
        }
        let value = cls.call((message.clone(),), Some(&kwargs))?;
        Ok(PyErr::from_value(value))
    };
    build().unwrap_or_else(|e| {
        PyRuntimeError::new_err(format!(
            "{message} (and raising the kvs exception failed: {e})"
        ))
    })
}

/// `kvs.DecodeError` for a malformed MKV input.
pub fn decode_error(py: Python<'_>, err: &kvs_core::mkv::reader::DecodeError) -> PyErr {
    kvs_error(py, "DecodeError", err.to_string(), &[])
}

/// `kvs.EncodeError` for something the MKV writer refused.
pub fn encode_error(py: Python<'_>, message: String) -> PyErr {
    kvs_error(py, "EncodeError", message, &[])
}
