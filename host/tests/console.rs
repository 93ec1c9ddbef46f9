//! The web console in a real browser: `roster serve` (the real binary) on
//! its own database of the machine's PostgreSQL, the simulators of Exchange
//! Online, Zivver and SuperOffice over real HTTP, and Debian's Chromium
//! driven by Playwright (`console-tests/console.spec.mjs`, playwright-core,
//! never a downloaded browser). The script does the seed workflows as an
//! admin would and writes a screenshot of each page; this test then checks
//! what reached the simulators and the state. Skipped, saying so, where
//! Chromium or the npm packages are missing (`cargo xtask test` installs
//! the packages when Chromium is there).

mod common;

use common::service::*;
use common::{HEADER, Work, example};
use roster_sim::{Faults, m365, superoffice, zivver};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console-tests")
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} not found (apt-get install chromium)"));
    }
    if !tests_dir().join("node_modules/playwright-core").exists() {
        return Some("console-tests/node_modules missing (npm ci in console-tests, as cargo xtask test does)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    None
}

const Z: &str = "@zivvertest.onmicrosoft.com";

/// `rows` CSV accounts into an empty CSV target, as pipeline `name`.
fn csv_pipeline(w: &Work, name: &str, rows: usize, linked: bool) {
    let body: String = (0..rows)
        .map(|i| format!("u{i},person,{name}{i}@corp.example,,User {i},,,true,,k{i},,\n"))
        .collect();
    w.write(
        &format!("{name}/src/accounts.csv"),
        &format!("{HEADER}{body}"),
    );
    let target = match linked {
        true => format!("{HEADER}{body}"),
        false => HEADER.to_string(),
    };
    w.write(&format!("{name}/dst/accounts.csv"), &target);
    let pipeline = common::into_csv(
        name,
        "src",
        "[connectors.src]\nplugin = \"csv\"\ndirectory = \"src\"\n",
    );
    w.write(&format!("{name}/pipeline.toml"), &pipeline);
}

#[test]
fn the_seed_workflows_in_a_real_browser() {
    if let Some(why) = missing() {
        assert!(
            std::env::var_os("ROSTER_REQUIRE_BROWSER").is_none(),
            "ROSTER_REQUIRE_BROWSER is set but the browser tests cannot run: {why}"
        );
        eprintln!("SKIPPED the console's browser tests: {why}");
        return;
    }
    let tenant = m365::seed::load(&example("exchange-to-zivver/m365/tenant.json")).unwrap();
    let org = zivver::seed::load(&example("exchange-to-zivver/zivver/org.json")).unwrap();
    let crm = superoffice::seed::load(&example("exchange-to-superoffice/superoffice/tenant.json"))
        .unwrap();
    let (m, _) = m365::start(tenant, Faults::default(), 0).unwrap();
    let (z, _) = zivver::start(org, Faults::default(), 0).unwrap();
    let (s, crm) = superoffice::start(crm, Faults::default(), 0).unwrap();
    let w = Work::new();
    let read = |f: &str| std::fs::read_to_string(example(f)).unwrap();
    w.write(
        "mail.toml",
        &read("exchange-to-zivver/exchange-to-zivver.toml")
            .replace("http://127.0.0.1:18401", &m.url())
            .replace("http://127.0.0.1:18402", &z.url())
            .replace("name = \"exchange-to-zivver\"", "name = \"mail\""),
    );
    w.write(
        "crm.toml",
        &read("exchange-to-superoffice/exchange-to-superoffice.toml")
            .replace("http://127.0.0.1:18401", &m.url())
            .replace("http://127.0.0.1:18404", &s.url())
            .replace("name = \"exchange-to-superoffice\"", "name = \"crm\""),
    );
    csv_pipeline(&w, "big", 100_000, false);
    csv_pipeline(&w, "many", 10_000, true);
    let db = Database::new("console");
    let config = "[[pipelines]]\nfile = \"mail.toml\"\nevery = \"24h\"\napproval = \"manual\"\n\n\
                  [[pipelines]]\nfile = \"crm.toml\"\nevery = \"24h\"\napproval = \"manual\"\n\n\
                  [[pipelines]]\nfile = \"big/pipeline.toml\"\nevery = \"24h\"\napproval = \"manual\"\n\n\
                  [[pipelines]]\nfile = \"many/pipeline.toml\"\nevery = \"24h\"\napproval = \"auto\"\n";
    let secrets = [
        ("EXCHANGE_CLIENT_SECRET", "sim-client-secret"),
        ("ZIVVER_API_KEY", "zivver-demo-api-key"),
        ("SUPEROFFICE_TOKEN", "superoffice-demo-token"),
        ("SUPEROFFICE_APP_TOKEN", "superoffice-demo-app-token"),
    ];
    let node = Node::start(&w, &db, "console", config, &secrets);
    let admin = token(&w, &db, "serve-console.toml", "admin");
    let vera = "vera-reads-plans-1";
    user(&w, &db, "serve-console.toml", "vera", "viewer", vera);

    // A starting node runs each pipeline's latest tick: the large plan and
    // the many links are made before the browser comes; mail and crm wait
    // for approval.
    let runs = |p: &str| {
        json(
            &get(
                &node.url(&format!("/api/v1/runs?pipeline={p}")),
                Some(&admin),
            )
            .1,
        )
    };
    wait_until(300, "the 100,000-change plan waits for approval", || {
        runs("big")
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "awaiting-approval")
    });
    wait_until(300, "the 10,000 links are made", || {
        runs("many")
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "applied")
    });
    let big_run = runs("big")
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "awaiting-approval")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    // A second node on the same database: it did not make the large plan,
    // so it pages it from its rows in the database.
    wait_until(120, "the large plan's rows are in the database", || {
        db.query(&format!(
            "SELECT head IS NOT NULL FROM roster_serve.approvals WHERE run_id = {big_run}"
        )) == "t"
    });
    let other = Node::start(&w, &db, "reviewer", config, &secrets);

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(tests_dir().join("console.spec.mjs"))
        .current_dir(tests_dir())
        .env("ROSTER_URL", node.url(""))
        .env("OTHER_URL", other.url(""))
        .env("ADMIN_TOKEN", &admin)
        .env("VIEWER_PASSWORD", vera)
        .env("BIG_RUN", big_run.to_string())
        .env("CRAZE", format!("craze.dash{Z}"))
        .env("SHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("node");
    let said = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    println!("{said}");
    assert!(
        out.status.success(),
        "the browser scenarios failed:\n{said}\n{log}\nnode log:\n{}",
        w.read("console.log")
    );
    for page in [
        "login",
        "overview",
        "plan-review",
        "links",
        "auto-link",
        "account",
        "runs",
        "run",
        "connectors",
        "plan-large",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }

    // What the browser did reached the systems: Zivver holds the approved
    // plan's accounts; SuperOffice's user 953 is Craze's, linked by hand
    // with Diary off and rank 2.
    let mail = runs("mail");
    assert!(
        mail.as_array()
            .unwrap()
            .iter()
            .any(|r| r["trigger"] == "approval" && r["status"] == "applied"),
        "{mail:#}"
    );
    let state = crm.crm.read().unwrap().dump();
    let craze = state["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PersonId"] == 503)
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        craze.to_string().contains(&format!("craze.dash{Z}")),
        "{craze:#}"
    );
    let links = json(&get(&node.url("/api/v1/pipelines/crm/links"), Some(&admin)).1);
    let link = links["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["target_id"] == "953")
        .unwrap_or_else(|| panic!("no link to 953: {links:#}"));
    assert_eq!(link["manual"], true, "{link:#}");
    assert_eq!(link["options"]["diary"], "false", "{link:#}");
    assert_eq!(link["options"]["rank"], "2", "{link:#}");
    // Every write was audit-logged under the token's name.
    let audit = get(&node.url("/api/v1/audit"), Some(&admin)).1;
    for action in ["console.login", "approve", "links.stage", "run"] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action} not in the audit log: {audit}"
        );
    }
    // No secret in any page the browser saw.
    let pages = std::fs::read_to_string(shots.join("pages.txt")).unwrap_or_default();
    for (_, secret) in secrets {
        assert!(!pages.contains(secret), "{secret} in a page");
    }
    assert!(!pages.contains(&admin), "a token in a page");
}

/// `roster serve user create` with `password` on standard input.
fn user(
    w: &Work,
    db: &Database,
    config: &str,
    name: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = w
        .roster()
        .args([
            "serve",
            "user",
            "create",
            config,
            "--role",
            role,
            "--name",
            name,
            "--password-stdin",
        ])
        .env("ROSTER_DATABASE_URL", db.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

/// The `Set-Cookie` value of `name` in an answer.
fn set_cookie(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

#[test]
fn sessions_headers_and_page_numbers_over_plain_http() {
    let db = Database::new("console_revoke");
    let w = Work::new();
    csv_pipeline(&w, "small", 3, false);
    let config =
        "[[pipelines]]\nfile = \"small/pipeline.toml\"\nevery = \"24h\"\napproval = \"manual\"\n";
    let node = Node::start(&w, &db, "revoke", config, &[]);
    let out = on_database(
        &w,
        &db,
        &[
            "serve",
            "token",
            "create",
            "serve-revoke.toml",
            "--role",
            "operator",
            "--name",
            "leaver",
        ],
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();

    // Sign in as a browser would: the form's CSRF token and its cookie.
    let form = agent.get(&node.url("/console/login")).call().unwrap();
    let login_cookie = set_cookie(&form, "roster_login").expect("a sign-in cookie");
    assert!(login_cookie.len() > 40);
    let csrf = login_cookie.split_once('=').unwrap().1.to_string();
    let without = agent
        .post(&node.url("/console/login"))
        .send_form([("csrf", csrf.as_str()), ("token", token.as_str())])
        .unwrap();
    assert_eq!(
        without.status(),
        403,
        "a sign-in without its cookie is refused"
    );
    let signed = agent
        .post(&node.url("/console/login"))
        .header("Cookie", &login_cookie)
        .send_form([("csrf", csrf.as_str()), ("token", token.as_str())])
        .unwrap();
    assert_eq!(signed.status(), 303);
    let raw = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("roster_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(raw.contains(attribute), "{attribute} missing: {raw}");
    }
    let session = raw.split(';').next().unwrap().to_string();
    let overview = |cookie: &str| {
        let r = agent
            .get(&node.url("/console"))
            .header("Cookie", cookie)
            .call()
            .unwrap();
        let csp = r
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), csp)
    };
    let (status, csp) = overview(&session);
    assert_eq!(status, 200);
    assert!(csp.unwrap().contains("default-src 'none'"));
    assert_eq!(
        overview("roster_session=forged").0,
        303,
        "an unknown session signs in again"
    );

    // Absurd page numbers are pages past the end, not a crash.
    wait_until(60, "the small plan waits for approval", || {
        json(&get(&node.url("/api/v1/approvals?pending=true"), Some(&token)).1)
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let run = json(&get(&node.url("/api/v1/approvals?pending=true"), Some(&token)).1)[0]["run_id"]
        .as_i64()
        .unwrap();
    let huge = u64::MAX;
    for path in [
        format!("/console/runs/{run}/plan?page={huge}"),
        format!("/console/runs/{run}/plan?kind=skipped&page={huge}"),
        format!("/console/runs?page={huge}"),
        format!("/console/pipelines/small/links?page={huge}"),
    ] {
        let r = agent
            .get(&node.url(&path))
            .header("Cookie", &session)
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = agent
        .get(&node.url(&format!("/console/runs/{run}/plan?page=1{huge}")))
        .header("Cookie", &session)
        .call()
        .unwrap();
    assert_eq!(r.status(), 400, "a page number too large to be one");

    // A user signs in with name and password; a wrong one is refused, the
    // same answer as an unknown name; deleting the user ends the session.
    let short = user(&w, &db, "serve-revoke.toml", "uma", "operator", "too-short");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let made = user(
        &w,
        &db,
        "serve-revoke.toml",
        "uma",
        "operator",
        "uma-has-a-long-one",
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let sign_in = |name: &str, password: &str| {
        agent
            .post(&node.url("/console/login"))
            .header("Cookie", &login_cookie)
            .send_form([
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
            ])
            .unwrap()
    };
    assert_eq!(sign_in("uma", "uma-has-a-long-onE").status(), 401);
    assert_eq!(sign_in("nobody", "uma-has-a-long-one").status(), 401);
    let uma = sign_in("uma", "uma-has-a-long-one");
    assert_eq!(uma.status(), 303);
    let uma = set_cookie(&uma, "roster_session").expect("a session for uma");
    assert_eq!(overview(&uma).0, 200);
    let gone = on_database(
        &w,
        &db,
        &[
            "serve",
            "user",
            "delete",
            "serve-revoke.toml",
            "--name",
            "uma",
        ],
    );
    assert!(
        gone.status.success(),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    assert_eq!(overview(&uma).0, 303, "the session ended with its user");

    let delete = || {
        on_database(
            &w,
            &db,
            &[
                "serve",
                "token",
                "delete",
                "serve-revoke.toml",
                "--name",
                "leaver",
            ],
        )
    };
    let deleted = delete();
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert_eq!(
        overview(&session).0,
        303,
        "the session ended with its token"
    );
    assert_eq!(get(&node.url("/api/v1/pipelines"), Some(&token)).0, 401);
    let again = delete();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no token named `leaver`"));
}
