//! Golden check of the api module against the botocore service models: paths, member names,
//! required members, enum values, timestamp types and error statuses.
//!
//! Runs `$KVS_PYTHON` (default `python3`) with botocore to dump the models. Without Python or
//! botocore the test prints why and passes, unless `KVS_REQUIRE_TOOLS=1`.

mod api_common;

use std::process::Command;

use api_common::*;
use kvs_core::api::*;
use serde_json::Value;

const DUMP: &str = r#"
import json, botocore.session
s = botocore.session.get_session()
def tree(m, name, depth=0):
    sh = m['shapes'][name]
    t = {'shape': name, 'type': sh['type']}
    for k in ('enum', 'min', 'max', 'pattern', 'required'):
        if k in sh: t[k] = sh[k]
    if depth > 12: return t
    if sh['type'] == 'structure':
        t['members'] = {}
        for mn, mv in sh.get('members', {}).items():
            sub = tree(m, mv['shape'], depth + 1)
            if 'location' in mv: sub['location'] = mv['location']
            t['members'][mn] = sub
        if 'payload' in sh: t['payload'] = sh['payload']
    elif sh['type'] == 'list':
        t['member'] = tree(m, sh['member']['shape'], depth + 1)
    elif sh['type'] == 'map':
        t['key'] = tree(m, sh['key']['shape'], depth + 1)
        t['value'] = tree(m, sh['value']['shape'], depth + 1)
    return t
out = {}
for svc in ('kinesisvideo', 'kinesis-video-media', 'kinesis-video-archived-media'):
    m = s.get_service_model(svc)._service_description
    ops = {}
    for n, op in m['operations'].items():
        ops[n] = {'method': op['http']['method'], 'uri': op['http']['requestUri'],
                  'input': tree(m, op['input']['shape']),
                  'output': tree(m, op['output']['shape']) if 'output' in op else None,
                  'errors': [e['shape'] for e in op.get('errors', [])]}
    errors = {n: sh.get('error', {}).get('httpStatusCode') for n, sh in m['shapes'].items() if sh.get('exception')}
    enums = {n: sh['enum'] for n, sh in m['shapes'].items() if 'enum' in sh}
    out[svc] = {'operations': ops, 'errors': errors, 'enums': enums}
print(json.dumps(out))
"#;

fn models() -> Option<Value> {
    let python = std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".into());
    let require = std::env::var("KVS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let out = Command::new(&python).arg("-c").arg(DUMP).output();
    match out {
        Ok(o) if o.status.success() => {
            Some(serde_json::from_slice(&o.stdout).expect("model dump is JSON"))
        }
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                !require,
                "KVS_REQUIRE_TOOLS=1 but {python} with botocore is unavailable: {why}"
            );
            println!("skipping: {python} with botocore unavailable: {why}");
            None
        }
    }
}

/// Checks `json` against the model `tree`: every member known, every required member present,
/// enum values in the model's list, timestamps numbers, strings within length limits.
/// `at` starts with `Op>` for responses, where explicit nulls are allowed.
fn check(json: &Value, tree: &Value, at: &str, errors: &mut Vec<String>) {
    let ty = tree["type"].as_str().unwrap_or_default();
    match (ty, json) {
        ("structure", Value::Object(map)) => {
            for (key, value) in map {
                match tree["members"].get(key) {
                    Some(sub) if sub.get("location").is_none() => {
                        check(value, sub, &format!("{at}.{key}"), errors)
                    }
                    Some(_) => errors.push(format!("{at}.{key}: bound to a header, not JSON")),
                    None => errors.push(format!("{at}.{key}: not a member of {}", tree["shape"])),
                }
            }
            for req in tree["required"].as_array().into_iter().flatten() {
                let req = req.as_str().unwrap_or_default();
                if !map.contains_key(req) {
                    errors.push(format!("{at}: required member {req} missing"));
                }
            }
        }
        ("list", Value::Array(items)) => items
            .iter()
            .for_each(|i| check(i, &tree["member"], &format!("{at}[]"), errors)),
        ("map", Value::Object(map)) => {
            for (key, value) in map {
                check(
                    &Value::String(key.clone()),
                    &tree["key"],
                    &format!("{at}<key>"),
                    errors,
                );
                check(value, &tree["value"], &format!("{at}.{key}"), errors);
            }
        }
        ("string", Value::String(s)) => {
            if let Some(values) = tree["enum"].as_array()
                && !values.iter().any(|v| v == s)
            {
                errors.push(format!("{at}: {s:?} not in enum {}", tree["shape"]));
            }
            let n = s.chars().count() as u64;
            if tree["min"].as_u64().is_some_and(|min| n < min)
                || tree["max"].as_u64().is_some_and(|max| n > max)
            {
                errors.push(format!("{at}: length {n} outside the model's limits"));
            }
        }
        ("timestamp", Value::Number(_)) | ("boolean", Value::Bool(_)) => {}
        // Responses write absent members as explicit nulls where the service does (StreamInfo).
        (_, Value::Null) if at.contains('>') => {}
        ("integer" | "long", Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(i64::MIN);
            if tree["min"].as_i64().is_some_and(|min| n < min)
                || tree["max"].as_i64().is_some_and(|max| n > max)
            {
                errors.push(format!("{at}: {n} outside the model's range"));
            }
        }
        (ty, value) => errors.push(format!("{at}: model type {ty} but JSON {value}")),
    }
}

#[test]
fn requests_and_responses_match_the_botocore_models() {
    let Some(models) = models() else { return };
    let mut errors = Vec::new();
    let wires = all_roundtrips(false)
        .into_iter()
        .chain(all_roundtrips(true));
    for wire in wires {
        let op = &models[wire.op.service().model_name()]["operations"][wire.op.name()];
        assert!(
            op.is_object(),
            "{:?} missing from model {}",
            wire.op,
            wire.op.service().model_name()
        );
        assert_eq!(op["uri"], wire.op.path(), "{:?}", wire.op);
        assert_eq!(op["method"], "POST");
        check(&wire.request, &op["input"], wire.op.name(), &mut errors);
        let output = &op["output"];
        if output["payload"].is_string() {
            assert!(
                wire.response.is_null(),
                "{:?}: streaming response has a JSON body",
                wire.op
            );
        } else {
            check(
                &wire.response,
                output,
                &format!("{}>", wire.op.name()),
                &mut errors,
            );
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn missing_required_members_are_invalid_arguments() {
    let Some(models) = models() else { return };
    for wire in all_roundtrips(false) {
        let op = &models[wire.op.service().model_name()]["operations"][wire.op.name()];
        for req in op["input"]["required"].as_array().into_iter().flatten() {
            let mut body = wire.request.clone();
            body.as_object_mut().unwrap().remove(req.as_str().unwrap());
            let err =
                ApiRequest::from_http(&raw_request(wire.op.path(), &body.to_string())).unwrap_err();
            assert_eq!(
                err.kind,
                ApiErrorKind::InvalidArgument,
                "{:?} without {req}: {err}",
                wire.op
            );
        }
    }
}

#[test]
fn enums_equal_the_models() {
    let Some(models) = models() else { return };
    let ours: &[(&str, &str, &[&str])] = &[
        ("kinesisvideo", "Status", StreamStatus::NAMES),
        ("kinesisvideo", "APIName", ApiName::NAMES),
        (
            "kinesisvideo",
            "ComparisonOperator",
            ComparisonOperator::NAMES,
        ),
        (
            "kinesisvideo",
            "UpdateDataRetentionOperation",
            UpdateDataRetentionOperation::NAMES,
        ),
        (
            "kinesisvideo",
            "DefaultStorageTier",
            DefaultStorageTier::NAMES,
        ),
        (
            "kinesis-video-media",
            "StartSelectorType",
            StartSelectorType::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "FragmentSelectorType",
            TimestampSelectorType::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "ClipFragmentSelectorType",
            TimestampSelectorType::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "HLSFragmentSelectorType",
            TimestampSelectorType::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "DASHFragmentSelectorType",
            TimestampSelectorType::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "ImageSelectorType",
            TimestampSelectorType::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "HLSPlaybackMode",
            PlaybackMode::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "DASHPlaybackMode",
            PlaybackMode::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "ContainerFormat",
            ContainerFormat::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "HLSDiscontinuityMode",
            DiscontinuityMode::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "HLSDisplayFragmentTimestamp",
            DisplayMode::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "DASHDisplayFragmentTimestamp",
            DisplayMode::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "DASHDisplayFragmentNumber",
            DisplayMode::NAMES,
        ),
        ("kinesis-video-archived-media", "Format", ImageFormat::NAMES),
        (
            "kinesis-video-archived-media",
            "FormatConfigKey",
            FormatConfigKey::NAMES,
        ),
        (
            "kinesis-video-archived-media",
            "ImageError",
            ImageError::NAMES,
        ),
    ];
    for (svc, shape, names) in ours {
        let model: Vec<&str> = models[svc]["enums"][shape]
            .as_array()
            .unwrap_or_else(|| panic!("{svc} has no enum {shape}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&model, names, "{svc} {shape}");
    }
    assert_eq!(FragmentTimecodeType::NAMES, ["ABSOLUTE", "RELATIVE"]);
}

#[test]
fn every_modelled_error_is_known_with_its_status() {
    let Some(models) = models() else { return };
    let mut seen = 0;
    for svc in [
        "kinesisvideo",
        "kinesis-video-media",
        "kinesis-video-archived-media",
    ] {
        for (name, status) in models[svc]["errors"].as_object().unwrap() {
            let kind = ApiErrorKind::from_name(name);
            assert!(
                !matches!(kind, ApiErrorKind::Other(_)),
                "{svc}: unknown error {name}"
            );
            assert_eq!(
                Some(u64::from(kind.http_status())),
                status.as_u64(),
                "{svc}: {name}"
            );
            assert_eq!(kind.name(), name);
            seen += 1;
        }
        // Every error an implemented operation lists is modelled (and so checked above).
        for op in Operation::ALL
            .iter()
            .filter(|op| op.service().model_name() == svc)
        {
            for e in models[svc]["operations"][op.name()]["errors"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert!(models[svc]["errors"].get(e.as_str().unwrap()).is_some());
            }
        }
    }
    assert!(seen >= 25, "only {seen} error shapes found");
}
