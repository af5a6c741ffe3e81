//! `kvs streams`: the control plane.

use std::collections::BTreeMap;

use clap::{Args as ClapArgs, Subcommand};

use crate::common::{self, GlobalArgs};

/// Options of `kvs streams`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: StreamsCommand,
    /// JSON output.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum StreamsCommand {
    /// Create a stream.
    Create {
        /// Name.
        name: String,
        /// Retention in hours (0 keeps no data).
        #[arg(long, default_value_t = 24)]
        retention_hours: i64,
        /// Return at once instead of waiting until the stream is ACTIVE.
        #[arg(long)]
        no_wait: bool,
    },
    /// List streams.
    List,
    /// Describe a stream.
    Describe {
        /// Name.
        name: String,
    },
    /// Delete a stream.
    Delete {
        /// Name.
        name: String,
    },
    /// Change the retention by a number of hours (negative decreases).
    UpdateRetention {
        /// Name.
        name: String,
        /// Change in hours.
        #[arg(allow_negative_numbers = true)]
        change_hours: i64,
    },
    /// Add tags (KEY=VALUE ...).
    Tag {
        /// Name.
        name: String,
        /// KEY=VALUE pairs.
        tags: Vec<String>,
    },
    /// List a stream's tags (ListTagsForStream).
    Tags {
        /// Name.
        name: String,
    },
    /// Remove tags by key.
    Untag {
        /// Name.
        name: String,
        /// Keys.
        keys: Vec<String>,
    },
}

/// Runs `kvs streams`.
pub fn run(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let rt = common::runtime()?;
    rt.block_on(async {
        let client = global.client()?;
        let json = |v: serde_json::Value| println!("{v}");
        match &args.command {
            StreamsCommand::Create {
                name,
                retention_hours,
                no_wait,
            } => {
                let r = client
                    .create_stream(name, *retention_hours)
                    .await
                    .map_err(|e| e.to_string())?;
                if !no_wait {
                    client
                        .wait_active(name, std::time::Duration::from_secs(60))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if args.json {
                    json(serde_json::json!({"StreamARN": r.stream_arn}))
                } else {
                    println!("{}", r.stream_arn)
                }
            }
            StreamsCommand::List => {
                let list = client.list_streams().await.map_err(|e| e.to_string())?;
                for s in list {
                    if args.json {
                        json(serde_json::to_value(&s).map_err(|e| e.to_string())?);
                    } else {
                        println!(
                            "{:<40} {:<9} {:>6} h  {}",
                            s.stream_name,
                            s.status.to_string(),
                            s.data_retention_in_hours,
                            s.stream_arn
                        );
                    }
                }
            }
            StreamsCommand::Describe { name } => {
                let r = client
                    .describe_stream(name)
                    .await
                    .map_err(|e| e.to_string())?;
                let v = serde_json::to_value(&r).map_err(|e| e.to_string())?;
                if args.json {
                    json(v)
                } else {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
                    )
                }
            }
            StreamsCommand::Delete { name } => {
                client
                    .delete_stream(name)
                    .await
                    .map_err(|e| e.to_string())?;
                if args.json {
                    json(serde_json::json!({"StreamName": name, "Deleted": true}))
                } else {
                    println!("deleted {name}")
                }
            }
            StreamsCommand::UpdateRetention { name, change_hours } => {
                if *change_hours == 0 {
                    return Err("the retention change must not be 0 hours".into());
                }
                client
                    .update_retention(name, *change_hours)
                    .await
                    .map_err(|e| e.to_string())?;
                let now = client
                    .describe_stream(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .stream_info
                    .data_retention_in_hours;
                if args.json {
                    json(serde_json::json!({
                        "StreamName": name, "ChangeInHours": change_hours,
                        "DataRetentionInHours": now,
                    }))
                } else {
                    println!("retention of {name} changed by {change_hours} h, now {now} h")
                }
            }
            StreamsCommand::Tag { name, tags } => {
                let mut map = BTreeMap::new();
                for t in tags {
                    let (k, v) = t
                        .split_once('=')
                        .ok_or_else(|| format!("tag {t:?} is not KEY=VALUE"))?;
                    map.insert(k.to_owned(), v.to_owned());
                }
                client
                    .tag_stream(name, map.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                if args.json {
                    json(serde_json::json!({"StreamName": name, "Tagged": map}))
                } else {
                    println!("tagged {name} with {} tag(s)", map.len())
                }
            }
            StreamsCommand::Tags { name } => {
                let tags = client
                    .list_tags(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .tags
                    .unwrap_or_default();
                if args.json {
                    json(serde_json::json!({"StreamName": name, "Tags": tags}))
                } else {
                    for (k, v) in &tags {
                        println!("{k}={v}")
                    }
                }
            }
            StreamsCommand::Untag { name, keys } => {
                client
                    .untag_stream(name, keys.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                if args.json {
                    json(serde_json::json!({"StreamName": name, "Untagged": keys}))
                } else {
                    println!("removed {} tag key(s) from {name}", keys.len())
                }
            }
        }
        Ok(())
    })
}
