//! The OCSF export, validated against the published OCSF 1.8.0 schema: JSON Schemas generated
//! from schema.ocsf.io's export by `ocsf-json-schema` (tests/fixtures/ocsf, with their
//! licences and the script that made them), and the captions of the schema's enumerations.
//! A history with every kind of request event and identity event is exported; each line must
//! validate against its class's schema and name its activity, severity and status as the
//! schema does.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use breakglass_core::Span;
use breakglass_engine::{Engine, EventFormat, ExportFilter};
use serde_json::{json, Value};
use support::history::{history, start};

fn fixture(name: &str) -> Value {
    let path = breakglass_testkit::package_dir()
        .join("tests/fixtures/ocsf")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

struct Schemas {
    validators: BTreeMap<u64, jsonschema::Validator>,
    captions: Value,
}

impl Schemas {
    fn load() -> Self {
        let mut validators = BTreeMap::new();
        for (uid, name) in [(3005, "user_access"), (3001, "account_change")] {
            let schema = fixture(&format!("{name}.schema.json"));
            assert_eq!(
                schema["properties"]["class_uid"]["const"], uid,
                "{name} is class {uid}"
            );
            validators.insert(uid, jsonschema::validator_for(&schema).unwrap());
        }
        Self {
            validators,
            captions: fixture("captions.json"),
        }
    }

    /// Every way `event` breaks the schema or names a code other than the schema does.
    fn problems(&self, event: &Value) -> Vec<String> {
        let Some(uid) = event["class_uid"].as_u64() else {
            return vec!["no class_uid".into()];
        };
        let Some(validator) = self.validators.get(&uid) else {
            return vec![format!("class {uid} is neither 3005 nor 3001")];
        };
        let mut out: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        let class = self.captions["classes"]
            .as_object()
            .unwrap()
            .values()
            .find(|c| c["uid"] == uid)
            .unwrap();
        let caption = |attr: &str, id: &Value| class["enums"][attr][id.to_string()].clone();
        let activity = &event["activity_id"];
        let named = if *activity == 99 {
            json!("Other")
        } else {
            caption("activity_id", activity)
        };
        if *activity != 99 && event["activity_name"] != named {
            out.push(format!(
                "activity {activity} is not {}",
                event["activity_name"]
            ));
        }
        if event["activity_name"].as_str().is_none_or(str::is_empty) {
            out.push("no activity_name".into());
        }
        let type_uid = uid * 100 + activity.as_u64().unwrap_or(0);
        if event["type_uid"] != type_uid {
            out.push(format!("type_uid {} is not {type_uid}", event["type_uid"]));
        }
        match named.as_str() {
            None => out.push(format!("activity {activity} is not in the schema")),
            Some(named) => {
                let type_name = format!("{}: {named}", class["caption"].as_str().unwrap());
                if event["type_name"] != type_name.as_str() {
                    out.push(format!(
                        "type_name {} is not {type_name}",
                        event["type_name"]
                    ));
                }
            }
        }
        for (attr, sibling) in [("severity_id", "severity"), ("status_id", "status")] {
            if event.get(attr).is_some() && event[sibling] != caption(attr, &event[attr]) {
                out.push(format!(
                    "{sibling} {} does not match {attr}",
                    event[sibling]
                ));
            }
        }
        if event["class_name"] != class["caption"]
            || event["category_uid"] != class["category_uid"]
            || event["category_name"] != class["category_name"]
        {
            out.push("class or category named otherwise than the schema".into());
        }
        if event["metadata"]["version"] != self.captions["version"] {
            out.push("metadata.version is not the schema's".into());
        }
        out
    }
}

async fn export(e: &Engine, filter: &ExportFilter) -> (Vec<Value>, breakglass_engine::EventCount) {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let count = e
        .export_events(EventFormat::Ocsf, filter, &mut out, &mut |done, total| {
            seen.push((done, total));
        })
        .await
        .unwrap();
    assert_eq!(seen.first(), Some(&(0, e.size())), "progress starts at 0");
    assert_eq!(
        seen.last(),
        Some(&(e.size(), e.size())),
        "and ends at the log's size"
    );
    let text = String::from_utf8(out).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len() as u64, count.written);
    (events, count)
}

#[tokio::test]
async fn every_exported_event_validates_against_the_ocsf_schema_of_its_class() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = history(tmp.path()).await;
    let schemas = Schemas::load();
    let (events, count) = export(&engine, &ExportFilter::default()).await;

    for event in &events {
        let problems = schemas.problems(event);
        assert!(problems.is_empty(), "{problems:#?}\nin {event:#}");
    }

    // One event per entry about access or an account, in log order; the rest counted.
    let entries = engine.entries(0, engine.size()).await.unwrap();
    let kinds: Vec<String> = entries
        .iter()
        .map(|b| {
            let e = breakglass_ledger::Entry::decode(b).unwrap();
            e.event().body.kind().to_owned()
        })
        .collect();
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["metadata"]["sequence"].as_u64().unwrap())
        .collect();
    let skipped: Vec<&str> = (0..kinds.len() as u64)
        .filter(|i| !sequences.contains(i))
        .map(|i| kinds[i as usize].as_str())
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "log order");
    assert_eq!(
        skipped,
        ["policy_applied"],
        "only the policy has no OCSF form"
    );
    assert_eq!(count.without_form, 1);
    for e in &events {
        let i = e["metadata"]["sequence"].as_u64().unwrap() as usize;
        assert_eq!(e["metadata"]["event_code"], kinds[i].as_str());
    }

    let of = |code: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["metadata"]["event_code"] == code)
            .collect()
    };
    let activities: BTreeSet<(u64, u64)> = events
        .iter()
        .map(|e| {
            (
                e["class_uid"].as_u64().unwrap(),
                e["activity_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        activities,
        BTreeSet::from([(3001, 1), (3001, 6), (3005, 1), (3005, 2), (3005, 99)]),
        "accounts created and deleted; privileges assigned, revoked, and the steps between"
    );

    // The first grant: dave holds prod-db's read role for exactly an hour.
    let grant = of("access_granted")[0];
    assert_eq!(grant["activity_name"], "Assign Privileges");
    assert_eq!(grant["status"], "Success");
    assert_eq!(grant["user"]["name"], "dave");
    assert_eq!(grant["privileges"], json!(["read"]));
    assert_eq!(grant["resources"][0]["name"], "prod-db");
    assert_eq!(grant["resources"][0]["type"], "command");
    assert_eq!(grant["start_time"], start().unix_millis());
    assert_eq!(
        grant["end_time"].as_i64().unwrap() - grant["start_time"].as_i64().unwrap(),
        3_600_000
    );
    assert_eq!(grant["duration"], 3_600_000);
    let request = of("access_requested")[0];
    assert_eq!(request["actor"]["user"]["name"], "dave");
    assert_eq!(
        request["unmapped"]["reason"], "=HYPERLINK(\"x\") investigate INC-42",
        "the reason as given (JSON is no spreadsheet)"
    );
    assert_eq!(request["unmapped"]["ticket"], "INC-42");
    assert_eq!(
        request["metadata"]["correlation_uid"], grant["metadata"]["correlation_uid"],
        "a request's events share its chain's id"
    );
    let approvals = of("request_approved");
    assert_eq!(approvals[0]["actor"]["user"]["name"], "bob");
    assert_eq!(
        approvals[0]["user"]["name"], "dave",
        "the user is whose access it is"
    );
    assert_eq!(approvals[0]["activity_name"], "Approve");

    let expired = of("access_expired");
    assert_eq!(expired.len(), 2);
    assert!(expired
        .iter()
        .all(|e| e["activity_id"] == 2 && e["status_id"] == 1));
    let revoked = of("access_revoked")[0];
    assert_eq!(
        (revoked["activity_id"].clone(), revoked["status_id"].clone()),
        (json!(2), json!(1))
    );
    let failed = of("revoke_failed")[0];
    assert_eq!(
        (failed["activity_id"].clone(), failed["status_id"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(failed["severity"], "High");
    assert!(
        failed["status_detail"].as_str().unwrap().contains("exit"),
        "{failed}"
    );
    let grant_failed = of("grant_failed")[0];
    assert_eq!(
        (
            grant_failed["activity_id"].clone(),
            grant_failed["status"].clone()
        ),
        (json!(1), json!("Failure"))
    );
    let bg = of("access_requested")
        .into_iter()
        .find(|e| e["unmapped"]["break_glass"] == true)
        .unwrap();
    assert_eq!(bg["activity_name"], "Break-glass Activation");
    let alert = of("alert")[0];
    assert_eq!(alert["activity_name"], "Break-glass Alert");
    assert_eq!(alert["severity_id"], 4);
    assert_eq!(
        of("review_recorded")[0]["status_detail"],
        "justified: INC-42 outage"
    );
    assert_eq!(
        of("request_denied")[0]["status_detail"],
        "not during the freeze"
    );
    assert_eq!(of("request_lapsed").len(), 1);
    assert_eq!(of("request_cancelled").len(), 1);

    let enrolled = of("identity_enrolled");
    assert_eq!(enrolled.len(), 4);
    assert_eq!(enrolled[0]["user"]["name"], "bob");
    assert_eq!(enrolled[0]["user"]["groups"], json!([{ "name": "sre" }]));
    assert_eq!(enrolled[0]["actor"]["user"]["name"], "admin");
    let created = of("log_created")[0];
    assert_eq!(
        (
            created["class_uid"].clone(),
            created["user"]["name"].clone()
        ),
        (json!(3001), json!("admin"))
    );
    let gone = of("identity_revoked")[0];
    assert_eq!(gone["activity_name"], "Delete");
    assert_eq!(gone["user"]["name"], "erin");
    assert_eq!(gone["status_detail"], "left the company");
}

#[tokio::test]
async fn the_schema_check_refuses_what_the_schema_does_not_allow() {
    // The validation above means something only if a broken event fails it.
    let tmp = tempfile::tempdir().unwrap();
    let engine = history(tmp.path()).await;
    let schemas = Schemas::load();
    let (events, _) = export(&engine, &ExportFilter::default()).await;
    let grant = events
        .iter()
        .find(|e| e["metadata"]["event_code"] == "access_granted")
        .unwrap();
    assert!(schemas.problems(grant).is_empty());
    type Change = Box<dyn Fn(&mut Value)>;
    let broken: Vec<(&str, Change)> = vec![
        (
            "no user",
            Box::new(|e| drop(e.as_object_mut().unwrap().remove("user"))),
        ),
        (
            "no privileges",
            Box::new(|e| drop(e.as_object_mut().unwrap().remove("privileges"))),
        ),
        (
            "an attribute OCSF lacks",
            Box::new(|e| e["approvers"] = json!(["bob"])),
        ),
        (
            "an unknown activity",
            Box::new(|e| e["activity_id"] = json!(7)),
        ),
        (
            "a time as text",
            Box::new(|e| e["time"] = json!("2026-11-23T10:00:00Z")),
        ),
        (
            "the wrong class",
            Box::new(|e| e["class_uid"] = json!(3001)),
        ),
        (
            "a caption off the schema",
            Box::new(|e| e["activity_name"] = json!("Grant")),
        ),
        (
            "a type_uid off its class",
            Box::new(|e| e["type_uid"] = json!(300502)),
        ),
        (
            "a severity named otherwise",
            Box::new(|e| e["severity"] = json!("Low")),
        ),
        (
            "no product",
            Box::new(|e| drop(e["metadata"].as_object_mut().unwrap().remove("product"))),
        ),
    ];
    for (what, change) in broken {
        let mut e = grant.clone();
        change(&mut e);
        assert!(!schemas.problems(&e).is_empty(), "{what} passed the check");
    }
}

#[tokio::test]
async fn a_filtered_ocsf_export_holds_only_the_matching_requests_events() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = history(tmp.path()).await;
    let schemas = Schemas::load();
    let filter = ExportFilter {
        target: Some("staging".into()),
        ..ExportFilter::default()
    };
    let (events, count) = export(&engine, &filter).await;
    assert_eq!(count.without_form, 0, "the filter drops the policy first");
    assert!(!events.is_empty());
    for e in &events {
        assert!(schemas.problems(e).is_empty());
        assert_eq!(
            e["class_uid"], 3005,
            "no account events under a target filter"
        );
        assert_eq!(e["resources"][0]["name"], "staging");
    }
    let from = start().checked_add(Span::parse("3h").unwrap()).unwrap();
    let (late, _) = export(
        &engine,
        &ExportFilter {
            from: Some(from),
            ..ExportFilter::default()
        },
    )
    .await;
    assert!(!late.is_empty());
    assert!(late
        .iter()
        .all(|e| e["time"].as_i64().unwrap() >= from.unix_millis()));
    assert!(late
        .iter()
        .any(|e| e["metadata"]["event_code"] == "identity_revoked"));
}
