//! The api module: round trips of every operation, errors, validation, timestamps, PutMedia.

mod api_common;

use api_common::*;
use bytes::Bytes;
use kvs_core::api::error::ApiErrorKind as K;
use kvs_core::api::put_media::{self, parse_start_timestamp};
use kvs_core::api::*;

#[test]
fn every_operation_round_trips_by_name_and_by_arn() {
    let by_name = all_roundtrips(false);
    let by_arn = all_roundtrips(true);
    // Every JSON operation is covered (all but PutMedia).
    let mut ops: Vec<_> = by_name.iter().map(|w| w.op).collect();
    ops.push(Operation::PutMedia);
    assert_eq!(ops, Operation::ALL);
    for w in by_name
        .iter()
        .filter(|w| w.request.get("StreamName").is_some())
    {
        assert!(w.request.get("StreamARN").is_none(), "{:?}", w.op);
    }
    assert!(by_arn.iter().any(|w| w.request.get("StreamARN").is_some()));
}

#[test]
fn operation_paths_and_routing() {
    for op in Operation::ALL {
        assert_eq!(Operation::from_path(op.path()), Some(*op));
    }
    assert_eq!(Operation::TagResource.path(), "/TagResource");
    assert_eq!(
        Operation::ListTagsForResource.path(),
        "/ListTagsForResource"
    );
    assert_eq!(Operation::DescribeStream.path(), "/describeStream");
    assert_eq!(
        Operation::GetHLSStreamingSessionURL.name(),
        "GetHLSStreamingSessionURL"
    );
    assert_eq!(Operation::GetMedia.service(), Service::Media);
    assert_eq!(Operation::from_path("/DescribeStream"), None);
    assert_eq!(Operation::from_path("/tagResource"), None);
}

#[test]
fn describe_stream_writes_explicit_nulls_and_millisecond_timestamps() {
    let resp = DescribeStreamResponse {
        stream_info: StreamInfo {
            device_name: None,
            stream_name: "s".into(),
            stream_arn: ARN.into(),
            media_type: None,
            kms_key_id: None,
            version: "abc".into(),
            status: StreamStatus::Creating,
            creation_time: Timestamp::from_millis(1_511_852_109_126),
            data_retention_in_hours: 0,
        },
    };
    let body = resp.to_http("r").into_body();
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.contains("\"KmsKeyId\":null"), "{text}");
    assert!(text.contains("\"MediaType\":null"), "{text}");
    assert!(text.contains("\"DeviceName\":null"), "{text}");
    assert!(text.contains("\"CreationTime\":1511852109.126"), "{text}");
    // Elsewhere absent members are left out.
    let tags = ListTagsResponse {
        next_token: None,
        tags: None,
    }
    .to_http("r")
    .into_body();
    assert_eq!(&tags[..], b"{}");
    let req = DescribeStreamRequest {
        stream_name: Some("s".into()),
        stream_arn: None,
    };
    assert_eq!(
        &req.to_http(&endpoint()).unwrap().into_body()[..],
        br#"{"StreamName":"s"}"#
    );
}

#[test]
fn every_error_kind_round_trips_with_its_status() {
    for kind in ApiErrorKind::ALL {
        let err = ApiError::new(kind.clone(), format!("something about {kind}"));
        let resp = err.to_http("rid-9");
        assert_eq!(resp.status().as_u16(), kind.http_status(), "{kind}");
        let ty = resp.headers()["x-amzn-errortype"].to_str().unwrap();
        assert!(ty.starts_with(&format!("{}:", kind.name())), "{ty}");
        let back = ApiError::from_http(&resp);
        assert_eq!(back.kind, *kind);
        assert_eq!(back.message, err.message);
        assert_eq!(back.http_status, kind.http_status());
        assert_eq!(back.request_id.as_deref(), Some("rid-9"));
        // The JSON operations' from_http surfaces the same error.
        let via_op = DescribeStreamResponse::from_http(&resp).unwrap_err();
        assert_eq!(via_op, back);
        let via_media = MediaResponse::from_http(&resp).unwrap_err();
        assert_eq!(via_media, back);
    }
    let other = ApiError {
        kind: K::Other("TeapotException".into()),
        message: "short".into(),
        http_status: 418,
        request_id: None,
    };
    let back = ApiError::from_http(&other.to_http("x"));
    assert_eq!(
        (back.kind, back.http_status, back.message.as_str()),
        (K::Other("TeapotException".into()), 418, "short")
    );
}

#[test]
fn statuses_match_the_reference() {
    assert_eq!(K::NotAuthorized.http_status(), 401);
    assert_eq!(K::AccessDenied.http_status(), 401);
    assert_eq!(K::ResourceNotFound.http_status(), 404);
    assert_eq!(K::InvalidSignature.http_status(), 403);
    assert_eq!(K::InternalFailure.http_status(), 500);
    assert_eq!(K::ServiceUnavailable.http_status(), 503);
    assert_eq!(K::from_name("VersionMismatchException"), K::VersionMismatch);
}

#[test]
fn error_wire_forms() {
    let resp = ApiError::stream_not_found().to_http("abc");
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "ResourceNotFoundException:https://kinesisvideo.amazonaws.com/doc/2017-09-30/"
    );
    assert_eq!(
        &resp.body()[..],
        br#"{"Message":"The requested stream is not found or not active."}"#
    );
    let sig = ApiError::new(K::InvalidSignature, "bad").to_http("abc");
    assert_eq!(
        sig.headers()["x-amzn-errortype"],
        "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/"
    );
    assert_eq!(&sig.body()[..], br#"{"message":"bad"}"#);
    let unknown = ApiError::new(K::UnknownOperation, "").to_http("abc");
    let v: serde_json::Value = serde_json::from_slice(unknown.body()).unwrap();
    assert_eq!(
        v["Output"]["__type"],
        "com.amazon.coral.service#UnknownOperationException"
    );
    assert_eq!(v["Version"], "1.0");
    assert!(v["Output"]["Message"].is_null());
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Bytes> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

#[test]
fn client_parses_foreign_error_forms() {
    // moto: header plus __type and lower-case message.
    let e = ApiError::from_http(&response(
        404,
        &[
            ("x-amzn-ErrorType", "ResourceNotFoundException"),
            ("x-amzn-RequestId", "r1"),
        ],
        r#"{"__type":"ResourceNotFoundException","message":"gone"}"#,
    ));
    assert_eq!(
        (e.kind, e.message.as_str(), e.request_id.as_deref()),
        (K::ResourceNotFound, "gone", Some("r1"))
    );
    // __type only, with a namespace.
    let e = ApiError::from_http(&response(
        400,
        &[],
        r#"{"__type":"com.amazonaws.kinesisvideo#VersionMismatchException","Message":"stale"}"#,
    ));
    assert_eq!((e.kind, e.message.as_str()), (K::VersionMismatch, "stale"));
    // Coral envelope without header.
    let e = ApiError::from_http(&response(
        400,
        &[],
        r#"{"Output":{"__type":"com.amazon.coral.service#SerializationException","Message":null},"Version":"1.0"}"#,
    ));
    assert_eq!((e.kind, e.message.as_str()), (K::Serialization, ""));
    // Nothing but a status.
    let e = ApiError::from_http(&response(404, &[], ""));
    assert_eq!(e.kind, K::ResourceNotFound);
    let e = ApiError::from_http(&response(502, &[], "<html>"));
    assert_eq!((e.kind, e.http_status), (K::InternalFailure, 502));
    // Unknown name.
    let e = ApiError::from_http(&response(
        400,
        &[("x-amzn-errortype", "NewFancyException:http://x/")],
        "{}",
    ));
    assert_eq!(e.kind, K::Other("NewFancyException".into()));
}

#[test]
fn server_side_request_errors() {
    let unknown = ApiRequest::from_http(&raw_request("/describestream", "{}")).unwrap_err();
    assert_eq!(
        (unknown.kind.clone(), unknown.http_status),
        (K::UnknownOperation, 404)
    );
    let v: serde_json::Value = serde_json::from_slice(unknown.to_http("r").body()).unwrap();
    assert_eq!(
        v["Output"]["__type"],
        "com.amazon.coral.service#UnknownOperationException"
    );

    let mut get = raw_request("/describeStream", "{}");
    *get.method_mut() = http::Method::GET;
    assert_eq!(
        ApiRequest::from_http(&get).unwrap_err().kind,
        K::UnknownOperation
    );

    let bad_json =
        ApiRequest::from_http(&raw_request("/describeStream", "{\"StreamName\":")).unwrap_err();
    assert_eq!(
        (bad_json.kind, bad_json.http_status),
        (K::Serialization, 400)
    );
    let bad_type =
        ApiRequest::from_http(&raw_request("/describeStream", r#"{"StreamName":5}"#)).unwrap_err();
    assert_eq!(bad_type.kind, K::Serialization);
    let bad_enum = ApiRequest::from_http(&raw_request(
        "/getDataEndpoint",
        r#"{"StreamName":"a","APIName":"PUT"}"#,
    ))
    .unwrap_err();
    assert_eq!(bad_enum.kind, K::InvalidArgument);
    let missing = ApiRequest::from_http(&raw_request("/getDataEndpoint", r#"{"StreamName":"a"}"#))
        .unwrap_err();
    assert_eq!(missing.kind, K::InvalidArgument);
    assert!(missing.message.contains("APIName"), "{}", missing.message);
    let invalid = ApiRequest::from_http(&raw_request("/describeStream", r#"{"StreamName":"a b"}"#))
        .unwrap_err();
    assert_eq!(
        (invalid.kind.clone(), invalid.http_status),
        (K::InvalidArgument, 400)
    );
    assert!(
        invalid
            .message
            .starts_with("1 validation error detected: Value 'a b' at 'streamName'"),
        "{}",
        invalid.message
    );
    let huge = format!(r#"{{"StreamName":"a","Pad":"{}"}}"#, "x".repeat(2 << 20));
    let too_big = ApiRequest::from_http(&raw_request("/describeStream", &huge)).unwrap_err();
    assert_eq!(too_big.kind, K::InvalidArgument);
    assert!(too_big.message.contains("exceeds"), "{}", too_big.message);
    // Empty body is {}: DescribeStream then lacks both name and ARN.
    let empty = ApiRequest::from_http(&raw_request("/describeStream", "")).unwrap_err();
    assert_eq!(empty.kind, K::InvalidArgument);
    // Unknown members are ignored (the service tolerates SDK additions).
    let ok = ApiRequest::from_http(&raw_request(
        "/describeStream",
        r#"{"StreamName":"a","Extra":1}"#,
    ))
    .unwrap();
    assert_eq!(
        ok,
        ApiRequest::DescribeStream(DescribeStreamRequest {
            stream_name: Some("a".into()),
            stream_arn: None
        })
    );
}

fn invalid<R: ApiOperation>(req: R) -> ApiError {
    let err = req.validate().unwrap_err();
    assert_eq!(
        (err.kind.clone(), err.http_status),
        (K::InvalidArgument, 400),
        "{err}"
    );
    // to_http refuses it too.
    assert_eq!(req.to_http(&endpoint()).unwrap_err(), err);
    err
}

fn describe(name: Option<&str>, arn: Option<&str>) -> DescribeStreamRequest {
    DescribeStreamRequest {
        stream_name: name.map(Into::into),
        stream_arn: arn.map(Into::into),
    }
}

#[test]
fn stream_names_and_arns() {
    let long = "a".repeat(257);
    assert!(
        invalid(describe(Some(&long), None))
            .message
            .contains("less than or equal to 256")
    );
    assert!(describe(Some(&"a".repeat(256)), None).validate().is_ok());
    assert!(
        invalid(describe(Some(""), None))
            .message
            .contains("greater than or equal to 1")
    );
    invalid(describe(Some("cam/1"), None));
    invalid(describe(Some("caméra"), None));
    invalid(describe(Some("a"), Some(ARN)));
    invalid(describe(None, None));
    assert!(describe(Some("A-z_0.9"), None).validate().is_ok());
    for bad in [
        "arn:aws:kinesisvideo:us-east-1:123:stream/x",
        "arn:aws:s3:us-east-1:123:stream/x/1",
        "arn:aws:kinesisvideo:us-east-1:12a:stream/x/1",
        "arn:aws:kinesisvideo:us-east-1:123:Stream/x/1",
        "arn:aws:kinesisvideo:US-EAST-1:123:stream/x/1",
        "arn:aws:kinesisvideo:us-east-1:123:stream/x y/1",
        "arn:aws:kinesisvideo:us-east-1:123:stream/x/1a",
        "arn::kinesisvideo:us-east-1:123:stream/x/1",
    ] {
        invalid(describe(None, Some(bad)));
    }
    let long_arn = format!(
        "arn:aws:kinesisvideo:us-east-1:123:stream/{}/1",
        "a".repeat(1000)
    );
    invalid(describe(None, Some(&long_arn)));
    // Other partitions are fine for the control plane, not for GetMedia.
    let cn = "arn:aws-cn:kinesisvideo:cn-north-1:123:stream/x/1";
    assert!(describe(None, Some(cn)).validate().is_ok());
    let get_media = |arn: &str| GetMediaRequest {
        stream_name: None,
        stream_arn: Some(arn.into()),
        start_selector: StartSelector::new(StartSelectorType::Now),
    };
    invalid(get_media(cn));
    assert!(get_media(ARN).validate().is_ok());
}

#[test]
fn arn_format_and_parse() {
    let arn = ResourceArn::stream("us-east-1", "444709715744", "camera_101", 1_705_489_836_421);
    assert_eq!(arn.to_string(), ARN);
    let back: ResourceArn = ARN.parse().unwrap();
    assert_eq!(back, arn);
    assert!(back.is_stream());
    let chan: ResourceArn = "arn:aws:kinesisvideo:eu-west-1:1:channel/c.1/2"
        .parse()
        .unwrap();
    assert_eq!(
        (
            chan.resource_type.as_str(),
            chan.name.as_str(),
            chan.creation_millis
        ),
        ("channel", "c.1", 2)
    );
    assert!(
        "arn:aws:kinesisvideo:us-east-1:1:stream/a/b/1"
            .parse::<ResourceArn>()
            .is_err()
    );
    assert!(
        "arn:aws:kinesisvideo:us-east-1:1:stream/a/99999999999999999999999"
            .parse::<ResourceArn>()
            .is_err()
    );
    assert!(matches!(
        "x".repeat(1025).parse::<ResourceArn>(),
        Err(ArnError::TooLong(1025))
    ));
    assert!(kvs_core::api::names::is_valid_stream_name("a.b-c_D"));
}

#[test]
fn control_plane_constraints() {
    let create = |f: &dyn Fn(&mut CreateStreamRequest)| {
        let mut r = CreateStreamRequest {
            stream_name: "s".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    assert!(create(&|_| {}).validate().is_ok());
    invalid(create(&|r| r.data_retention_in_hours = Some(-1)));
    assert!(
        create(&|r| r.data_retention_in_hours = Some(0))
            .validate()
            .is_ok()
    );
    invalid(create(&|r| r.media_type = Some("video".into())));
    invalid(create(&|r| r.media_type = Some("video/h264,".into())));
    assert!(
        create(&|r| r.media_type = Some("video/h264,audio/aac".into()))
            .validate()
            .is_ok()
    );
    invalid(create(&|r| {
        r.media_type = Some(format!("video/{}", "x".repeat(123)))
    }));
    invalid(create(&|r| r.device_name = Some("d".repeat(129))));
    invalid(create(&|r| r.kms_key_id = Some(String::new())));
    invalid(create(&|r| r.kms_key_id = Some("k".repeat(2049))));
    let many: std::collections::BTreeMap<_, _> = (0..51)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    invalid(create(&|r| r.tags = Some(many.clone())));
    invalid(create(&|r| r.tags = Some(Default::default())));
    invalid(create(&|r| {
        r.tags = Some([("bad#key".into(), "v".into())].into())
    }));
    invalid(create(&|r| {
        r.tags = Some([("k".into(), "v".repeat(257))].into())
    }));
    invalid(create(&|r| {
        r.tags = Some([("k".repeat(129), "v".into())].into())
    }));
    invalid(create(&|r| {
        r.tags = Some([(String::new(), "v".into())].into())
    }));
    assert!(
        create(&|r| r.tags = Some([("Café ü 1:/=+-@_.".into(), String::new())].into()))
            .validate()
            .is_ok()
    );

    let list = |max: Option<i64>, token: Option<&str>| ListStreamsRequest {
        max_results: max,
        next_token: token.map(Into::into),
        stream_name_condition: None,
    };
    invalid(list(Some(0), None));
    invalid(list(Some(10001), None));
    assert!(list(Some(1), None).validate().is_ok());
    assert!(list(Some(10000), Some("")).validate().is_ok());
    invalid(list(None, Some("a-b")));
    invalid(list(None, Some(&"a".repeat(1025))));

    let retention = |hours, version: &str| UpdateDataRetentionRequest {
        stream_name: Some("s".into()),
        stream_arn: None,
        current_version: version.into(),
        operation: UpdateDataRetentionOperation::DecreaseDataRetention,
        data_retention_change_in_hours: hours,
    };
    invalid(retention(0, "v1"));
    invalid(retention(1, "v-1"));
    invalid(retention(1, ""));
    invalid(retention(1, &"v".repeat(65)));
    assert!(retention(1, "v1").validate().is_ok());

    invalid(UntagStreamRequest {
        stream_arn: None,
        stream_name: Some("s".into()),
        tag_key_list: vec![],
    });
    invalid(TagResourceRequest {
        resource_arn: ARN.into(),
        tags: vec![],
    });
    invalid(TagResourceRequest {
        resource_arn: "nope".into(),
        tags: vec![Tag {
            key: "k".into(),
            value: "v".into(),
        }],
    });
    invalid(DeleteStreamRequest {
        stream_arn: "arn:aws:kinesisvideo:x:1:stream/s".into(),
        current_version: None,
    });
    invalid(UntagResourceRequest {
        resource_arn: ARN.into(),
        tag_key_list: (0..51).map(|i| i.to_string()).collect(),
    });
}

#[test]
fn data_plane_constraints() {
    let sel = |kind, after: Option<&str>, ts: Option<u64>, token: Option<&str>| GetMediaRequest {
        stream_name: Some("s".into()),
        stream_arn: None,
        start_selector: StartSelector {
            start_selector_type: kind,
            after_fragment_number: after.map(Into::into),
            start_timestamp: ts.map(Timestamp::from_millis),
            continuation_token: token.map(Into::into),
        },
    };
    invalid(sel(StartSelectorType::FragmentNumber, None, None, None));
    invalid(sel(
        StartSelectorType::FragmentNumber,
        Some("12a"),
        None,
        None,
    ));
    invalid(sel(
        StartSelectorType::FragmentNumber,
        Some(&"1".repeat(129)),
        None,
        None,
    ));
    invalid(sel(StartSelectorType::ServerTimestamp, None, None, None));
    invalid(sel(StartSelectorType::ContinuationToken, None, None, None));
    invalid(sel(
        StartSelectorType::ContinuationToken,
        None,
        None,
        Some("a/b"),
    ));
    assert!(
        sel(StartSelectorType::ProducerTimestamp, None, Some(5), None)
            .validate()
            .is_ok()
    );
    assert!(
        sel(StartSelectorType::Earliest, None, None, None)
            .validate()
            .is_ok()
    );

    let lf = |max, token: Option<&str>, with_sel: bool| ListFragmentsRequest {
        stream_name: Some("s".into()),
        stream_arn: None,
        max_results: max,
        next_token: token.map(Into::into),
        fragment_selector: with_sel.then_some(FragmentSelector {
            fragment_selector_type: TimestampSelectorType::ServerTimestamp,
            timestamp_range: archived::TimestampRange {
                start_timestamp: Timestamp::from_secs(1),
                end_timestamp: Timestamp::from_secs(2),
            },
        }),
    };
    invalid(lf(Some(0), None, true));
    invalid(lf(Some(1001), None, true));
    invalid(lf(None, None, false));
    assert!(lf(None, Some("YWJj=="), false).validate().is_ok());
    invalid(lf(None, Some("YWJj==="), false));
    invalid(lf(None, Some(""), true));
    invalid(lf(None, Some("a-b"), true));

    let gmffl = |fragments: Vec<String>| GetMediaForFragmentListRequest {
        stream_name: Some("s".into()),
        stream_arn: None,
        fragments,
    };
    invalid(gmffl(vec![]));
    invalid(gmffl((0..1001).map(|i| i.to_string()).collect()));
    invalid(gmffl(vec!["x1".into()]));
    assert!(
        gmffl((0..1000).map(|i| i.to_string()).collect())
            .validate()
            .is_ok()
    );

    let clip = |start: u64, end: u64| GetClipRequest {
        stream_name: Some("s".into()),
        stream_arn: None,
        clip_fragment_selector: FragmentSelector {
            fragment_selector_type: TimestampSelectorType::ProducerTimestamp,
            timestamp_range: archived::TimestampRange {
                start_timestamp: Timestamp::from_millis(start),
                end_timestamp: Timestamp::from_millis(end),
            },
        },
    };
    invalid(clip(10, 10));
    invalid(clip(0, 24 * 3600 * 1000 + 1));
    assert!(clip(0, 24 * 3600 * 1000).validate().is_ok());

    let images = |f: &dyn Fn(&mut GetImagesRequest)| {
        let mut r = GetImagesRequest {
            stream_name: Some("s".into()),
            stream_arn: None,
            image_selector_type: TimestampSelectorType::ServerTimestamp,
            start_timestamp: Timestamp::from_secs(100),
            end_timestamp: Timestamp::from_secs(200),
            sampling_interval: None,
            format: ImageFormat::Png,
            format_config: None,
            width_pixels: None,
            height_pixels: None,
            max_results: None,
            next_token: None,
        };
        f(&mut r);
        r
    };
    assert!(images(&|_| {}).validate().is_ok());
    invalid(images(&|r| r.width_pixels = Some(3841)));
    invalid(images(&|r| r.height_pixels = Some(0)));
    invalid(images(&|r| r.sampling_interval = Some(199)));
    invalid(images(&|r| r.max_results = Some(101)));
    invalid(images(&|r| r.end_timestamp = Timestamp::from_secs(401)));
    invalid(images(&|r| {
        r.format_config = Some([(FormatConfigKey::JpegQuality, "-1".into())].into())
    }));

    let hls = |f: &dyn Fn(&mut GetHlsStreamingSessionUrlRequest)| {
        let mut r = GetHlsStreamingSessionUrlRequest {
            stream_name: Some("s".into()),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    assert!(hls(&|_| {}).validate().is_ok());
    invalid(hls(&|r| r.expires = Some(299)));
    invalid(hls(&|r| r.expires = Some(43201)));
    invalid(hls(&|r| r.max_media_playlist_fragment_results = Some(5001)));
    let range = |start: Option<u64>, end: Option<u64>| SessionFragmentSelector {
        fragment_selector_type: None,
        timestamp_range: Some(OpenTimestampRange {
            start_timestamp: start.map(Timestamp::from_secs),
            end_timestamp: end.map(Timestamp::from_secs),
        }),
    };
    invalid(hls(&|r| {
        r.hls_fragment_selector = Some(range(Some(1), Some(2)))
    }));
    invalid(hls(&|r| r.playback_mode = Some(PlaybackMode::OnDemand)));
    invalid(hls(&|r| {
        r.playback_mode = Some(PlaybackMode::OnDemand);
        r.hls_fragment_selector = Some(range(Some(1), None));
    }));
    invalid(hls(&|r| {
        r.playback_mode = Some(PlaybackMode::LiveReplay);
        r.hls_fragment_selector = Some(range(None, Some(5)));
    }));
    assert!(
        hls(&|r| {
            r.playback_mode = Some(PlaybackMode::LiveReplay);
            r.hls_fragment_selector = Some(range(Some(1), None));
        })
        .validate()
        .is_ok()
    );
    let dash = GetDashStreamingSessionUrlRequest {
        stream_arn: Some(ARN.into()),
        max_manifest_fragment_results: Some(0),
        ..Default::default()
    };
    invalid(dash);
}

#[test]
fn json_timestamps() {
    let parse = |json: &str| serde_json::from_str::<Timestamp>(json).map(Timestamp::as_millis);
    assert_eq!(parse("1705489836").unwrap(), 1_705_489_836_000);
    assert_eq!(parse("1705489836.421").unwrap(), 1_705_489_836_421);
    assert_eq!(parse("1.705489836421E9").unwrap(), 1_705_489_836_421);
    assert_eq!(parse("1.586040339444E9").unwrap(), 1_586_040_339_444);
    assert_eq!(parse("1.5e9").unwrap(), 1_500_000_000_000);
    assert_eq!(parse("0").unwrap(), 0);
    assert_eq!(parse("1511852109.1266").unwrap(), 1_511_852_109_127);
    assert!(parse("-1").is_err());
    assert!(parse("1e300").is_err());
    assert!(parse("\"1705489836\"").is_err());
    assert_eq!(
        serde_json::to_string(&Timestamp::from_millis(1_511_852_109_126)).unwrap(),
        "1511852109.126"
    );
    assert_eq!(
        serde_json::to_string(&Timestamp::from_millis(1_511_852_109_001)).unwrap(),
        "1511852109.001"
    );
    assert_eq!(
        serde_json::to_string(&Timestamp::from_millis(1_511_852_109_000)).unwrap(),
        "1511852109"
    );
    assert_eq!(Timestamp::from_millis(5).to_string(), "0.005");
    assert_eq!(
        Timestamp::parse_secs("1.705489836421E9")
            .unwrap()
            .as_millis(),
        1_705_489_836_421
    );
    assert!(Timestamp::parse_secs("abc").is_err());
    // Every millisecond of a day round-trips through the JSON number form.
    for ms in (1_700_000_000_000u64..1_700_000_000_000 + 86_400_000).step_by(997) {
        let text = serde_json::to_string(&Timestamp::from_millis(ms)).unwrap();
        assert_eq!(parse(&text).unwrap(), ms, "{text}");
    }
}

#[test]
fn put_media_start_timestamp_forms() {
    let ms = |t: &str| parse_start_timestamp(t).map(Timestamp::as_millis);
    assert_eq!(
        ms("1700000000.5"),
        Some(1_700_000_000_005),
        "C producer: unpadded millis"
    );
    assert_eq!(ms("1700000000.50"), Some(1_700_000_000_050));
    assert_eq!(ms("1700000000.005"), Some(1_700_000_000_005));
    assert_eq!(ms("1700000000.500"), Some(1_700_000_000_500));
    assert_eq!(ms("1700000000.123456"), Some(1_700_000_000_123));
    assert_eq!(ms("1700000000"), Some(1_700_000_000_000));
    for bad in [
        "",
        ".5",
        "abc",
        "1.2.3",
        "-1",
        "1e9",
        "1.",
        "99999999999999999999",
    ] {
        if bad == "1." {
            assert_eq!(ms(bad), Some(1000));
            continue;
        }
        assert_eq!(ms(bad), None, "{bad:?}");
    }
}

fn put_head(headers: &[(&str, &str)]) -> http::Request<Bytes> {
    let mut b = http::Request::builder().method("POST").uri("/putMedia");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::new()).unwrap()
}

#[test]
fn put_media_headers() {
    let req = PutMediaRequest::relative("camera_101", Timestamp::from_millis(1_700_000_000_005));
    let head = req.to_http(&endpoint()).unwrap();
    assert_eq!(head.uri().path(), "/putMedia");
    assert_eq!(head.headers()["x-amzn-stream-name"], "camera_101");
    assert_eq!(head.headers()["x-amzn-fragment-timecode-type"], "RELATIVE");
    assert_eq!(
        head.headers()["x-amzn-producer-start-timestamp"],
        "1700000000.005"
    );
    assert_eq!(
        head.headers()["x-amzn-fragment-acknowledgment-required"],
        "1"
    );
    assert_eq!(head.headers()["transfer-encoding"], "chunked");
    assert_eq!(PutMediaRequest::from_headers(head.headers()).unwrap(), req);

    // What the C producer sends.
    let c = put_head(&[
        ("x-amzn-stream-name", "cam"),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", "1663277247.5"),
        ("x-amzn-fragment-acknowledgment-required", "1"),
        ("user-agent", "AWS-PRODUCER-SDK-KVS/3.4.1"),
    ]);
    let ApiRequest::PutMedia(parsed) = ApiRequest::from_http(&c).unwrap() else {
        panic!("not PutMedia")
    };
    assert_eq!(
        parsed.producer_start_timestamp,
        Some(Timestamp::from_millis(1_663_277_247_005))
    );
    assert_eq!(
        parsed.fragment_timecode_type,
        FragmentTimecodeType::Absolute
    );
    assert_eq!(parsed.fragment_acknowledgment_required, Some(true));

    let by_arn = put_head(&[
        ("x-amzn-stream-arn", ARN),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
    ]);
    assert!(ApiRequest::from_http(&by_arn).is_ok());

    for bad in [
        vec![("x-amzn-stream-name", "cam")],
        vec![
            ("x-amzn-stream-name", "cam"),
            ("x-amzn-fragment-timecode-type", "relative"),
        ],
        vec![
            ("x-amzn-stream-name", "cam"),
            ("x-amzn-fragment-timecode-type", "RELATIVE"),
        ],
        vec![
            ("x-amzn-stream-name", "cam"),
            ("x-amzn-stream-arn", ARN),
            ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ],
        vec![("x-amzn-fragment-timecode-type", "ABSOLUTE")],
        vec![
            ("x-amzn-stream-name", "c m"),
            ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ],
        vec![
            ("x-amzn-stream-name", "cam"),
            ("x-amzn-fragment-timecode-type", "RELATIVE"),
            ("x-amzn-producer-start-timestamp", "soon"),
        ],
        vec![
            ("x-amzn-stream-name", "cam"),
            ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
            ("x-amzn-fragment-acknowledgment-required", "yes"),
        ],
    ] {
        let err = ApiRequest::from_http(&put_head(&bad)).unwrap_err();
        assert_eq!(
            (err.kind, err.http_status),
            (K::InvalidArgument, 400),
            "{bad:?}"
        );
    }
    let head = PutMediaRequest::response_head("rid");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["x-amzn-requestid"], "rid");
    let _ = put_media::PUT_MEDIA_PATH;
}
