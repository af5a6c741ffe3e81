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
/// `ConfigError`, producer failures `ProducerError` (or the service error that stopped it),
/// undecodable media `DecodeError`.
pub fn client_error(py: Python<'_>, err: &kvs_core::client::ClientError) -> PyErr {
    use kvs_core::client::ClientError;
    let message = err.to_string();
    match err {
        ClientError::Api { error, .. } => service_error(
            py,
            error.kind.name(),
            message,
            Some(error.http_status),
            error.request_id.clone(),
        ),
        ClientError::Transport { .. } => kvs_error(py, "TransportError", message, &[]),
        ClientError::Decode { .. } => kvs_error(py, "DecodeError", message, &[]),
        ClientError::Producer(text) => match service_error_in(text) {
            Some((name, status)) => service_error(py, name, message, status, None),
            None => kvs_error(py, "ProducerError", message, &[]),
        },
        ClientError::Credentials(_) | ClientError::Iot(_) | ClientError::Config(_) => {
            kvs_error(py, "ConfigError", message, &[])
        }
        _ => kvs_error(py, "KvsError", message, &[]),
    }
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

/// The service error a producer failure message carries, as the client words it:
/// `"PutMedia failed: ResourceNotFoundException (HTTP 404): ..."` gives the name and status.
pub fn service_error_in(text: &str) -> Option<(&str, Option<u16>)> {
    let (_, rest) = text.split_once(" failed: ")?;
    let (name, rest) = rest.split_once(" (HTTP ")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let status = rest
        .split_once(')')
        .and_then(|(digits, _)| digits.parse().ok());
    Some((name, status))
}

#[cfg(test)]
mod tests {
    use super::service_error_in;

    #[test]
    fn producer_messages_name_their_service_error() {
        assert_eq!(
            service_error_in("PutMedia failed: ResourceNotFoundException (HTTP 404): gone; hint"),
            Some(("ResourceNotFoundException", Some(404)))
        );
        assert_eq!(service_error_in("the producer is closed"), None);
        assert_eq!(service_error_in("x failed: two words (HTTP 1)"), None);
    }
}
