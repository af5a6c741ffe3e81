//! Access control: what each key pair may do, in the spirit of IAM identity policies.
//!
//! A [`Policy`] is a list of [`Statement`]s; each has an [`Effect`] (Allow or Deny), a set of
//! actions (`kinesisvideo:<Operation>`, with `*` / `?` wildcards matched case-insensitively, as
//! IAM matches action names) and resource patterns: `*`, a stream-name glob (the credentials
//! file's `kvs_streams`), or a stream-ARN glob (an IAM policy document's `Resource`). Evaluation
//! is IAM's: an explicit Deny wins, else any Allow allows, else the call is implicitly denied.
//! Resource globs are case-sensitive.
//!
//! Every call is evaluated on one [`Resource`]: the stream the request names (by StreamName or by
//! StreamARN: a name rule cannot be bypassed by calling with the ARN, since the ARN is resolved to
//! its name), `*` for ListStreams (no filtering of results, as in IAM), or an unresolved resource
//! (a malformed or non-stream ARN), which only `*` and ARN patterns can match.
//!
//! The evaluation is pure and allocation-free: actions are a bit set over [`Operation::ALL`],
//! globs are matched in place, and the ARN of a stream is matched piece by piece without being
//! formatted. Only a denial formats its message.

use std::collections::HashMap;
use std::fmt;

use kvs_core::api::{ApiError, ApiErrorKind, ApiRequest, Operation, PutMediaRequest, ResourceArn};

use crate::http_service::Ctx;
use crate::state::lock;

/// The IAM service prefix of every action.
pub const ACTION_PREFIX: &str = "kinesisvideo:";
/// Longest stream-name pattern (a stream name has at most 256 characters).
pub const MAX_STREAM_PATTERN: usize = 256;
/// Longest ARN pattern (an ARN has at most 1024 characters).
pub const MAX_ARN_PATTERN: usize = 1024;
/// Largest IAM policy document accepted (IAM's own limit for managed policies is 6144
/// characters; this leaves room for pretty-printed documents).
pub const MAX_POLICY_DOCUMENT: usize = 64 * 1024;

/// Why a policy entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// An action that is not `*` nor `kinesisvideo:` followed by an operation name or glob.
    #[error(
        "'{0}' is not a kinesisvideo action; write kinesisvideo:<Operation> (e.g. kinesisvideo:GetMedia), a wildcard such as kinesisvideo:Describe* or kinesisvideo:*, or *"
    )]
    BadAction(String),
    /// A well-formed action that names no operation of the service.
    #[error("action '{action}' matches no operation; known operations: {known}")]
    UnknownAction {
        /// The action as written.
        action: String,
        /// The operation names it could have named.
        known: String,
    },
    /// An empty list where at least one entry is needed.
    #[error("the {0} list is empty; list at least one entry or remove the key")]
    Empty(&'static str),
    /// A stream-name pattern with characters a stream name cannot have.
    #[error(
        "stream pattern '{0}' is invalid: use 1 to 256 of the stream-name characters [a-zA-Z0-9_.-] and the wildcards * and ?"
    )]
    BadStreamPattern(String),
    /// A resource of a policy document that is not `*` nor a kinesisvideo ARN pattern.
    #[error(
        "resource '{0}' is not '*' nor a kinesisvideo ARN pattern such as arn:aws:kinesisvideo:*:*:stream/cam-*/*"
    )]
    BadResource(String),
    /// A policy document that is not the JSON IAM expects, or uses what kvs does not support.
    #[error("{0}")]
    Document(String),
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the actions on the resources.
    Allow,
    /// Refuses them, whatever any Allow says.
    Deny,
}

/// The outcome of evaluating a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// No statement matched.
    ImplicitDeny,
    /// A Deny statement matched.
    ExplicitDeny,
}

/// A set of operations, one bit per entry of [`Operation::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions(u64);

impl Actions {
    /// No operation.
    pub const NONE: Actions = Actions(0);

    /// Every operation.
    pub fn all() -> Actions {
        Operation::ALL
            .iter()
            .fold(Actions::NONE, |a, op| a.with(*op))
    }

    /// This set plus `op`.
    pub fn with(self, op: Operation) -> Actions {
        Actions(self.0 | bit(op))
    }

    /// True when `op` is in the set.
    pub fn contains(self, op: Operation) -> bool {
        self.0 & bit(op) != 0
    }

    /// The union of two sets.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Parses one action: `*`, or `kinesisvideo:` (any case) followed by an operation name or a
    /// glob over operation names (case-insensitive, as IAM matches action names). A glob must
    /// match at least one operation, so a typo is an error rather than a silent no-op.
    pub fn parse(text: &str) -> Result<Actions, PolicyError> {
        let text = text.trim();
        if text == "*" {
            return Ok(Actions::all());
        }
        let bad = || PolicyError::BadAction(text.to_owned());
        let (prefix, rest) = text.split_at_checked(ACTION_PREFIX.len()).ok_or_else(bad)?;
        if !prefix.eq_ignore_ascii_case(ACTION_PREFIX)
            || rest.is_empty()
            || !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        {
            return Err(bad());
        }
        let set = Operation::ALL
            .iter()
            .filter(|op| glob(rest.as_bytes(), &op.name().as_bytes(), true))
            .fold(Actions::NONE, |a, op| a.with(*op));
        if set == Actions::NONE {
            return Err(PolicyError::UnknownAction {
                action: text.to_owned(),
                known: Operation::ALL
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(set)
    }

    /// Parses a comma-separated list of actions (the credentials file's `kvs_allow` /
    /// `kvs_deny`); `what` names the list in errors.
    pub fn parse_list(text: &str, what: &'static str) -> Result<Actions, PolicyError> {
        let mut set = Actions::NONE;
        let mut any = false;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set = set.union(Actions::parse(item)?);
            any = true;
        }
        if !any {
            return Err(PolicyError::Empty(what));
        }
        Ok(set)
    }
}

fn bit(op: Operation) -> u64 {
    Operation::ALL
        .iter()
        .position(|o| *o == op)
        .and_then(|i| 1u64.checked_shl(u32::try_from(i).ok()?))
        .unwrap_or(0)
}

/// What a statement's resource entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourcePattern {
    /// `*`: every resource, including ListStreams' `*`.
    Any,
    /// A glob over the stream name (`cam-*`).
    StreamName(Box<str>),
    /// A glob over the whole resource ARN (`arn:aws:kinesisvideo:*:*:stream/cam-*/*`).
    Arn(Box<str>),
}

impl ResourcePattern {
    /// A stream-name pattern: `*`, or 1 to 256 of `[a-zA-Z0-9_.-*?]`.
    pub fn stream_name(text: &str) -> Result<ResourcePattern, PolicyError> {
        let text = text.trim();
        if text == "*" {
            return Ok(ResourcePattern::Any);
        }
        let ok = !text.is_empty()
            && text.len() <= MAX_STREAM_PATTERN
            && text.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'*' | b'?')
            });
        if !ok {
            return Err(PolicyError::BadStreamPattern(text.to_owned()));
        }
        Ok(ResourcePattern::StreamName(text.into()))
    }

    /// A policy document's resource: `*`, or an ARN pattern starting `arn:` whose service (when
    /// not a wildcard) is `kinesisvideo`.
    pub fn arn(text: &str) -> Result<ResourcePattern, PolicyError> {
        if text == "*" {
            return Ok(ResourcePattern::Any);
        }
        let bad = || PolicyError::BadResource(text.to_owned());
        let mut parts = text.splitn(4, ':');
        let (Some("arn"), Some(_partition), Some(service)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if text.len() > MAX_ARN_PATTERN
            || !(glob(service.as_bytes(), &b"kinesisvideo".as_slice(), false))
            || text.chars().any(char::is_control)
        {
            return Err(bad());
        }
        Ok(ResourcePattern::Arn(text.into()))
    }

    /// True when the pattern matches `resource`.
    pub fn matches(&self, resource: &Resource<'_>) -> bool {
        match (self, resource) {
            (ResourcePattern::Any, _) => true,
            (ResourcePattern::StreamName(p), Resource::Stream(s)) => {
                glob(p.as_bytes(), &s.name.as_bytes(), false)
            }
            (ResourcePattern::Arn(p), Resource::Stream(s)) => {
                let mut digits = [0u8; 20];
                let pieces = s.arn_pieces(&mut digits);
                // Copied into a stack buffer when it fits (every ARN of a valid stream name in a
                // usual region does): byte access is then direct.
                let mut buf = [0u8; 384];
                match pieces.copy_into(&mut buf) {
                    Some(arn) => glob(p.as_bytes(), &arn, false),
                    None => glob(p.as_bytes(), &pieces, false),
                }
            }
            (ResourcePattern::Arn(p), Resource::Unresolved(raw)) => {
                glob(p.as_bytes(), &raw.as_bytes(), false)
            }
            _ => false,
        }
    }
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Allow or Deny.
    pub effect: Effect,
    /// The operations it covers.
    pub actions: Actions,
    /// The resources it covers (any of them).
    pub resources: Vec<ResourcePattern>,
}

impl Statement {
    fn matches(&self, op: Operation, resource: &Resource<'_>) -> bool {
        self.actions.contains(op) && self.resources.iter().any(|p| p.matches(resource))
    }
}

/// The resource a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `*` (ListStreams).
    All,
    /// A stream.
    Stream(StreamResource<'a>),
    /// A resource that is not a stream ARN kvs can parse (a malformed ARN, a channel ARN): only
    /// `*` and ARN patterns can match it.
    Unresolved(&'a str),
}

/// A stream, with what its ARN is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamResource<'a> {
    /// ARN partition (`aws`).
    pub partition: &'a str,
    /// Region.
    pub region: &'a str,
    /// Account id.
    pub account: &'a str,
    /// Stream name.
    pub name: &'a str,
    /// Creation time (epoch ms), the ARN's last part; `None` for a stream that does not exist
    /// (yet): its ARN then ends in `/*`.
    pub creation_ms: Option<u64>,
}

impl<'a> StreamResource<'a> {
    /// The ARN as pieces, without formatting it; `digits` holds the creation time.
    fn arn_pieces<'b>(&'b self, digits: &'b mut [u8; 20]) -> Pieces<'b, 10> {
        let creation: &[u8] = match self.creation_ms {
            Some(ms) => {
                let mut n = ms;
                let mut i = digits.len();
                loop {
                    i -= 1;
                    if let Some(d) = digits.get_mut(i) {
                        *d = b'0' + (n % 10) as u8;
                    }
                    n /= 10;
                    if n == 0 || i == 0 {
                        break;
                    }
                }
                digits.get(i..).unwrap_or(b"0")
            }
            None => b"*",
        };
        Pieces([
            b"arn:",
            self.partition.as_bytes(),
            b":kinesisvideo:",
            self.region.as_bytes(),
            b":",
            self.account.as_bytes(),
            b":stream/",
            self.name.as_bytes(),
            b"/",
            creation,
        ])
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::All => f.write_str("*"),
            Resource::Unresolved(raw) => f.write_str(raw),
            Resource::Stream(s) => {
                let mut digits = [0u8; 20];
                for piece in s.arn_pieces(&mut digits).0 {
                    f.write_str(&String::from_utf8_lossy(piece))?;
                }
                Ok(())
            }
        }
    }
}

/// A key pair's policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    statements: Vec<Statement>,
}

impl Policy {
    /// Every action on every resource (a profile without policy keys).
    pub fn full_access() -> Policy {
        Policy {
            statements: vec![Statement {
                effect: Effect::Allow,
                actions: Actions::all(),
                resources: vec![ResourcePattern::Any],
            }],
        }
    }

    /// A policy of `statements`.
    pub fn new(statements: Vec<Statement>) -> Policy {
        Policy { statements }
    }

    /// The statements.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// True for a policy that allows every action on every resource and denies nothing.
    pub fn is_full_access(&self) -> bool {
        let all = Actions::all();
        self.statements.iter().all(|s| s.effect == Effect::Allow)
            && self
                .statements
                .iter()
                .any(|s| s.actions == all && s.resources.contains(&ResourcePattern::Any))
    }

    /// Adds the statements of `other`.
    pub fn extend(&mut self, other: Policy) {
        self.statements.extend(other.statements);
    }

    /// The policy of a credentials-file profile's keys: `kvs_allow` (actions, default
    /// `kinesisvideo:*`) on `kvs_streams` (stream-name globs, default `*`), and `kvs_deny`
    /// (actions denied on every stream). `with_document` says a `kvs_policy_file` adds
    /// statements: then no Allow is implied unless `kvs_allow` or `kvs_streams` is given.
    /// Errors name the key at fault.
    pub fn from_profile_keys(
        allow: Option<&str>,
        deny: Option<&str>,
        streams: Option<&str>,
        with_document: bool,
    ) -> Result<Policy, (&'static str, PolicyError)> {
        let mut statements = Vec::new();
        if allow.is_some() || streams.is_some() || !with_document {
            let actions = match allow {
                Some(text) => {
                    Actions::parse_list(text, "kvs_allow").map_err(|e| ("kvs_allow", e))?
                }
                None => Actions::all(),
            };
            let resources = match streams {
                Some(text) => {
                    let list: Vec<ResourcePattern> = text
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(ResourcePattern::stream_name)
                        .collect::<Result<_, _>>()
                        .map_err(|e| ("kvs_streams", e))?;
                    if list.is_empty() {
                        return Err(("kvs_streams", PolicyError::Empty("kvs_streams")));
                    }
                    list
                }
                None => vec![ResourcePattern::Any],
            };
            statements.push(Statement {
                effect: Effect::Allow,
                actions,
                resources,
            });
        }
        if let Some(text) = deny {
            statements.push(Statement {
                effect: Effect::Deny,
                actions: Actions::parse_list(text, "kvs_deny").map_err(|e| ("kvs_deny", e))?,
                resources: vec![ResourcePattern::Any],
            });
        }
        Ok(Policy { statements })
    }

    /// Parses an IAM policy document: `{"Version": ..., "Statement": [...]}` (or one statement
    /// object), each statement with `Effect` (`Allow` / `Deny`), `Action` and `Resource` (a
    /// string or a list). `Sid` is allowed; `NotAction`, `NotResource`, `Principal` and
    /// `Condition` are refused (kvs does not evaluate them, and ignoring them would grant more
    /// than written).
    pub fn from_iam_json(text: &str) -> Result<Policy, PolicyError> {
        let doc = |m: String| PolicyError::Document(m);
        if text.len() > MAX_POLICY_DOCUMENT {
            return Err(doc(format!(
                "the document has {} bytes, over the limit of {MAX_POLICY_DOCUMENT}",
                text.len()
            )));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| doc(format!("not valid JSON: {e}")))?;
        let root = value
            .as_object()
            .ok_or_else(|| doc("the document must be a JSON object with a Statement".into()))?;
        for key in root.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(doc(format!(
                    "unknown top-level key '{key}'; expected Version, Id and Statement"
                )));
            }
        }
        let list: Vec<&serde_json::Value> = match root.get("Statement") {
            Some(serde_json::Value::Array(items)) => items.iter().collect(),
            Some(one @ serde_json::Value::Object(_)) => vec![one],
            _ => {
                return Err(doc(
                    "Statement must be a statement object or a list of them".into(),
                ));
            }
        };
        let mut statements = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            let n = i + 1;
            let at = |e: PolicyError| doc(format!("Statement {n}: {e}"));
            let obj = s
                .as_object()
                .ok_or_else(|| at(doc("must be an object".into())))?;
            for key in obj.keys() {
                match key.as_str() {
                    "Sid" | "Effect" | "Action" | "Resource" => {}
                    "NotAction" | "NotResource" | "Principal" | "NotPrincipal" | "Condition" => {
                        return Err(at(doc(format!(
                            "{key} is not supported by kvs; use Action and Resource"
                        ))));
                    }
                    other => return Err(at(doc(format!("unknown key '{other}'")))),
                }
            }
            let effect = match obj.get("Effect").and_then(|v| v.as_str()) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return Err(at(doc("Effect must be \"Allow\" or \"Deny\"".into()))),
            };
            let actions = strings(obj.get("Action"), "Action")
                .map_err(at)?
                .into_iter()
                .try_fold(Actions::NONE, |a, t| Actions::parse(t).map(|b| a.union(b)))
                .map_err(at)?;
            let resources = strings(obj.get("Resource"), "Resource")
                .map_err(at)?
                .into_iter()
                .map(ResourcePattern::arn)
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            statements.push(Statement {
                effect,
                actions,
                resources,
            });
        }
        Ok(Policy { statements })
    }

    /// Evaluates a call: an explicit Deny wins, else any Allow allows.
    pub fn evaluate(&self, op: Operation, resource: &Resource<'_>) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            if s.matches(op, resource) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// A string or a non-empty list of strings (IAM's `Action` / `Resource`).
fn strings<'a>(
    value: Option<&'a serde_json::Value>,
    what: &str,
) -> Result<Vec<&'a str>, PolicyError> {
    let err = || PolicyError::Document(format!("{what} must be a string or a list of strings"));
    match value {
        Some(serde_json::Value::String(s)) => Ok(vec![s.as_str()]),
        Some(serde_json::Value::Array(items)) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().ok_or_else(err)).collect()
        }
        None => Err(PolicyError::Document(format!("{what} is missing"))),
        _ => Err(err()),
    }
}

/// The error a denied call gets: `NotAuthorizedException` for the operations whose botocore
/// model lists it (the data plane and the stream-level control plane), otherwise
/// `AccessDeniedException` (CreateStream, ListStreams, the `*Resource` tag operations and the
/// storage configuration). Both answer HTTP 401, the status of both models.
pub fn denial_kind(op: Operation) -> ApiErrorKind {
    use Operation as O;
    match op {
        O::DeleteStream
        | O::DescribeStream
        | O::GetDataEndpoint
        | O::ListTagsForStream
        | O::TagStream
        | O::UntagStream
        | O::UpdateDataRetention
        | O::UpdateStream
        | O::GetMedia
        | O::PutMedia
        | O::ListFragments
        | O::GetMediaForFragmentList
        | O::GetClip
        | O::GetImages
        | O::GetHLSStreamingSessionURL
        | O::GetDASHStreamingSessionURL => ApiErrorKind::NotAuthorized,
        _ => ApiErrorKind::AccessDenied,
    }
}

/// The error of a denied call, with IAM's message:
/// `User: arn:aws:iam::<account>:user/<profile> is not authorized to perform:
/// kinesisvideo:<Operation> on resource: <ARN>` (plus `with an explicit deny` when a Deny
/// statement matched).
pub fn denial(
    op: Operation,
    principal: &str,
    account: &str,
    resource: &Resource<'_>,
    decision: Decision,
) -> ApiError {
    let explicit = if decision == Decision::ExplicitDeny {
        " with an explicit deny in an identity-based policy"
    } else {
        ""
    };
    ApiError::new(
        denial_kind(op),
        format!(
            "User: arn:aws:iam::{account}:user/{principal} is not authorized to perform: {ACTION_PREFIX}{} on resource: {resource}{explicit}",
            op.name()
        ),
    )
}

/// Who a key pair is (its profile name) and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credentials-file profile the key pair comes from.
    pub name: String,
    /// Its policy.
    pub policy: Policy,
}

/// The policies of every accepted key pair, by access key id.
#[derive(Debug, Clone, Default)]
pub struct AccessControl {
    keys: HashMap<String, Principal>,
}

impl AccessControl {
    /// No key pair.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the principal of `access_key_id`.
    pub fn insert(&mut self, access_key_id: impl Into<String>, principal: Principal) {
        self.keys.insert(access_key_id.into(), principal);
    }

    /// The principal of `access_key_id`.
    pub fn get(&self, access_key_id: &str) -> Option<&Principal> {
        self.keys.get(access_key_id)
    }

    /// How many key pairs there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is no key pair.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many key pairs have a policy narrower than full access.
    pub fn restricted(&self) -> usize {
        self.keys
            .values()
            .filter(|p| !p.policy.is_full_access())
            .count()
    }

    /// `Ok` when `access_key_id` may call `op` on `resource`; otherwise the service's error. A
    /// key without a principal (never the case for a verified key) is denied.
    pub fn check(
        &self,
        access_key_id: &str,
        op: Operation,
        resource: &Resource<'_>,
        account: &str,
    ) -> Result<(), ApiError> {
        self.check_shown(access_key_id, op, resource, resource, account)
    }

    /// [`check`](Self::check), with the denial message naming `shown` instead of `resource`.
    pub fn check_shown(
        &self,
        access_key_id: &str,
        op: Operation,
        resource: &Resource<'_>,
        shown: &Resource<'_>,
        account: &str,
    ) -> Result<(), ApiError> {
        let Some(p) = self.keys.get(access_key_id) else {
            return Err(denial(
                op,
                "unknown",
                account,
                shown,
                Decision::ImplicitDeny,
            ));
        };
        match p.policy.evaluate(op, resource) {
            Decision::Allow => Ok(()),
            d => Err(denial(op, &p.name, account, shown, d)),
        }
    }
}

/// The stream (or `*`) a request is about, as the request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `*`: ListStreams.
    All,
    /// By name and/or ARN; the name wins when both are given, as the server resolves.
    Stream {
        /// StreamName.
        name: Option<&'a str>,
        /// StreamARN (or ResourceARN).
        arn: Option<&'a str>,
    },
}

/// The target of a parsed request.
pub fn target(api: &ApiRequest) -> Target<'_> {
    macro_rules! s {
        ($name:expr, $arn:expr) => {
            Target::Stream {
                name: $name,
                arn: $arn,
            }
        };
    }
    match api {
        ApiRequest::ListStreams(_) => Target::All,
        ApiRequest::CreateStream(r) => s!(Some(&r.stream_name), None),
        ApiRequest::DeleteStream(r) => s!(None, Some(&r.stream_arn)),
        ApiRequest::DescribeStream(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::UpdateStream(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::UpdateDataRetention(r) => {
            s!(r.stream_name.as_deref(), r.stream_arn.as_deref())
        }
        ApiRequest::GetDataEndpoint(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::TagStream(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::UntagStream(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::ListTagsForStream(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::TagResource(r) => s!(None, Some(&r.resource_arn)),
        ApiRequest::UntagResource(r) => s!(None, Some(&r.resource_arn)),
        ApiRequest::ListTagsForResource(r) => s!(None, Some(&r.resource_arn)),
        ApiRequest::DescribeStreamStorageConfiguration(r) => {
            s!(r.stream_name.as_deref(), r.stream_arn.as_deref())
        }
        ApiRequest::UpdateStreamStorageConfiguration(r) => {
            s!(r.stream_name.as_deref(), r.stream_arn.as_deref())
        }
        ApiRequest::GetMedia(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::ListFragments(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::GetMediaForFragmentList(r) => {
            s!(r.stream_name.as_deref(), r.stream_arn.as_deref())
        }
        ApiRequest::GetClip(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::GetImages(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
        ApiRequest::GetHLSStreamingSessionURL(r) => {
            s!(r.stream_name.as_deref(), r.stream_arn.as_deref())
        }
        ApiRequest::GetDASHStreamingSessionURL(r) => {
            s!(r.stream_name.as_deref(), r.stream_arn.as_deref())
        }
        ApiRequest::PutMedia(r) => s!(r.stream_name.as_deref(), r.stream_arn.as_deref()),
    }
}

/// Server side: may the verified `access_key_id` make this request? Runs after SigV4
/// verification and before any side effect.
pub(crate) fn authorize(ctx: &Ctx, access_key_id: &str, api: &ApiRequest) -> Result<(), ApiError> {
    authorize_target(ctx, access_key_id, api.operation(), target(api))
}

/// Server side: [`authorize`] for PutMedia, from its headers, before the body is read. Headers
/// that do not parse are left to PutMedia itself, which refuses them before any side effect.
pub(crate) fn authorize_put_media(
    ctx: &Ctx,
    access_key_id: &str,
    headers: &http::HeaderMap,
) -> Result<(), ApiError> {
    match PutMediaRequest::from_headers(headers) {
        Ok(r) => authorize_target(
            ctx,
            access_key_id,
            Operation::PutMedia,
            Target::Stream {
                name: r.stream_name.as_deref(),
                arn: r.stream_arn.as_deref(),
            },
        ),
        Err(_) => Ok(()),
    }
}

fn authorize_target(
    ctx: &Ctx,
    access_key_id: &str,
    op: Operation,
    target: Target<'_>,
) -> Result<(), ApiError> {
    let (region, account) = (ctx.config.region.as_str(), ctx.config.account_id.as_str());
    let check = |r: &Resource<'_>| ctx.access.check(access_key_id, op, r, account);
    match target {
        Target::All => check(&Resource::All),
        Target::Stream {
            name: Some(name), ..
        } => {
            let creation_ms = ctx.registry.get(name).map(|s| lock(&s.meta).creation_ms);
            let stream = StreamResource {
                partition: "aws",
                region,
                account,
                name,
                creation_ms,
            };
            // Matched on the real ARN, but a denial names the stream as the caller did (no
            // creation time): a denied key learns nothing about whether the stream exists.
            let shown = StreamResource {
                creation_ms: None,
                ..stream
            };
            ctx.access.check_shown(
                access_key_id,
                op,
                &Resource::Stream(stream),
                &Resource::Stream(shown),
                account,
            )
        }
        Target::Stream {
            name: None,
            arn: Some(arn),
        } => match arn.parse::<ResourceArn>() {
            Ok(p) if p.is_stream() => check(&Resource::Stream(StreamResource {
                partition: &p.partition,
                region: &p.region,
                account: &p.account,
                name: &p.name,
                creation_ms: Some(p.creation_millis),
            })),
            _ => check(&Resource::Unresolved(arn)),
        },
        Target::Stream {
            name: None,
            arn: None,
        } => check(&Resource::Unresolved("")),
    }
}

/// Text a glob matches against, by byte index.
trait Text {
    fn len(&self) -> usize;
    fn at(&self, i: usize) -> u8;
}

impl Text for &[u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn at(&self, i: usize) -> u8 {
        self.get(i).copied().unwrap_or(0)
    }
}

/// Text made of pieces, matched without concatenating them.
struct Pieces<'a, const N: usize>([&'a [u8]; N]);

impl<const N: usize> Pieces<'_, N> {
    /// The pieces back to back in `buf`, or `None` when they do not fit.
    fn copy_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut at = 0usize;
        for p in &self.0 {
            let end = at.checked_add(p.len())?;
            buf.get_mut(at..end)?.copy_from_slice(p);
            at = end;
        }
        buf.get(..at)
    }
}

impl<const N: usize> Text for Pieces<'_, N> {
    fn len(&self) -> usize {
        self.0.iter().map(|p| p.len()).sum()
    }

    fn at(&self, mut i: usize) -> u8 {
        for p in &self.0 {
            match p.get(i) {
                Some(b) => return *b,
                None => i -= p.len(),
            }
        }
        0
    }
}

/// Glob match of the whole `text`: `*` matches any run of bytes (also empty), `?` one byte.
/// Linear backtracking on the last `*` (no recursion, no allocation).
fn glob(pattern: &[u8], text: &impl Text, fold_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let n = text.len();
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < n {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(&c) if c == b'?' || eq(c, text.at(t)) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern.iter().skip(p).all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, t: &str) -> bool {
        glob(p.as_bytes(), &t.as_bytes(), false)
    }

    fn stream(name: &str) -> Resource<'_> {
        Resource::Stream(StreamResource {
            partition: "aws",
            region: "us-east-1",
            account: "000000000000",
            name,
            creation_ms: Some(1705489836421),
        })
    }

    #[test]
    fn glob_basics() {
        assert!(g("*", ""));
        assert!(g("*", "anything"));
        assert!(g("cam-*", "cam-"));
        assert!(g("cam-*", "cam-12"));
        assert!(!g("cam-*", "Cam-1"));
        assert!(!g("cam-*", "lobby"));
        assert!(g("c?m-1", "cam-1"));
        assert!(!g("c?m-1", "cm-1"));
        assert!(g("*-1", "cam-1"));
        assert!(g("a*b*c", "aXXbYYbZc"));
        assert!(!g("a*b*c", "aXXbYYbZ"));
        assert!(g("**", "x"));
        assert!(!g("", "x"));
        assert!(g("", ""));
        assert!(glob(b"describe*", &b"DescribeStream".as_slice(), true));
    }

    #[test]
    fn pieces_match_like_the_formatted_arn() {
        let r = stream("cam-1");
        assert_eq!(
            r.to_string(),
            "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam-1/1705489836421"
        );
        for p in [
            "arn:aws:kinesisvideo:*:*:stream/cam-*/*",
            "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam-1/1705489836421",
            "arn:aws:kinesisvideo:*",
            "arn:*:kinesisvideo:*:*:stream/cam-?/*",
        ] {
            assert!(ResourcePattern::arn(p).unwrap().matches(&r), "{p}");
        }
        for p in [
            "arn:aws:kinesisvideo:*:*:stream/lobby/*",
            "arn:aws:kinesisvideo:eu-west-1:*:stream/cam-1/*",
            "arn:aws:kinesisvideo:*:*:stream/cam-1/1",
        ] {
            assert!(!ResourcePattern::arn(p).unwrap().matches(&r), "{p}");
        }
        // An ARN too long for the stack buffer is matched piece by piece, with the same result.
        let long_region = "r".repeat(200);
        let long_name = "n".repeat(256);
        let long = Resource::Stream(StreamResource {
            partition: "aws",
            region: &long_region,
            account: "000000000000",
            name: &long_name,
            creation_ms: Some(7),
        });
        assert!(long.to_string().len() > 384);
        assert!(
            ResourcePattern::arn("arn:aws:kinesisvideo:r*:*:stream/n*n/7")
                .unwrap()
                .matches(&long)
        );
        assert!(
            !ResourcePattern::arn("arn:aws:kinesisvideo:r*:*:stream/n*x/7")
                .unwrap()
                .matches(&long)
        );
        let missing = Resource::Stream(StreamResource {
            creation_ms: None,
            ..match r {
                Resource::Stream(s) => s,
                _ => unreachable!(),
            }
        });
        assert!(missing.to_string().ends_with("stream/cam-1/*"));
        let zero = Resource::Stream(StreamResource {
            creation_ms: Some(0),
            ..match r {
                Resource::Stream(s) => s,
                _ => unreachable!(),
            }
        });
        assert!(zero.to_string().ends_with("stream/cam-1/0"));
    }

    #[test]
    fn actions_parse_and_validate() {
        assert_eq!(Actions::parse("*").unwrap(), Actions::all());
        assert_eq!(Actions::parse("kinesisvideo:*").unwrap(), Actions::all());
        let a = Actions::parse("kinesisvideo:GetMedia").unwrap();
        assert!(a.contains(Operation::GetMedia));
        assert!(!a.contains(Operation::GetMediaForFragmentList));
        let d = Actions::parse("KinesisVideo:describe*").unwrap();
        assert!(d.contains(Operation::DescribeStream));
        assert!(d.contains(Operation::DescribeStreamStorageConfiguration));
        assert!(!d.contains(Operation::ListStreams));
        assert!(matches!(
            Actions::parse("kinesisvideo:PutMeda"),
            Err(PolicyError::UnknownAction { .. })
        ));
        for bad in [
            "PutMedia",
            "s3:GetObject",
            "kinesisvideo:",
            "kinesisvideo:Put Media",
        ] {
            assert!(
                matches!(Actions::parse(bad), Err(PolicyError::BadAction(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Actions::parse_list(" , ", "kvs_allow"),
            Err(PolicyError::Empty("kvs_allow"))
        );
        assert!(Operation::ALL.len() <= 64);
        assert!(Operation::ALL.iter().all(|op| bit(*op) != 0));
    }

    #[test]
    fn profile_keys_build_the_policy() {
        let full = Policy::from_profile_keys(None, None, None, false).unwrap();
        assert!(full.is_full_access());
        assert_eq!(full, Policy::full_access());

        let ro = Policy::from_profile_keys(
            Some("kinesisvideo:GetMedia, kinesisvideo:ListFragments, kinesisvideo:Describe*"),
            None,
            None,
            false,
        )
        .unwrap();
        assert!(!ro.is_full_access());
        assert_eq!(
            ro.evaluate(Operation::GetMedia, &stream("x")),
            Decision::Allow
        );
        assert_eq!(
            ro.evaluate(Operation::PutMedia, &stream("x")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            ro.evaluate(Operation::DeleteStream, &stream("x")),
            Decision::ImplicitDeny
        );

        let cam = Policy::from_profile_keys(None, None, Some("cam-*, lobby-?"), false).unwrap();
        assert_eq!(
            cam.evaluate(Operation::PutMedia, &stream("cam-1")),
            Decision::Allow
        );
        assert_eq!(
            cam.evaluate(Operation::GetMedia, &stream("lobby-1")),
            Decision::Allow
        );
        assert_eq!(
            cam.evaluate(Operation::GetMedia, &stream("lobby")),
            Decision::ImplicitDeny
        );
        // ListStreams is on `*`: a scoped key cannot list.
        assert_eq!(
            cam.evaluate(Operation::ListStreams, &Resource::All),
            Decision::ImplicitDeny
        );
        // A name pattern never matches what could not be resolved to a stream.
        assert_eq!(
            cam.evaluate(Operation::DescribeStream, &Resource::Unresolved("cam-1")),
            Decision::ImplicitDeny
        );

        let deny = Policy::from_profile_keys(
            Some("kinesisvideo:*"),
            Some("kinesisvideo:DeleteStream"),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            deny.evaluate(Operation::DeleteStream, &stream("a")),
            Decision::ExplicitDeny
        );
        assert_eq!(
            deny.evaluate(Operation::CreateStream, &stream("a")),
            Decision::Allow
        );

        // Only a deny: everything else stays allowed.
        let only_deny =
            Policy::from_profile_keys(None, Some("kinesisvideo:Delete*"), None, false).unwrap();
        assert_eq!(
            only_deny.evaluate(Operation::ListStreams, &Resource::All),
            Decision::Allow
        );
        // With a policy document and no allow keys, nothing is implied.
        let with_doc =
            Policy::from_profile_keys(None, Some("kinesisvideo:Delete*"), None, true).unwrap();
        assert_eq!(
            with_doc.evaluate(Operation::ListStreams, &Resource::All),
            Decision::ImplicitDeny
        );

        assert_eq!(
            Policy::from_profile_keys(None, None, Some("cam/*"), false)
                .unwrap_err()
                .0,
            "kvs_streams"
        );
        assert_eq!(
            Policy::from_profile_keys(Some("GetMedia"), None, None, false)
                .unwrap_err()
                .0,
            "kvs_allow"
        );
        assert_eq!(
            Policy::from_profile_keys(None, Some(""), None, false)
                .unwrap_err()
                .0,
            "kvs_deny"
        );
    }

    #[test]
    fn iam_documents() {
        let p = Policy::from_iam_json(
            r#"{
              "Version": "2012-10-17",
              "Statement": [
                {"Sid": "Cams", "Effect": "Allow", "Action": ["kinesisvideo:PutMedia", "kinesisvideo:Describe*"],
                 "Resource": "arn:aws:kinesisvideo:*:*:stream/cam-*/*"},
                {"Effect": "Allow", "Action": "kinesisvideo:ListStreams", "Resource": "*"},
                {"Effect": "Deny", "Action": "kinesisvideo:*", "Resource": ["arn:aws:kinesisvideo:*:*:stream/cam-secret/*"]}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(p.statements().len(), 3);
        assert_eq!(
            p.evaluate(Operation::PutMedia, &stream("cam-1")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(Operation::GetMedia, &stream("cam-1")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            p.evaluate(Operation::PutMedia, &stream("cam-secret")),
            Decision::ExplicitDeny
        );
        assert_eq!(
            p.evaluate(Operation::ListStreams, &Resource::All),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(Operation::PutMedia, &stream("lobby")),
            Decision::ImplicitDeny
        );
        // One statement object instead of a list.
        let one = Policy::from_iam_json(
            r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#,
        )
        .unwrap();
        assert!(one.is_full_access());

        for (doc, needle) in [
            ("[]", "JSON object"),
            ("{", "not valid JSON"),
            (r#"{"Statement": 3}"#, "Statement must be"),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "*"}]}"#,
                "Resource is missing",
            ),
            (
                r#"{"Statement": [{"Effect": "allow", "Action": "*", "Resource": "*"}]}"#,
                "Effect",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "NotAction": "*", "Resource": "*"}]}"#,
                "NotAction is not supported",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "kinesisvideo:Nope", "Resource": "*"}]}"#,
                "Statement 1: action 'kinesisvideo:Nope' matches no operation",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "cam-*"}]}"#,
                "not '*' nor a kinesisvideo ARN",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}]}"#,
                "kinesisvideo ARN",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}"#,
                "string or a list",
            ),
        ] {
            let e = Policy::from_iam_json(doc).unwrap_err().to_string();
            assert!(e.contains(needle), "{doc}: {e}");
        }
    }

    #[test]
    fn denial_errors() {
        assert_eq!(
            denial_kind(Operation::PutMedia),
            ApiErrorKind::NotAuthorized
        );
        assert_eq!(
            denial_kind(Operation::DeleteStream),
            ApiErrorKind::NotAuthorized
        );
        assert_eq!(
            denial_kind(Operation::CreateStream),
            ApiErrorKind::AccessDenied
        );
        assert_eq!(
            denial_kind(Operation::ListStreams),
            ApiErrorKind::AccessDenied
        );
        let mut ac = AccessControl::new();
        ac.insert(
            "AKIARO",
            Principal {
                name: "reader".into(),
                policy: Policy::from_profile_keys(Some("kinesisvideo:Get*"), None, None, false)
                    .unwrap(),
            },
        );
        let e = ac
            .check(
                "AKIARO",
                Operation::PutMedia,
                &stream("cam-1"),
                "000000000000",
            )
            .unwrap_err();
        assert_eq!(e.http_status, 401);
        assert_eq!(
            e.message,
            "User: arn:aws:iam::000000000000:user/reader is not authorized to perform: kinesisvideo:PutMedia on resource: arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam-1/1705489836421"
        );
        assert!(
            ac.check("AKIARO", Operation::GetMedia, &stream("cam-1"), "0")
                .is_ok()
        );
        assert!(
            ac.check("AKIAOTHER", Operation::GetMedia, &stream("cam-1"), "0")
                .is_err()
        );
        assert_eq!(ac.restricted(), 1);
    }

    /// A reference matcher (recursive, exponential) to check the linear one against.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(b'?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    #[test]
    fn glob_agrees_with_a_reference_matcher() {
        // Every pattern and text over a small alphabet up to length 5 / 6.
        let alphabet = [b'a', b'b', b'*', b'?'];
        let texts = [b'a', b'b'];
        let mut patterns = vec![Vec::new()];
        for _ in 0..5 {
            let next: Vec<Vec<u8>> = patterns
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |c| {
                        let mut q = p.clone();
                        q.push(*c);
                        q
                    })
                })
                .collect();
            patterns.extend(next.into_iter().filter(|p| p.len() <= 4));
            patterns.sort();
            patterns.dedup();
        }
        let mut all_texts = vec![Vec::new()];
        for len in 1..=6u32 {
            for k in 0..(1u32 << len) {
                all_texts.push((0..len).map(|i| texts[((k >> i) & 1) as usize]).collect());
            }
        }
        for p in &patterns {
            for t in &all_texts {
                assert_eq!(
                    glob(p, &t.as_slice(), false),
                    reference(p, t),
                    "{:?} {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(t)
                );
                // Split anywhere into pieces: same answer.
                let mid = t.len() / 2;
                let pieces = Pieces([&t[..mid], &t[mid..]]);
                assert_eq!(glob(p, &pieces, false), reference(p, t));
            }
        }
    }
}
