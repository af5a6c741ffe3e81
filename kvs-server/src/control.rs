//! The control plane: streams, tags, retention, storage configuration, data endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use kvs_core::api::names::is_valid_stream_name;
use kvs_core::api::*;

use crate::http_service::Ctx;
use crate::state::{Stream, StreamMeta, default_kms_key, lock, new_version};

const MAX_TAGS: usize = 50;
const MAX_RETENTION_HOURS: i64 = 87_600;

fn not_found() -> ApiError {
    ApiError::stream_not_found()
}

fn version_mismatch(current: &str) -> ApiError {
    ApiError::new(
        ApiErrorKind::VersionMismatch,
        format!("The version {current} does not match the stream's current version."),
    )
}

/// Finds a stream by name or ARN (any status).
pub(crate) fn find_any(
    ctx: &Ctx,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<Arc<Stream>, ApiError> {
    if let Some(name) = name {
        if !is_valid_stream_name(name) {
            return Err(not_found());
        }
        return ctx.registry.get(name).ok_or_else(not_found);
    }
    let arn =
        arn.ok_or_else(|| ApiError::invalid_argument("StreamName or StreamARN is required."))?;
    let parsed: ResourceArn = arn.parse().map_err(|e: ArnError| {
        ApiError::new(
            ApiErrorKind::InvalidArgument,
            format!("Invalid ARN {arn}: {e}"),
        )
    })?;
    // Every part must be this server's: access policies match the ARN as the caller wrote it,
    // so one that differs anywhere (partition included) from the stream's own must not resolve.
    if !parsed.is_stream()
        || parsed.partition != "aws"
        || parsed.region != ctx.config.region
        || parsed.account != ctx.config.account_id
        || !is_valid_stream_name(&parsed.name)
    {
        return Err(not_found());
    }
    let s = ctx.registry.get(&parsed.name).ok_or_else(not_found)?;
    if lock(&s.meta).creation_ms != parsed.creation_millis {
        return Err(not_found());
    }
    Ok(s)
}

/// Finds a stream that is not being deleted.
pub(crate) fn find(
    ctx: &Ctx,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<Arc<Stream>, ApiError> {
    let s = find_any(ctx, name, arn)?;
    if !s.is_readable() {
        return Err(not_found());
    }
    Ok(s)
}

fn schedule_active(ctx: &Arc<Ctx>, stream: &Arc<Stream>, from: StreamStatus) {
    let delay = ctx.config.limits.transition_delay;
    if delay.is_zero() {
        lock(&stream.meta).status = StreamStatus::Active;
        return;
    }
    let ctx = ctx.clone();
    let stream = stream.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        {
            let mut m = lock(&stream.meta);
            if m.status() != from {
                return;
            }
            m.status = StreamStatus::Active;
        }
        let _ = ctx.save_meta().await;
    });
}

pub(crate) async fn create_stream(
    ctx: &Arc<Ctx>,
    r: CreateStreamRequest,
) -> Result<CreateStreamResponse, ApiError> {
    let retention = r.data_retention_in_hours.unwrap_or(0);
    if !(0..=MAX_RETENTION_HOURS).contains(&retention) {
        return Err(ApiError::invalid_argument(format!(
            "DataRetentionInHours {retention} is outside 0..{MAX_RETENTION_HOURS}."
        )));
    }
    let tags = r.tags.clone().unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return Err(ApiError::new(
            ApiErrorKind::TagsPerResourceExceededLimit,
            "A stream can have at most 50 tags.",
        ));
    }
    let mut creation_ms = ctx.now_ms();
    let stream = {
        let mut streams = lock(&ctx.registry.streams);
        if streams.contains_key(&r.stream_name) {
            return Err(ApiError::new(
                ApiErrorKind::ResourceInUse,
                format!("The stream {} already exists.", r.stream_name),
            ));
        }
        // ARNs must stay unique even for a stream re-created within the same millisecond.
        for s in streams.values() {
            creation_ms = creation_ms.max(lock(&s.meta).creation_ms);
        }
        let initial = if ctx.config.limits.transition_delay.is_zero() {
            StreamStatus::Active
        } else {
            StreamStatus::Creating
        };
        let meta = StreamMeta {
            name: r.stream_name.clone(),
            creation_ms: creation_ms.max(ctx.now_ms()),
            version: new_version(),
            status: initial,
            device_name: r.device_name.clone(),
            media_type: r.media_type.clone(),
            kms_key_id: r
                .kms_key_id
                .clone()
                .unwrap_or_else(|| default_kms_key(&ctx.config.region, &ctx.config.account_id)),
            retention_hours: retention,
            tags,
            storage_tier: r
                .stream_storage_configuration
                .map_or(DefaultStorageTier::Hot, |c| c.default_storage_tier)
                .as_str()
                .into(),
        };
        let stream = Arc::new(Stream::new(meta, &ctx.config.data_dir));
        streams.insert(r.stream_name.clone(), stream.clone());
        stream
    };
    let arn = lock(&stream.meta).arn(&ctx.config.region, &ctx.config.account_id);
    ctx.save_meta().await?;
    schedule_active(ctx, &stream, StreamStatus::Creating);
    Ok(CreateStreamResponse { stream_arn: arn })
}

pub(crate) fn describe_stream(
    ctx: &Arc<Ctx>,
    r: DescribeStreamRequest,
) -> Result<DescribeStreamResponse, ApiError> {
    let s = find_any(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let info = lock(&s.meta).info(&ctx.config.region, &ctx.config.account_id);
    Ok(DescribeStreamResponse { stream_info: info })
}

pub(crate) fn list_streams(
    ctx: &Arc<Ctx>,
    r: ListStreamsRequest,
) -> Result<ListStreamsResponse, ApiError> {
    let max = usize::try_from(r.max_results.unwrap_or(10_000)).unwrap_or(10_000);
    let after = match &r.next_token {
        Some(t) => Some(
            hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid_argument("NextToken is not valid."))?,
        ),
        None => None,
    };
    let prefix = r
        .stream_name_condition
        .as_ref()
        .and_then(|c| c.comparison_value.clone())
        .unwrap_or_default();
    let metas = ctx.registry.snapshot();
    let mut matching = metas
        .into_iter()
        .filter(|m| m.name.starts_with(&prefix))
        .filter(|m| after.as_ref().is_none_or(|a| m.name.as_str() > a.as_str()));
    let mut list: Vec<StreamInfo> = Vec::new();
    let mut last = None;
    for m in matching.by_ref().take(max) {
        last = Some(m.name.clone());
        list.push(m.info(&ctx.config.region, &ctx.config.account_id));
    }
    let next_token = if matching.next().is_some() {
        last.map(|n| hex::encode(n.as_bytes()))
    } else {
        None
    };
    Ok(ListStreamsResponse {
        stream_info_list: list,
        next_token,
    })
}

pub(crate) async fn delete_stream(
    ctx: &Arc<Ctx>,
    r: DeleteStreamRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find_any(ctx, None, Some(&r.stream_arn))?;
    {
        let mut m = lock(&s.meta);
        if m.status() == StreamStatus::Deleting {
            return Err(not_found());
        }
        if let Some(v) = &r.current_version
            && *v != m.version
        {
            return Err(version_mismatch(v));
        }
        m.status = StreamStatus::Deleting;
    }
    // Data is unreachable from now on: drop the index at once and wake live readers.
    {
        let mut d = lock(&s.data);
        d.clear();
    }
    s.published.send_modify(|v| *v = v.wrapping_add(0));
    ctx.save_meta().await?;
    let ctx2 = ctx.clone();
    let stream = s.clone();
    tokio::spawn(async move {
        let delay = ctx2.config.limits.transition_delay;
        let (tx, rx) = tokio::sync::oneshot::channel();
        ctx2.writer.forget(
            stream.dir.clone(),
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
        let _ = rx.await;
        let dir = stream.dir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        tokio::time::sleep(delay).await;
        {
            let mut streams = lock(&ctx2.registry.streams);
            let name = lock(&stream.meta).name.clone();
            if streams.get(&name).is_some_and(|x| Arc::ptr_eq(x, &stream)) {
                streams.remove(&name);
            }
        }
        let _ = ctx2.save_meta().await;
    });
    Ok(EmptyResponse {})
}

fn check_version(m: &StreamMeta, current: &str) -> Result<(), ApiError> {
    if m.status() != StreamStatus::Active {
        return Err(ApiError::new(
            ApiErrorKind::ResourceInUse,
            format!("The stream {} is not ACTIVE (status {}).", m.name, m.status),
        ));
    }
    if m.version != current {
        return Err(version_mismatch(current));
    }
    Ok(())
}

pub(crate) async fn update_stream(
    ctx: &Arc<Ctx>,
    r: UpdateStreamRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    {
        let mut m = lock(&s.meta);
        check_version(&m, &r.current_version)?;
        if r.device_name.is_some() {
            m.device_name = r.device_name.clone();
        }
        if r.media_type.is_some() {
            m.media_type = r.media_type.clone();
        }
        m.version = new_version();
        if !ctx.config.limits.transition_delay.is_zero() {
            m.status = StreamStatus::Updating;
        }
    }
    ctx.save_meta().await?;
    schedule_active(ctx, &s, StreamStatus::Updating);
    Ok(EmptyResponse {})
}

pub(crate) async fn update_data_retention(
    ctx: &Arc<Ctx>,
    r: UpdateDataRetentionRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    {
        let mut m = lock(&s.meta);
        check_version(&m, &r.current_version)?;
        let next = match r.operation {
            UpdateDataRetentionOperation::IncreaseDataRetention => {
                m.retention_hours + r.data_retention_change_in_hours
            }
            UpdateDataRetentionOperation::DecreaseDataRetention => {
                m.retention_hours - r.data_retention_change_in_hours
            }
        };
        if !(0..=MAX_RETENTION_HOURS).contains(&next) {
            return Err(ApiError::invalid_argument(format!(
                "The resulting retention of {next} hours is outside 0..{MAX_RETENTION_HOURS}."
            )));
        }
        m.retention_hours = next;
        m.version = new_version();
    }
    ctx.save_meta().await?;
    // Decreasing retention deletes older data at once.
    crate::http_service::sweep(ctx);
    Ok(EmptyResponse {})
}

pub(crate) fn get_data_endpoint(
    ctx: &Arc<Ctx>,
    r: GetDataEndpointRequest,
    base: &str,
) -> Result<GetDataEndpointResponse, ApiError> {
    find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    Ok(GetDataEndpointResponse {
        data_endpoint: base.to_owned(),
    })
}

async fn add_tags(
    ctx: &Arc<Ctx>,
    s: &Stream,
    tags: BTreeMap<String, String>,
) -> Result<EmptyResponse, ApiError> {
    {
        let mut m = lock(&s.meta);
        let mut merged = m.tags.clone();
        merged.extend(tags);
        if merged.len() > MAX_TAGS {
            return Err(ApiError::new(
                ApiErrorKind::TagsPerResourceExceededLimit,
                "A stream can have at most 50 tags.",
            ));
        }
        m.tags = merged;
    }
    ctx.save_meta().await?;
    Ok(EmptyResponse {})
}

async fn remove_tags(
    ctx: &Arc<Ctx>,
    s: &Stream,
    keys: &[String],
) -> Result<EmptyResponse, ApiError> {
    {
        let mut m = lock(&s.meta);
        for k in keys {
            m.tags.remove(k);
        }
    }
    ctx.save_meta().await?;
    Ok(EmptyResponse {})
}

fn tags_of(s: &Stream) -> ListTagsResponse {
    ListTagsResponse {
        next_token: None,
        tags: Some(lock(&s.meta).tags.clone()),
    }
}

pub(crate) async fn tag_stream(
    ctx: &Arc<Ctx>,
    r: TagStreamRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    add_tags(ctx, &s, r.tags).await
}

pub(crate) async fn untag_stream(
    ctx: &Arc<Ctx>,
    r: UntagStreamRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    remove_tags(ctx, &s, &r.tag_key_list).await
}

pub(crate) fn list_tags_for_stream(
    ctx: &Arc<Ctx>,
    r: ListTagsForStreamRequest,
) -> Result<ListTagsResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    Ok(tags_of(&s))
}

pub(crate) async fn tag_resource(
    ctx: &Arc<Ctx>,
    r: TagResourceRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, None, Some(&r.resource_arn))?;
    let tags = r.tags.into_iter().map(|t| (t.key, t.value)).collect();
    add_tags(ctx, &s, tags).await
}

pub(crate) async fn untag_resource(
    ctx: &Arc<Ctx>,
    r: UntagResourceRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, None, Some(&r.resource_arn))?;
    remove_tags(ctx, &s, &r.tag_key_list).await
}

pub(crate) fn list_tags_for_resource(
    ctx: &Arc<Ctx>,
    r: ListTagsForResourceRequest,
) -> Result<ListTagsResponse, ApiError> {
    let s = find(ctx, None, Some(&r.resource_arn))?;
    Ok(tags_of(&s))
}

pub(crate) fn describe_storage(
    ctx: &Arc<Ctx>,
    r: DescribeStreamStorageConfigurationRequest,
) -> Result<DescribeStreamStorageConfigurationResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    let m = lock(&s.meta);
    Ok(DescribeStreamStorageConfigurationResponse {
        stream_name: Some(m.name.clone()),
        stream_arn: Some(m.arn(&ctx.config.region, &ctx.config.account_id)),
        stream_storage_configuration: Some(StreamStorageConfiguration {
            default_storage_tier: m.tier(),
        }),
    })
}

pub(crate) async fn update_storage(
    ctx: &Arc<Ctx>,
    r: UpdateStreamStorageConfigurationRequest,
) -> Result<EmptyResponse, ApiError> {
    let s = find(ctx, r.stream_name.as_deref(), r.stream_arn.as_deref())?;
    {
        let mut m = lock(&s.meta);
        check_version(&m, &r.current_version)?;
        m.storage_tier = r
            .stream_storage_configuration
            .default_storage_tier
            .as_str()
            .into();
        m.version = new_version();
        if !ctx.config.limits.transition_delay.is_zero() {
            m.status = StreamStatus::Updating;
        }
    }
    ctx.save_meta().await?;
    schedule_active(ctx, &s, StreamStatus::Updating);
    Ok(EmptyResponse {})
}
