//! Field constraints of the KVS models (names, ARNs, tokens, tags, ranges), checked the same
//! way by clients before sending and by servers on receipt.
//!
//! Every check returns an [`ApiError`] of kind `InvalidArgumentException` whose message follows
//! the service's validation style: `1 validation error detected: Value 'x' at 'streamName'
//! failed to satisfy constraint: Member must ...`.

use super::arn::ResourceArn;
use super::error::ApiError;

/// Longest value quoted back in a validation message.
const MAX_QUOTED: usize = 256;

/// The validation error the service writes for `member` holding `value`.
pub fn constraint_error(member: &str, value: &str, constraint: &str) -> ApiError {
    let mut quoted: String = value.chars().take(MAX_QUOTED).collect();
    if quoted.len() < value.len() {
        quoted.push_str("...");
    }
    ApiError::invalid_argument(format!(
        "1 validation error detected: Value '{quoted}' at '{}' failed to satisfy constraint: \
         Member must {constraint}",
        lower_camel(member)
    ))
}

/// The validation error for a missing required member.
pub fn missing(member: &str) -> ApiError {
    ApiError::invalid_argument(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member \
         must not be null",
        lower_camel(member)
    ))
}

/// `streamName` for `StreamName`, `startSelector.afterFragmentNumber` for
/// `StartSelector.AfterFragmentNumber`, as Coral names members.
fn lower_camel(member: &str) -> String {
    member
        .split('.')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_lowercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks a character length (the models count characters) in `min..=max`.
pub fn length(member: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min {
        return Err(constraint_error(
            member,
            value,
            &format!("have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(constraint_error(
            member,
            value,
            &format!("have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Checks an integer range.
pub fn range(member: &str, value: i64, min: i64, max: i64) -> Result<(), ApiError> {
    if value < min {
        return Err(constraint_error(
            member,
            &value.to_string(),
            &format!("have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(constraint_error(
            member,
            &value.to_string(),
            &format!("have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// Checks a list or map size.
pub fn count(member: &str, n: usize, min: usize, max: usize) -> Result<(), ApiError> {
    if n < min || n > max {
        return Err(ApiError::invalid_argument(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must \
             have length between {min} and {max}, got {n}",
            lower_camel(member)
        )));
    }
    Ok(())
}

fn pattern(member: &str, value: &str, ok: bool, pattern: &str) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(constraint_error(
            member,
            value,
            &format!("satisfy regular expression pattern: {pattern}"),
        ))
    }
}

/// `[a-zA-Z0-9_.-]`
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// True for a valid stream (or channel) name: 1–256 characters of `[a-zA-Z0-9_.-]`.
pub fn is_valid_stream_name(name: &str) -> bool {
    (1..=256).contains(&name.len()) && name.bytes().all(is_name_char)
}

/// StreamName / ChannelName: 1–256, `[a-zA-Z0-9_.-]+`.
pub fn stream_name(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 256)?;
    pattern(
        member,
        value,
        value.bytes().all(is_name_char),
        "[a-zA-Z0-9_.-]+",
    )
}

/// DeviceName: 1–128, `[a-zA-Z0-9_.-]+`.
pub fn device_name(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 128)?;
    pattern(
        member,
        value,
        value.bytes().all(is_name_char),
        "[a-zA-Z0-9_.-]+",
    )
}

/// MediaType: 1–128, comma-separated `type/subtype` of `[\w\-\.\+]`.
pub fn media_type(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 128)?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b))
    };
    let ok = value.split(',').all(|mime| {
        mime.split_once('/')
            .is_some_and(|(t, s)| word(t) && word(s))
    });
    pattern(
        member,
        value,
        ok,
        r"[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*",
    )
}

/// KmsKeyId: 1–2048, `.+` (no line terminators).
pub fn kms_key_id(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 2048)?;
    pattern(member, value, !value.contains(['\n', '\r']), ".+")
}

/// Version / CurrentVersion: 1–64, `[a-zA-Z0-9]+`.
pub fn version(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 64)?;
    pattern(
        member,
        value,
        value.bytes().all(|b| b.is_ascii_alphanumeric()),
        "[a-zA-Z0-9]+",
    )
}

/// ResourceARN / StreamARN: 1–1024 and the model's ARN pattern. `aws_only` applies the media
/// model's variant, which hard-codes the `aws` partition.
pub fn resource_arn(member: &str, value: &str, aws_only: bool) -> Result<(), ApiError> {
    length(member, value, 1, 1024)?;
    let ok = value
        .parse::<ResourceArn>()
        .is_ok_and(|arn| !aws_only || arn.partition == "aws");
    let pat = if aws_only {
        "arn:aws"
    } else {
        r"arn:[a-z\d-]+"
    };
    pattern(
        member,
        value,
        ok,
        &format!("{pat}:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"),
    )
}

/// Control-plane NextToken: 0–1024, `[a-zA-Z0-9+/=]*`.
pub fn control_next_token(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 0, 1024)?;
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    pattern(member, value, ok, "[a-zA-Z0-9+/=]*")
}

/// Archived-media NextToken: 1–4096, `[a-zA-Z0-9+/]+={0,2}`.
pub fn archived_next_token(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 4096)?;
    let body = value.trim_end_matches('=');
    let ok = !body.is_empty()
        && value.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/".contains(&b));
    pattern(member, value, ok, "[a-zA-Z0-9+/]+={0,2}")
}

/// Fragment number: 1–128, `^[0-9]+$`.
pub fn fragment_number(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 128)?;
    pattern(
        member,
        value,
        value.bytes().all(|b| b.is_ascii_digit()),
        "^[0-9]+$",
    )
}

/// GetMedia ContinuationToken: 1–128, `^[a-zA-Z0-9_\.\-]+$`.
pub fn continuation_token(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 128)?;
    pattern(
        member,
        value,
        value.bytes().all(is_name_char),
        r"^[a-zA-Z0-9_\.\-]+$",
    )
}

/// Tag characters: Unicode letters, separators and digits plus `_ . : / = + - @`.
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

/// TagKey: 1–128, `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`.
pub fn tag_key(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 1, 128)?;
    pattern(
        member,
        value,
        value.chars().all(is_tag_char),
        r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
    )
}

/// TagValue: 0–256, `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`.
pub fn tag_value(member: &str, value: &str) -> Result<(), ApiError> {
    length(member, value, 0, 256)?;
    pattern(
        member,
        value,
        value.chars().all(is_tag_char),
        r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*",
    )
}

/// A tag map (`ResourceTags`): 1–50 entries, each key and value valid.
pub fn tag_map<'a>(
    member: &str,
    tags: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), ApiError> {
    count(member, tags.len(), 1, 50)?;
    for (k, v) in tags {
        tag_key(&format!("{member}.key"), k)?;
        tag_value(&format!("{member}.value"), v)?;
    }
    Ok(())
}

/// A list of tag keys (`TagKeyList`): 1–50 valid keys.
pub fn tag_key_list(member: &str, keys: &[String]) -> Result<(), ApiError> {
    count(member, keys.len(), 1, 50)?;
    keys.iter().try_for_each(|k| tag_key(member, k))
}

/// Exactly one of StreamName and StreamARN, each valid.
pub fn one_stream(
    name: Option<&str>,
    arn: Option<&str>,
    aws_only_arn: bool,
) -> Result<(), ApiError> {
    match (name, arn) {
        (Some(name), None) => stream_name("StreamName", name),
        (None, Some(arn)) => resource_arn("StreamARN", arn, aws_only_arn),
        (Some(_), Some(_)) => Err(ApiError::invalid_argument(
            "Specify either StreamName or StreamARN, not both.",
        )),
        (None, None) => Err(ApiError::invalid_argument(
            "Either StreamName or StreamARN must be specified.",
        )),
    }
}
