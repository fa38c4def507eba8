//! docs/compatibility.md kept true, and no documented input silently ignored.
//!
//! The table must name every operation of Svix's OpenAPI document, of both official SDKs and
//! of Hookline's router; its supported rows must be routed and its not supported ones not
//! served. Then every input the reference or an SDK documents for a served operation (query
//! parameters and top-level body fields) must be either declared in Hookline's own document
//! (built from the structs the handlers read) or refused by a running Hookline with a 4xx
//! whose JSON names it.

mod inputs;
mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use self::inputs::{Operation, Place};
use self::table::{shape, Row, Status};
use crate::testkit::js::run_js;
use crate::testkit::process::TOKEN;
use crate::testkit::python::{repo, run_python};
use crate::testkit::{eventually, sdk_backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

type Key = (String, String);

fn table() -> Vec<Row> {
    let path = repo().join("docs/compatibility.md");
    let text = std::fs::read_to_string(&path).expect("docs/compatibility.md");
    table::parse(&text).unwrap_or_else(|e| panic!("docs/compatibility.md: {e}"))
}

fn reference() -> Vec<Operation> {
    let path: PathBuf = repo().join("tests/reference/svix-openapi.json");
    let text = std::fs::read_to_string(&path).expect("the Svix reference document");
    let document: Value = serde_json::from_str(&text).expect("reference JSON");
    inputs::from_openapi(&document, "reference")
}

/// Hookline's own document, as `api_routes` builds it with the router.
fn hookline() -> Vec<Operation> {
    let (_, document) = hookline_ingest::api_routes();
    let document = serde_json::to_value(&document).expect("document JSON");
    inputs::from_openapi(&document, "hookline")
}

/// Every operation of both SDKs, as their listing scripts print them.
async fn sdk_operations() -> Vec<Operation> {
    let (ok, python) = run_python("sdk_inputs.py", &[], None).await;
    assert!(ok, "tests/python/sdk_inputs.py failed: {python}");
    let (ok, js) = run_js("sdk_inputs.mjs", &[]).await;
    assert!(ok, "tests/js/sdk_inputs.mjs failed: {js}");
    let mut operations = inputs::from_sdk_list(&python);
    operations.extend(inputs::from_sdk_list(&js));
    assert!(
        operations.len() > 200,
        "both SDKs list their operations: {}",
        operations.len()
    );
    operations
}

#[tokio::test]
async fn the_compatibility_table_names_every_operation_and_matches_the_router() {
    let rows = table();
    let mut problems = table_problems(&rows, &reference(), &sdk_operations().await);
    let routed: BTreeSet<Key> = hookline().iter().map(Operation::key).collect();
    let by_key: HashMap<Key, &Row> = rows.iter().map(|r| (r.key(), r)).collect();
    for key in &routed {
        if !by_key.contains_key(key) {
            problems.push(format!(
                "Hookline routes {} {} but docs/compatibility.md has no row for it",
                key.0, key.1
            ));
        }
    }
    let stack = Stack::new("compat-table");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    for row in &rows {
        let documented = routed.contains(&row.key());
        if let Some(problem) = check_served(&api, row, documented).await {
            problems.push(problem);
        }
    }
    assert!(
        problems.is_empty(),
        "docs/compatibility.md and Hookline disagree:\n- {}",
        problems.join("\n- ")
    );
}

/// Rows that repeat, and operations of the reference or an SDK without a row (or whose row
/// does not name the SDK method).
fn table_problems(rows: &[Row], reference: &[Operation], sdks: &[Operation]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashMap<Key, &Row> = HashMap::new();
    for row in rows {
        if let Some(first) = seen.insert(row.key(), row) {
            problems.push(format!("{row} repeats {first}"));
        }
    }
    assert!(
        reference.len() == 41,
        "{} reference operations",
        reference.len()
    );
    for op in reference {
        if !seen.contains_key(&op.key()) {
            problems.push(format!(
                "{} {} ({}) has no row",
                op.method, op.path, op.source
            ));
        }
    }
    for op in sdks {
        match seen.get(&op.key()) {
            None => problems.push(format!(
                "{} {} ({}) has no row",
                op.method, op.path, op.source
            )),
            Some(row) if !row.sdk.contains(&format!("`{}`", op.source)) => problems.push(format!(
                "{row}: the SDK methods cell does not name `{}`",
                op.source
            )),
            Some(_) => {}
        }
    }
    problems
}

/// A served row must be routed; a not supported one must not be served. Rows Hookline's
/// document lacks (health, or refusals registered outside it) are asked over HTTP.
async fn check_served(api: &Api, row: &Row, documented: bool) -> Option<String> {
    if row.served() && documented {
        return None;
    }
    let path = placeholder_path(&row.path);
    let method: Method = row.method.parse().expect("an HTTP method");
    let body = matches!(row.method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
    let (status, answer) = api.call(method, &path, body.as_ref(), &[]).await;
    let unrouted = (status == StatusCode::NOT_FOUND && answer["detail"] == "route not found")
        || status == StatusCode::METHOD_NOT_ALLOWED;
    let refused =
        unrouted || status == StatusCode::NOT_IMPLEMENTED || answer["code"] == "not_supported";
    match row.status {
        Status::NotSupported if !refused => Some(format!(
            "{row} is marked not supported, but {} {path} answered {status} {answer} \
             (expected 404 route not found, 405, 501 or code not_supported)",
            row.method
        )),
        Status::Supported | Status::Partly if unrouted => Some(format!(
            "{row} is marked served, but {} {path} answered {status} {answer}",
            row.method
        )),
        _ => None,
    }
}

/// A path with its parameters filled with names no resource has.
fn placeholder_path(path: &str) -> String {
    shape(path).replace("{}", "unknown")
}

/// The fixture event type's schemas.
static FIXTURE_SCHEMAS: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"1": {"type": "object", "examples": [{"n": 1}]}}));

/// The resources the probes name in paths, so a wrongly accepted input gets a real answer.
struct Fixtures {
    params: BTreeMap<&'static str, String>,
    _receiver: Receiver,
}

impl Fixtures {
    async fn create(api: &Api) -> Self {
        let receiver = Receiver::start().await;
        let (status, event_type) = api
            .call(
                Method::POST,
                "/api/v1/event-type",
                Some(&json!({
                    "name": "compat.event",
                    "description": "compatibility",
                    "schemas": FIXTURE_SCHEMAS.clone(),
                })),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{event_type}");
        let app = api.create_app("compat").await;
        let url = receiver.url("compat", Reply::Always(204));
        let endpoint = api.create_endpoint(&app, json!({ "url": url })).await;
        let message = api.send(&app, "compat.event", json!({"n": 1})).await;
        let attempt = eventually("the fixture's attempt", Duration::from_secs(20), || {
            let (api, app, message) = (api.clone(), app.clone(), message.clone());
            async move {
                let attempts = api.attempts_of_message(&app, &message).await;
                attempts
                    .first()
                    .and_then(|a| a["id"].as_str())
                    .map(str::to_owned)
            }
        })
        .await;
        let params = BTreeMap::from([
            ("app_id", app),
            ("endpoint_id", endpoint),
            ("msg_id", message),
            ("attempt_id", attempt),
            ("event_type_name", "compat.event".to_owned()),
        ]);
        Self {
            params,
            _receiver: receiver,
        }
    }

    /// `path` with each known parameter replaced by its fixture (others by `unknown`).
    fn path(&self, path: &str) -> String {
        let mut out = path.to_owned();
        while let Some(start) = out.find('{') {
            let Some(end) = out[start..].find('}') else {
                break;
            };
            let name = &out[start + 1..start + end];
            let value = self
                .params
                .get(name)
                .map_or("unknown", String::as_str)
                .to_owned();
            out.replace_range(start..=start + end, &value);
        }
        out
    }
}

/// One input to check: where it is documented, and what Hookline's document says of it.
struct Probe<'a> {
    row: &'a Row,
    input: inputs::Input,
    /// Every source that documents it (`reference v1.message.create`, `py:message.create`).
    sources: Vec<String>,
    /// A body the operation accepts without the input, for body and query probes alike.
    base: Option<Value>,
}

#[tokio::test]
async fn every_documented_input_is_honoured_or_refused() {
    let rows = table();
    let served: HashMap<Key, &Row> = rows
        .iter()
        .filter(|r| r.served())
        .map(|r| (r.key(), r))
        .collect();
    let declared: HashMap<Key, BTreeSet<(Place, String)>> = hookline()
        .iter()
        .map(|op| (op.key(), inputs::declared(op)))
        .collect();
    let mut documented = reference();
    documented.extend(sdk_operations().await);
    let probes = probes(&documented, &served);
    assert!(probes.len() > 150, "{} inputs to check", probes.len());

    let stack = Stack::new("compat-inputs");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let fixtures = Fixtures::create(&api).await;
    let mut problems = Vec::new();
    let mut refused = 0;
    let mut unrouted = BTreeSet::new();
    for probe in &probes {
        let known = declared.get(&probe.row.key());
        let is_declared =
            known.is_some_and(|d| d.contains(&(probe.input.place, probe.input.name.clone())));
        if is_declared {
            continue;
        }
        if let Some(value) = &probe.input.always {
            problems.push(format!(
                "{}: {} always sends {}={value}, but Hookline's document does not declare it \
                 (refusing it breaks the SDK)",
                describe(probe),
                probe.sources.join(", "),
                probe.input.name
            ));
            continue;
        }
        match send_probe(&api, &fixtures, probe).await {
            Outcome::Refused => refused += 1,
            Outcome::Unrouted => {
                unrouted.insert(format!("{} {}", probe.row.method, probe.row.path));
            }
            Outcome::Accepted(problem) => problems.push(problem),
        }
    }
    println!(
        "{} inputs: {refused} refused, the rest declared; not routed here (the table test \
         names them): {unrouted:?}",
        probes.len()
    );
    assert!(
        problems.is_empty(),
        "{} documented inputs are neither declared in Hookline's OpenAPI document nor refused:\n- {}",
        problems.len(),
        problems.join("\n- ")
    );
}

/// The inputs of served operations, once each, DELETE operations last (a wrongly accepted
/// probe there would remove a fixture the others name).
fn probes<'a>(documented: &[Operation], served: &HashMap<Key, &'a Row>) -> Vec<Probe<'a>> {
    let mut by_input: BTreeMap<(bool, Key, Place, String), Probe<'a>> = BTreeMap::new();
    for op in documented {
        let Some(row) = served.get(&op.key()) else {
            continue;
        };
        let base = op.body.as_ref().map(inputs::required_object);
        for input in &op.inputs {
            let id = (
                op.method == "DELETE",
                op.key(),
                input.place,
                input.name.clone(),
            );
            let probe = by_input.entry(id).or_insert_with(|| Probe {
                row,
                input: input.clone(),
                sources: Vec::new(),
                base: base.clone(),
            });
            probe.sources.push(op.source.clone());
            if probe.input.always.is_none() {
                probe.input.always.clone_from(&input.always);
            }
        }
    }
    by_input.into_values().collect()
}

fn describe(probe: &Probe<'_>) -> String {
    let what = match probe.input.place {
        Place::Query => "query parameter",
        Place::Body => "body field",
    };
    format!(
        "{} {} {what} `{}`",
        probe.row.method, probe.row.path, probe.input.name
    )
}

/// What a running Hookline made of an input its document does not declare.
enum Outcome {
    /// A 4xx naming the input.
    Refused,
    /// The operation is not routed: the table test reports it, once.
    Unrouted,
    /// Anything else, described.
    Accepted(String),
}

/// Sends the input with a plausible value of its documented type.
async fn send_probe(api: &Api, fixtures: &Fixtures, probe: &Probe<'_>) -> Outcome {
    let value = inputs::sample(&probe.input.schema);
    let mut path = fixtures.path(&probe.row.path);
    let mut body = probe.base.clone();
    match probe.input.place {
        Place::Query => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(&probe.input.name, &inputs::query_value(&value))
                .finish();
            path = format!("{path}?{query}");
        }
        Place::Body => {
            let mut object = body.take().unwrap_or_else(|| json!({}));
            object[&probe.input.name] = value.clone();
            body = Some(object);
        }
    }
    let method: Method = probe.row.method.parse().expect("an HTTP method");
    let (status, answer) = api.call(method, &path, body.as_ref(), &[]).await;
    if names_the_input(status, &answer, probe.input.place, &probe.input.name) {
        return Outcome::Refused;
    }
    if (status == StatusCode::NOT_FOUND && answer["detail"] == "route not found")
        || status == StatusCode::METHOD_NOT_ALLOWED
    {
        return Outcome::Unrouted;
    }
    Outcome::Accepted(format!(
        "{} (documented by {}): not in Hookline's document for the operation, and sending \
         {} {path} with body {} answered {status} {answer}",
        describe(probe),
        probe.sources.join(", "),
        probe.row.method,
        body.map_or_else(|| "none".to_owned(), |b| b.to_string()),
    ))
}

/// A client error other than authentication and routing whose JSON names the input: a
/// validation entry whose `loc` is `[place, name, …]`, or a `detail` text that names it.
fn names_the_input(status: StatusCode, answer: &Value, place: Place, name: &str) -> bool {
    let routing_or_auth = [
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED,
    ];
    if !status.is_client_error() || routing_or_auth.contains(&status) {
        return false;
    }
    match &answer["detail"] {
        Value::Array(errors) => errors
            .iter()
            .any(|error| error["loc"][0] == place.loc() && error["loc"][1] == name),
        Value::String(text) => text.contains(name),
        _ => false,
    }
}

/// Both official SDKs against a running Hookline: what they send whatever the caller asks
/// (`with_content=false`, `expanded_statuses=true`) is served, both names of a renamed field
/// are read, and what Hookline does not support comes back as the SDK's validation error
/// naming it.
#[apply(sdk_backends)]
#[tokio::test]
async fn the_sdks_are_served_what_they_always_send_and_told_what_is_refused(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "compat-sdk");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let fixtures = Fixtures::create(&api).await;
    let base = hookline.api_url.clone().expect("api url");
    let param = |name: &str| fixtures.params[name].clone();
    let (app, endpoint, msg, attempt) = (
        param("app_id"),
        param("endpoint_id"),
        param("msg_id"),
        param("attempt_id"),
    );
    let env = [
        ("HOOKLINE_URL", base.as_str()),
        ("HOOKLINE_TOKEN", TOKEN),
        ("APP_ID", app.as_str()),
        ("ENDPOINT_ID", endpoint.as_str()),
        ("MSG_ID", msg.as_str()),
        ("ATTEMPT_ID", attempt.as_str()),
        ("EVENT_TYPE", "compat.event"),
    ];

    let (ok, py) = run_python("svix_reads.py", &env, None).await;
    assert!(ok, "svix_reads.py failed: {py}");
    assert_eq!(py["created_payload"], json!({}), "with_content=false: {py}");
    assert_eq!(py["got_payload"], json!({}), "with_content=false: {py}");
    assert_eq!(py["got_full_payload"], json!({"n": 1}), "{py}");
    assert_eq!(
        py["type_schemas"],
        json!([null]),
        "with_content=false: {py}"
    );
    assert_eq!(py["type_schemas_full"], json!([*FIXTURE_SCHEMAS]), "{py}");
    for list in ["by_msg", "by_endpoint"] {
        assert!(
            py[list]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(attempt))),
            "{list}: {py}"
        );
    }
    assert!(
        py["attempted"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(msg))),
        "{py}"
    );
    assert_eq!(py["attempt"], json!(attempt), "{py}");
    assert_eq!(py["destinations"], json!([endpoint]), "{py}");
    assert!(py["stats_success"].as_u64().is_some_and(|n| n >= 1), "{py}");
    assert_eq!(
        py["refused"],
        json!({"status": 422, "loc": [["body", "transformationsParams"]]}),
        "{py}"
    );

    let (ok, js) = run_js("svix_reads.mjs", &env).await;
    assert!(ok, "svix_reads.mjs failed: {js}");
    assert_eq!(js["createdPayload"], json!({"k": 1}), "{js}");
    assert_eq!(js["storedPayload"], json!({"k": 1}), "{js}");
    assert_eq!(js["appRate"], 7, "rateLimit and throttleRate agree: {js}");
    assert_eq!(
        js["endpointTypes"],
        json!(["compat.event"]),
        "filterTypes is read: {js}"
    );
    assert_eq!(js["endpointRate"], 3, "rateLimit is read: {js}");
    assert_eq!(js["attempt"], json!(attempt), "{js}");
    assert!(
        js["byMsg"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(attempt))),
        "{js}"
    );
    assert_eq!(
        js["refusedVersion"],
        json!({"status": 422, "loc": [["body", "version"]]}),
        "{js}"
    );
    assert_eq!(
        js["refusedRates"],
        json!({"status": 422, "loc": [["body", "throttleRate"]]}),
        "{js}"
    );
}
