//! Contract tests: the vendors' own documented answers (`sim/fixtures/`,
//! each with its source), replayed byte for byte by `roster_sim::replay`,
//! read through the real connector components by the real `roster` binary,
//! and the normalized records asserted. Unlike the simulators, the replay
//! has no rules of its own: what a connector makes of the vendor's exact
//! answer is what is checked, and a request outside the samples fails the
//! test.

mod common;

use common::{HEADER, Work};
use roster_sim::replay::{self, Route};
use serde_json::{Value, json};
use std::path::Path;

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sim/fixtures")
            .join(rel),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A pipeline whose source is `connector` (plugin and config given), into csv.
fn pipeline(work: &Work, url: &str, plugin: &str, config: &str) {
    work.write("dst/accounts.csv", HEADER);
    let tables = format!(
        r#"[connectors.src]
plugin = "{plugin}"
allowed_hosts = ["{url}"]

[connectors.src.config]
{config}"#
    );
    work.write(
        "pipeline.toml",
        &common::into_csv("contract", "src", &tables),
    );
}

/// Every account the source yields, by address.
fn read(work: &Work) -> Vec<Value> {
    let doc = work.run(&["read", "pipeline.toml", "--json"]).ok().json();
    doc["accounts"].as_array().unwrap().clone()
}

fn by_email<'a>(accounts: &'a [Value], email: &str) -> &'a Value {
    accounts
        .iter()
        .find(|a| a["email"] == email)
        .unwrap_or_else(|| panic!("no {email} in {accounts:#?}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn nothing_unexpected(r: &replay::Replay) {
    let unexpected = r.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "requests outside the samples: {unexpected:#?}"
    );
}

#[test]
fn zivvers_own_list_answers_read_as_people_and_functional_accounts() {
    let (running, r) = replay::start(vec![
        Route::get(
            "/api/scim/v2/Users",
            fixture("zivver/scim-users.sample.json"),
        ),
        Route::get(
            "/api/scim/v2/Groups",
            fixture("zivver/scim-groups.sample.json"),
        ),
    ])
    .unwrap();
    let url = running.url();
    let work = Work::new();
    work.write("key", "replay-key");
    pipeline(
        &work,
        &url,
        "zivver",
        &format!("base_url = \"{url}/api/scim/v2/\"\napi_key = \"${{file:key}}\""),
    );
    let accounts = read(&work);
    let people = accounts.iter().filter(|a| a["kind"] == "person").count();
    let functional = accounts
        .iter()
        .filter(|a| a["kind"] == "functional")
        .count();
    assert_eq!((people, functional), (16, 7), "{accounts:#?}");

    let patrick = by_email(&accounts, "patrick.wijntjes@zivver.com");
    assert_eq!(patrick["id"], "95c1d4bc-0053-4095-823c-80d381e3ae9f");
    assert_eq!(patrick["display_name"], "Patrick Wijntjes");
    assert_eq!(
        strings(&patrick["aliases"]),
        [
            "patrick.wijntjes+2@zivver.org",
            "patrick.wijntjes+1@zivver.org",
            "patrick.alias@zivver.com",
            "patrick.wijntjes+alias26@zivver.com"
        ]
    );
    assert_eq!(
        strings(&patrick["delegates"]),
        ["anubha.agarwal@zivver.com"]
    );
    assert_eq!(patrick["attributes"]["division"], "tc");
    assert_eq!(
        by_email(&accounts, "andriy.belyukin@zivver.com")["enabled"],
        false
    );

    // A functional account's members are user UUIDs; named by their addresses.
    let everyone = by_email(&accounts, "everyone@zivver.com");
    assert_eq!(everyone["display_name"], "EveryoneOfZivver");
    assert!(
        strings(&everyone["delegates"]).contains(&"patrick.wijntjes@zivver.com"),
        "{everyone:#}"
    );
    nothing_unexpected(&r);
}

/// An Entra token answer (the identity platform's documented shape) whose
/// JWT names tenant `tid`.
fn token_answer(tid: &str) -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let jwt = format!(
        "{}.{}.",
        b64(json!({"typ": "JWT", "alg": "none"})),
        b64(json!({"tid": tid, "aud": "https://outlook.office365.com"}))
    );
    json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": jwt})
        .to_string()
}

#[test]
fn graphs_and_the_admin_apis_documented_answers_read_as_accounts() {
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let admin = format!("/adminapi/beta/{tid}");
    let permissions = |mailbox: &str| {
        Route::get(
            &format!("{admin}/Mailbox('{}')/MailboxPermission", b64(mailbox)),
            fixture("contract/exchange-admin/cloudsync-permissions.sample.json"),
        )
        .with_query("isEncoded=true")
    };
    let (running, r) = replay::start(vec![
        Route::post("/contoso.com/oauth2/v2.0/token", token_answer(tid)),
        Route::get(
            "/v1.0/users/delta",
            fixture("graph/graph-users-delta-final-page.json"),
        )
        .with_query("$deltatoken=latest"),
        Route::get("/v1.0/users", fixture("graph/graph-users-list.json")),
        Route::get(
            &format!("{admin}/Mailbox"),
            fixture("contract/exchange-admin/cloudsync-mailboxes.sample.json"),
        )
        .with_query("$select=PrimarySmtpAddress"),
        permissions("ORGsharedmailbox@zivvertest.onmicrosoft.com"),
        permissions("testplugin5@zivvertest.onmicrosoft.com"),
    ])
    .unwrap();
    let url = running.url();
    let work = Work::new();
    work.write("secret", "replay-secret");
    pipeline(
        &work,
        &url,
        "exchange-online",
        &format!(
            "tenant_id = \"contoso.com\"\nclient_id = \"app\"\nclient_secret = \"${{file:secret}}\"\nlogin_url = \"{url}\"\ngraph_url = \"{url}\"\nadmin_url = \"{url}\""
        ),
    );
    let accounts = read(&work);
    // Graph's "List users" sample: Adams has a mail address; MOD
    // Administrator has none (and no proxy address) and is no account.
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    let adams = by_email(&accounts, "Adams@contoso.com");
    assert_eq!(adams["id"], "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0");
    assert_eq!(
        adams["external_key"],
        "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"
    );
    assert_eq!(adams["display_name"], "Conf Room Adams");
    assert_eq!(adams["kind"], "person");
    assert_eq!(adams["enabled"], true);
    assert!(adams["given_name"].is_null());
    assert_eq!(
        adams["attributes"]["userPrincipalName"],
        "Adams@contoso.com"
    );
    // The admin API was asked as CloudSync asks it: the token's tenant id,
    // base64 identities; both mailboxes' permissions parsed.
    let seen = r.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .filter(|l| l.contains("MailboxPermission"))
            .count()
            == 2,
        "{seen:#?}"
    );
    nothing_unexpected(&r);
}

#[test]
fn superoffices_documented_answers_are_survived() {
    // The reference's samples are generated data: the AllUsers rows name
    // persons by PrimaryKey, the associate list holds an anonymous retired
    // associate, and the person card's e-mail values are no addresses. The
    // GetAssociate sample (an internal user of person 478) joins the list.
    let mut associates: Vec<Value> = serde_json::from_str(&fixture(
        "contract/superoffice/v1AssociateAgent_GetAssociateList.sample.json",
    ))
    .unwrap();
    associates.push(
        serde_json::from_str(&fixture("superoffice/superoffice-associate.example.json")).unwrap(),
    );
    let (running, r) = replay::start(vec![
        Route::get(
            "/api/v1/User",
            fixture("contract/superoffice/v1User_GetAll.sample.json"),
        )
        .with_query("$select=associateDbId"),
        Route::post(
            "/api/v1/Agents/Associate/GetAssociateList",
            Value::Array(associates).to_string(),
        ),
        Route::get(
            "/api/v1/Person/478",
            fixture("contract/superoffice/v1PersonEntity_GetPersonEntity.sample.json"),
        ),
        Route::get(
            "/api/v1/License",
            fixture("contract/superoffice/v1License_GetLicenseForAllOwnersFromDB.sample.json"),
        ),
    ])
    .unwrap();
    let url = running.url();
    let work = Work::new();
    work.write("token", "replay-token");
    pipeline(
        &work,
        &url,
        "superoffice",
        &format!(
            "base_url = \"{url}/api/v1/\"\ntoken = \"${{file:token}}\"\ninstallation = \"onsite\""
        ),
    );
    let accounts = read(&work);
    assert!(
        accounts.is_empty(),
        "no card with an address, no internal user else: {accounts:#?}"
    );
    let seen = r.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|l| l.starts_with("GET /api/v1/Person/478")),
        "the internal user's card was read: {seen:#?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("/Person/490")),
        "a retired anonymous associate is no person: {seen:#?}"
    );
    nothing_unexpected(&r);
}
