//! The shared AWS config and credentials files (`~/.aws/config`, `~/.aws/credentials`), parsed the
//! way the AWS CLI reads them, from their contents (the caller reads the files).

use std::collections::BTreeMap;
use std::fmt;

/// Which of the two shared files a text comes from; their section headers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `~/.aws/config`: profiles are `[default]` and `[profile NAME]`; other sections
    /// (`[sso-session x]`, `[services x]`, a bare `[NAME]`) are not profiles.
    Config,
    /// `~/.aws/credentials`: every section `[NAME]` is the profile `NAME`.
    Credentials,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Config => "shared config file",
            FileKind::Credentials => "shared credentials file",
        })
    }
}

/// A line of a shared file that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}, line {line}: {reason}")]
#[non_exhaustive]
pub struct ProfileParseError {
    /// Which file.
    pub file: FileKind,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how the line should look.
    pub reason: &'static str,
}

/// One profile: its top-level `key = value` properties (keys lower-cased).
///
/// Nested sub-properties (indented lines under `key =`, as in `s3 =` blocks) are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    properties: BTreeMap<String, String>,
}

impl Profile {
    /// The value of a property, by lower-case key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// All properties, sorted by key.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds every property of `other`, overriding equal keys.
    pub fn merge_from(&mut self, other: &Profile) {
        for (k, v) in &other.properties {
            self.properties.insert(k.clone(), v.clone());
        }
    }
}

/// The profiles of one shared file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileSet {
    profiles: BTreeMap<String, Profile>,
}

/// Where the properties of the current section go.
enum Target {
    /// A profile by name (`explicit_default` marks `[profile default]` in the config file).
    Profile {
        name: String,
        explicit_default: bool,
    },
    /// A section that is not a profile: its lines are checked but not kept.
    Ignored,
}

impl ProfileSet {
    /// Parses the text of a shared file.
    ///
    /// Comments start with `#` or `;` at the beginning of a line, or after whitespace at the end of
    /// a line (botocore keeps such a trailing comment in the value; kvs drops it, since no
    /// region, key or URL contains whitespace); `key = value` may have spaces around `=`; repeated sections merge (later values win).
    /// In the config file, `[profile default]` takes precedence over `[default]`.
    pub fn parse(text: &str, kind: FileKind) -> Result<Self, ProfileParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut plain_default = Profile::default();
        let mut explicit_default: Option<Profile> = None;
        let mut profiles: BTreeMap<String, Profile> = BTreeMap::new();
        let mut target: Option<Target> = None;
        let mut after_property = false;
        let mut saw_plain_default = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |reason| ProfileParseError {
                file: kind,
                line,
                reason,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            // An indented line after a property continues it (multi-line value or nested
            // sub-properties): not part of the profile's top-level properties.
            if after_property && raw.starts_with([' ', '\t']) {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some((name, after)) = rest.split_once(']') else {
                    return Err(err("section header has no closing ']'; write [name]"));
                };
                let after = after.trim_start();
                if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
                    return Err(err("unexpected text after a section header"));
                }
                let section = section_target(name.trim(), kind);
                // A section with no properties still defines the profile.
                match &section {
                    Target::Profile {
                        name,
                        explicit_default: true,
                    } if name == "default" => {
                        explicit_default.get_or_insert_with(Profile::default);
                    }
                    Target::Profile { name, .. } if name == "default" => saw_plain_default = true,
                    Target::Profile { name, .. } => {
                        profiles.entry(name.clone()).or_default();
                    }
                    Target::Ignored => {}
                }
                target = Some(section);
                after_property = false;
                continue;
            }
            let Some(current) = &target else {
                return Err(err(
                    "property before any section header; put it under [default] or [profile NAME]",
                ));
            };
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(err("expected 'key = value'"));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(err("empty key before '='"));
            }
            let value = strip_inline_comment(value).trim();
            after_property = true;
            let profile = match current {
                Target::Ignored => continue,
                Target::Profile {
                    name,
                    explicit_default: true,
                } if name == "default" => explicit_default.get_or_insert_with(Profile::default),
                Target::Profile { name, .. } if name == "default" => &mut plain_default,
                Target::Profile { name, .. } => profiles.entry(name.clone()).or_default(),
            };
            profile
                .properties
                .insert(key.to_ascii_lowercase(), value.to_owned());
        }
        let mut set = ProfileSet { profiles };
        if let Some(default) = explicit_default {
            set.profiles.insert("default".to_owned(), default);
        } else if saw_plain_default {
            set.profiles.insert("default".to_owned(), plain_default);
        }
        Ok(set)
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// The profile names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }
}

fn section_target(name: &str, kind: FileKind) -> Target {
    match kind {
        FileKind::Credentials if !name.is_empty() => Target::Profile {
            name: name.to_owned(),
            explicit_default: false,
        },
        FileKind::Config if name == "default" => Target::Profile {
            name: name.to_owned(),
            explicit_default: false,
        },
        FileKind::Config => match name.strip_prefix("profile") {
            Some(rest) if rest.starts_with([' ', '\t']) && !rest.trim().is_empty() => {
                Target::Profile {
                    name: rest.trim().to_owned(),
                    explicit_default: true,
                }
            }
            _ => Target::Ignored,
        },
        FileKind::Credentials => Target::Ignored,
    }
}

/// Cuts a `#` or `;` comment that follows whitespace.
fn strip_inline_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (i, pair) in bytes.windows(2).enumerate() {
        if let [b' ' | b'\t', b'#' | b';'] = pair {
            return value.get(..i).unwrap_or(value);
        }
    }
    value
}
