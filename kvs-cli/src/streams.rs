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
                if !args.json {
                    println!("deleted {name}")
                }
            }
            StreamsCommand::UpdateRetention { name, change_hours } => {
                client
                    .update_retention(name, *change_hours)
                    .await
                    .map_err(|e| e.to_string())?;
                if !args.json {
                    println!("retention of {name} changed by {change_hours} h")
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
                    .tag_stream(name, map)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            StreamsCommand::Untag { name, keys } => {
                client
                    .untag_stream(name, keys.clone())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}
