//! A borrowed view of the parts of an HTTP request that SigV4 covers.

use http::HeaderMap;

/// The method, raw path, raw query and headers of a request, borrowed from an
/// [`http::Request`] or from raw request-line parts.
///
/// The path and query are used exactly as received (they are re-encoded during
/// canonicalisation, never decoded first). Header values are raw bytes; several headers with the
/// same name are kept in order.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: Headers<'a>,
    /// Host (with a non-default port) taken from the URI, used by the signer when the request
    /// has no `host` header.
    pub(crate) uri_host: Option<&'a str>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Headers<'a> {
    Map(&'a HeaderMap),
    List(&'a [(&'a str, &'a [u8])]),
}

impl<'a> RequestView<'a> {
    /// A view over raw parts: `target` is the request target as sent (`/path` or
    /// `/path?query`), `headers` the header lines as `(name, raw value)` in received order.
    pub fn new(method: &'a str, target: &'a str, headers: &'a [(&'a str, &'a [u8])]) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestView {
            method,
            path,
            query,
            headers: Headers::List(headers),
            uri_host: None,
        }
    }

    /// A view over a method, URI and header map (for example the fields of
    /// [`http::request::Parts`]).
    pub fn from_http(method: &'a http::Method, uri: &'a http::Uri, headers: &'a HeaderMap) -> Self {
        let uri_host = uri.authority().map(|authority| {
            let default_port = matches!(
                (uri.scheme_str(), authority.port_u16()),
                (Some("http"), Some(80)) | (Some("https"), Some(443)) | (_, None)
            );
            if default_port {
                authority.host()
            } else {
                authority.as_str()
            }
        });
        RequestView {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: Headers::Map(headers),
            uri_host,
        }
    }

    /// A view over an [`http::Request`] (the body is not looked at).
    pub fn from_request<B>(request: &'a http::Request<B>) -> Self {
        Self::from_http(request.method(), request.uri(), request.headers())
    }

    /// A view over [`http::request::Parts`].
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        Self::from_http(&parts.method, &parts.uri, &parts.headers)
    }

    /// The request method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The raw path, without the query.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The raw query, without the `?` (empty when there is none).
    pub fn query(&self) -> &'a str {
        self.query
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        match self.headers {
            Headers::Map(map) => map.len(),
            Headers::List(list) => list.len(),
        }
    }

    /// Every header line as `(name, raw value)`, names as received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let (map, list) = match self.headers {
            Headers::Map(map) => (Some(map), None),
            Headers::List(list) => (None, Some(list)),
        };
        map.into_iter()
            .flat_map(|m| m.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
            .chain(
                list.into_iter()
                    .flat_map(|l| l.iter().map(|(n, v)| (*n, *v))),
            )
    }

    /// Every value of the header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of the header `name`, if any.
    pub fn header(&self, name: &'a str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }
}
