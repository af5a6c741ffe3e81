//! KVS resource ARNs: `arn:<partition>:kinesisvideo:<region>:<account>:<type>/<name>/<creationMillis>`.

use core::fmt;
use core::str::FromStr;

/// Longest ARN the models accept.
pub const MAX_ARN_LEN: usize = 1024;

/// A parsed KVS resource ARN (a stream or a signaling channel).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceArn {
    /// `aws`, `aws-cn`, ... (`[a-z0-9-]+`).
    pub partition: String,
    /// Region, e.g. `us-east-1` (`[a-z0-9-]+`).
    pub region: String,
    /// Account id (digits).
    pub account: String,
    /// Resource type, `stream` or `channel` (`[a-z]+`).
    pub resource_type: String,
    /// The stream or channel name.
    pub name: String,
    /// Creation time in epoch milliseconds (the trailing number).
    pub creation_millis: u64,
}

/// Why a string is not a KVS resource ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArnError {
    /// Longer than 1024 characters.
    #[error("ARN is {0} characters long; at most 1024 are allowed")]
    TooLong(usize),
    /// A part is missing or has characters its pattern does not allow.
    #[error("ARN part {part} is invalid: expected {expected}")]
    BadPart {
        /// Which part (`prefix`, `partition`, `service`, `region`, `account`, `type`, `name`,
        /// `creation time`).
        part: &'static str,
        /// What the pattern requires.
        expected: &'static str,
    },
}

impl ResourceArn {
    /// The ARN of stream `name` created at `creation_millis` in the `aws` partition.
    pub fn stream(region: &str, account: &str, name: &str, creation_millis: u64) -> Self {
        ResourceArn {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
            resource_type: "stream".into(),
            name: name.into(),
            creation_millis,
        }
    }

    /// True for `stream/...` ARNs.
    pub fn is_stream(&self) -> bool {
        self.resource_type == "stream"
    }
}

impl fmt::Display for ResourceArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kinesisvideo:{}:{}:{}/{}/{}",
            self.partition,
            self.region,
            self.account,
            self.resource_type,
            self.name,
            self.creation_millis
        )
    }
}

impl FromStr for ResourceArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, ArnError> {
        if s.len() > MAX_ARN_LEN {
            return Err(ArnError::TooLong(s.chars().count()));
        }
        let bad = |part, expected| ArnError::BadPart { part, expected };
        let lower_digit_dash = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let mut parts = s.splitn(6, ':');
        if parts.next() != Some("arn") {
            return Err(bad("prefix", "arn"));
        }
        let partition = parts
            .next()
            .filter(|p| lower_digit_dash(p))
            .ok_or(bad("partition", "[a-z0-9-]+"))?;
        if parts.next() != Some("kinesisvideo") {
            return Err(bad("service", "kinesisvideo"));
        }
        let region = parts
            .next()
            .filter(|p| lower_digit_dash(p))
            .ok_or(bad("region", "[a-z0-9-]+"))?;
        let account = parts
            .next()
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(bad("account", "[0-9]+"))?;
        let resource = parts.next().ok_or(bad("type", "[a-z]+"))?;
        let (resource_type, rest) = resource.split_once('/').ok_or(bad("type", "[a-z]+"))?;
        if resource_type.is_empty() || !resource_type.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad("type", "[a-z]+"));
        }
        let (name, creation) = rest
            .rsplit_once('/')
            .ok_or(bad("creation time", "[0-9]+"))?;
        if name.is_empty() || name.contains('/') || !name.bytes().all(is_name_byte) {
            return Err(bad("name", "[a-zA-Z0-9_.-]+"));
        }
        if creation.is_empty() || !creation.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("creation time", "[0-9]+"));
        }
        let creation_millis = creation
            .parse()
            .map_err(|_| bad("creation time", "a 64-bit number"))?;
        Ok(ResourceArn {
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            resource_type: resource_type.into(),
            name: name.into(),
            creation_millis,
        })
    }
}

/// `[a-zA-Z0-9_.-]`
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}
