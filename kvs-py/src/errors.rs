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

/// Maps a client error onto the `kvs` exception classes: service errors become the
/// `ServiceError` subclass named after the AWS exception (with `code`, `status` and
/// `request_id`), transport failures `TransportError`, configuration and credential problems
/// `ConfigError`, undecodable media `DecodeError`. A producer stopped by the service raises the
/// service error's class; a producer that dropped frames because of an ERROR ACK raises
/// `AckError` (a `ServiceError` and a `ProducerError`, with `error_id` and `code` set to the
/// ErrorId's number and name); other producer failures raise `ProducerError`.
pub fn client_error(py: Python<'_>, err: &kvs_core::client::ClientError) -> PyErr {
    use kvs_core::client::ClientError;
    let message = err.to_string();
    match err {
        ClientError::Api { error, .. }
        | ClientError::Producer {
            api: Some(error), ..
        } => service_error(
            py,
            error.kind.name(),
            message,
            Some(error.http_status),
            error.request_id.clone(),
        ),
        ClientError::Producer { ack: Some(id), .. } => ack_error(py, *id, message),
        ClientError::Producer { .. } => kvs_error(py, "ProducerError", message, &[]),
        ClientError::Transport { .. } => kvs_error(py, "TransportError", message, &[]),
        ClientError::Decode { .. } => kvs_error(py, "DecodeError", message, &[]),
        ClientError::Credentials(_) | ClientError::Iot(_) | ClientError::Config(_) => {
            kvs_error(py, "ConfigError", message, &[])
        }
        _ => kvs_error(py, "KvsError", message, &[]),
    }
}

/// `kvs.AckError` for frames an ERROR ACK made the producer drop.
pub fn ack_error(py: Python<'_>, id: kvs_core::ack::ErrorId, message: String) -> PyErr {
    let attrs = [
        (
            "code",
            id.name().into_pyobject(py).map(|v| v.into_any().unbind()),
        ),
        (
            "error_id",
            id.code().into_pyobject(py).map(|v| v.into_any().unbind()),
        ),
    ];
    let attrs: Vec<(&str, Py<PyAny>)> = attrs
        .into_iter()
        .filter_map(|(k, v)| v.ok().map(|v| (k, v)))
        .collect();
    kvs_error(py, "AckError", message, &attrs)
}

/// A `ServiceError` subclass by AWS name (plain `ServiceError` for names `kvs` does not know).
pub fn service_error(
    py: Python<'_>,
    name: &str,
    message: String,
    status: Option<u16>,
    request_id: Option<String>,
) -> PyErr {
    let known = errors_module(py)
        .and_then(|m| m.getattr("SERVICE_ERRORS"))
        .and_then(|d| d.contains(name))
        .unwrap_or(false);
    let class = if known { name } else { "ServiceError" };
    let attrs = [
        (
            "code",
            name.into_pyobject(py).map(|v| v.into_any().unbind()),
        ),
        (
            "status",
            status.into_pyobject(py).map(|v| v.into_any().unbind()),
        ),
        (
            "request_id",
            request_id.into_pyobject(py).map(|v| v.into_any().unbind()),
        ),
    ];
    let attrs: Vec<(&str, Py<PyAny>)> = attrs
        .into_iter()
        .filter_map(|(k, v)| v.ok().map(|v| (k, v)))
        .collect();
    kvs_error(py, class, message, &attrs)
}
