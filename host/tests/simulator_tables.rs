//! Each simulator against its own conformance table (docs/connectors/*.md):
//! a request outside the table gets the vendor's answer (404 for a route the
//! vendor does not have, 405/406/415 where the vendor refuses the method or
//! the media type, 400/403 where it refuses the request), and the documented
//! forms are served. Plain HTTP, no connector: what a real client that sent
//! these requests would meet.

mod common;

use common::example;
use roster_sim::{Faults, dynamics, m365, superoffice, zivver};

/// Status and body of a request.
fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        request = request.header(*n, *v);
    }
    let request = request.body(body.unwrap_or("").to_string()).unwrap();
    let mut answer = agent.run(request).unwrap();
    let status = answer.status().as_u16();
    (
        status,
        answer.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// An Entra token from the simulator at `url` for `client_id` and `scope`.
fn token(url: &str, client_id: &str, secret: &str, scope: &str) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope={}",
        scope.replace(':', "%3A").replace('/', "%2F")
    );
    let (status, body) = call(
        "POST",
        &format!("{url}/zivvertest.onmicrosoft.com/oauth2/v2.0/token"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(&form),
    );
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

#[test]
fn zivver_serves_only_its_documented_routes_and_media_types() {
    let org = zivver::seed::load(&example("exchange-to-zivver/zivver/org.json")).unwrap();
    let (running, _) = zivver::start(org, Faults::default(), 0).unwrap();
    let base = format!("{}/api/scim/v2", running.url());
    let auth = ("Authorization", "Bearer zivver-demo-api-key");
    let json = ("Accept", "application/json");
    // The documented routes, as CloudSync and HelloID call them.
    assert_eq!(
        call("GET", &format!("{base}/Users"), &[auth, json], None).0,
        200
    );
    assert_eq!(call("GET", &format!("{base}/Groups"), &[auth], None).0, 200);
    // No guest resource, no merge call.
    assert_eq!(
        call("GET", &format!("{base}/Guests"), &[auth, json], None).0,
        404
    );
    assert_eq!(
        call(
            "POST",
            &format!("{base}/Guests/x/merge"),
            &[auth, json],
            Some("{}")
        )
        .0,
        404
    );
    // Users take PUT only (HelloID).
    assert_eq!(
        call(
            "PATCH",
            &format!("{base}/Users/x"),
            &[auth, json],
            Some("{}")
        )
        .0,
        405
    );
    // Media types: JSON or SCIM JSON; a PATCH must accept and send SCIM JSON (CloudSync).
    let (status, _) = call(
        "GET",
        &format!("{base}/Users"),
        &[auth, ("Accept", "text/html")],
        None,
    );
    assert_eq!(status, 406);
    let patch = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members"}]}"#;
    let group = "5d968d63-0014-4191-a6c8-000000000014";
    let url = format!("{base}/Groups/{group}");
    let (status, _) = call(
        "PATCH",
        &url,
        &[auth, json, ("Content-Type", "application/scim+json")],
        Some(patch),
    );
    assert_eq!(
        status, 406,
        "a PATCH that does not accept application/scim+json"
    );
    let scim = ("Accept", "application/scim+json");
    let (status, _) = call(
        "PATCH",
        &url,
        &[auth, scim, ("Content-Type", "application/json")],
        Some(patch),
    );
    assert_eq!(status, 415);
    // Unknown ids answer 400 with Zivver's text, not 404.
    let (status, body) = call("GET", &format!("{base}/Users/nobody"), &[auth, json], None);
    assert_eq!(status, 400);
    assert!(body.contains("Unknown account with uuid nobody"), "{body}");
    // Without the key: 401.
    assert_eq!(call("GET", &format!("{base}/Users"), &[json], None).0, 401);
}

#[test]
fn superoffice_serves_only_its_documented_routes() {
    let mut crm =
        superoffice::seed::load(&example("exchange-to-superoffice/superoffice/tenant.json"))
            .unwrap();
    crm.online = true;
    let (running, _) = superoffice::start(crm, Faults::default(), 0).unwrap();
    let base = format!("{}/api/v1", running.url());
    let h = [
        ("Authorization", "Bearer superoffice-demo-token"),
        ("SO-AppToken", "superoffice-demo-app-token"),
        ("Accept", "application/json"),
    ];
    let (status, body) = call(
        "GET",
        &format!("{base}/User?$select=associateDbId,personId"),
        &h,
        None,
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"associateDbId\":950"), "{body}");
    assert_eq!(call("GET", &format!("{base}/Person/500"), &h, None).0, 200);
    assert_eq!(call("GET", &format!("{base}/License"), &h, None).0, 200);
    let (status, body) = call(
        "POST",
        &format!("{base}/Agents/Associate/GetAssociateList"),
        &h,
        Some(r#"{"AssociateIds": [950, 951]}"#),
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"AssociateId\":951"), "{body}");
    // No Associate resource, no SetPreferences.
    assert_eq!(call("GET", &format!("{base}/Associate"), &h, None).0, 404);
    assert_eq!(
        call("POST", &format!("{base}/Associate"), &h, Some("{}")).0,
        404
    );
    assert_eq!(
        call(
            "POST",
            &format!("{base}/Agents/Preference/SetPreferences"),
            &h,
            Some("[]")
        )
        .0,
        404
    );
    // An archive column AllUsers does not have.
    assert_eq!(
        call("GET", &format!("{base}/User?$select=Rank"), &h, None).0,
        400
    );
    // Online: the User agent is closed to partner apps.
    assert_eq!(
        call(
            "GET",
            &format!("{base}/User/Default?personId=500"),
            &h,
            None
        )
        .0,
        403
    );
    assert_eq!(call("POST", &format!("{base}/User"), &h, Some("{}")).0, 403);
    // A wrong app token.
    let wrong = [h[0], ("SO-AppToken", "nope")];
    assert_eq!(call("GET", &format!("{base}/License"), &wrong, None).0, 401);
}

#[test]
fn the_exchange_admin_api_takes_what_its_clients_send() {
    let tenant = m365::seed::load(&example("exchange-to-zivver/m365/tenant.json")).unwrap();
    let tid = tenant.id.clone();
    let (running, _) = m365::start(tenant, Faults::default(), 0).unwrap();
    let url = running.url();
    let token = token(
        &url,
        "roster-sim-client",
        "sim-client-secret",
        "https://outlook.office365.com/.default",
    );
    let claims = token.split('.').nth(1).unwrap();
    assert!(!claims.is_empty(), "a JWT, whose claims name the tenant");
    let bearer = format!("Bearer {token}");
    let h = [("Authorization", bearer.as_str())];
    let admin = format!("{url}/adminapi/beta/{tid}");
    // The tenant by id (the token's tid); a domain is not taken.
    assert_eq!(
        call("GET", &format!("{admin}/Mailbox?$top=1"), &h, None).0,
        200
    );
    let (status, body) = call(
        "GET",
        &format!("{url}/adminapi/beta/zivvertest.onmicrosoft.com/Mailbox"),
        &h,
        None,
    );
    assert_eq!(status, 404, "{body}");
    // Identities base64 with isEncoded=true (CloudSync); a UPN resolves, an object id does not.
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let one = |identity: &str| {
        call(
            "GET",
            &format!("{admin}/Mailbox('{}')?isEncoded=true", b64(identity)),
            &h,
            None,
        )
    };
    assert_eq!(one("bruno.broccoli@zivvertest.onmicrosoft.com").0, 200);
    let (status, body) = one("fbf95ad5-8bf5-4d47-9999-a464fdcd3269");
    assert_eq!(status, 404, "an object id is no identity: {body}");
    assert!(body.contains("ManagementObjectNotFoundException"), "{body}");
    // A plain identity with a character a path can mangle is refused.
    let (status, _) = call(
        "GET",
        &format!("{admin}/Mailbox('a+b@zivvertest.onmicrosoft.com')"),
        &h,
        None,
    );
    assert_eq!(status, 400);
    // $select is honoured; addresses carry their prefixes.
    let (_, body) = call(
        "GET",
        &format!("{admin}/Mailbox?$select=PrimarySmtpAddress,EmailAddresses&$top=1"),
        &h,
        None,
    );
    assert!(
        body.contains("SMTP:") && !body.contains("RecipientTypeDetails"),
        "{body}"
    );
    // No such route.
    assert_eq!(call("GET", &format!("{admin}/Recipient"), &h, None).0, 404);
}

#[test]
fn dataverse_refuses_what_it_does_not_have() {
    let org = dynamics::seed::load(&example("exchange-to-riva/dynamics/org.json")).unwrap();
    let (running, sim) = dynamics::start(org, Faults::default(), 0).unwrap();
    let url = running.url();
    let token = token(
        &url,
        "roster-riva-client",
        "sim-crm-secret",
        "https://contoso.crm4.dynamics.com/.default",
    );
    let bearer = format!("Bearer {token}");
    let h = [("Authorization", bearer.as_str())];
    let api = format!("{url}/api/data/v9.2");
    assert_eq!(
        call(
            "GET",
            &format!("{api}/systemusers?$select=systemuserid,accessmode"),
            &h,
            None
        )
        .0,
        200
    );
    let (status, body) = call(
        "GET",
        &format!("{api}/systemusers?$select=nickname"),
        &h,
        None,
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("Could not find a property named 'nickname'"),
        "{body}"
    );
    let (status, body) = call(
        "GET",
        &format!(
            "{api}/systemusers(5f1c0e2a-0000-4000-8000-000000000009)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"
        ),
        &h,
        None,
    );
    assert_eq!(status, 200);
    assert!(body.contains("prvActOnBehalfOfAnotherUser"), "{body}");
    assert_eq!(call("GET", &format!("{api}/accounts"), &h, None).0, 404);
    drop(sim);
}
