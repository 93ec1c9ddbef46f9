//! Bad pipeline files get `file:line:column` errors; `plugins inspect`
//! describes a component without running its logic, uses the compiled cache,
//! and refuses a component built for a contract this host does not serve.

mod common;

use common::{HEADER, Work, plugins_dir};

const GOOD: &str = r#"name = "inputs"
source = "src"
target = "dst"

[connectors.src]
plugin = "csv"
directory = "src"

[connectors.dst]
plugin = "csv"
directory = "dst"

[[stages]]
type = "link"

[[stages]]
type = "sync"
"#;

fn check(text: &str) -> (i32, String) {
    let w = Work::new();
    w.write("src/accounts.csv", HEADER);
    w.write("dst/accounts.csv", HEADER);
    w.write("p.toml", text);
    let r = w.run(&["check", "p.toml"]);
    (r.code(), r.stderr())
}

#[test]
fn a_good_pipeline_checks() {
    let w = Work::new();
    w.write("src/accounts.csv", HEADER);
    w.write("dst/accounts.csv", HEADER);
    w.write("p.toml", GOOD);
    let doc = w.run(&["check", "p.toml", "--json"]).ok().json();
    assert_eq!(doc["stages"], serde_json::json!(["link", "sync"]));
    assert_eq!(
        doc["connectors"][0]["allowed_hosts"],
        serde_json::json!([]),
        "nothing granted by default"
    );
}

#[test]
fn errors_name_file_line_and_column() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"type = "sync""#,
            "type = \"sync\"\nunlinked = \"disable\"",
            "p.toml:16:1: in sync stage: `unlinked` acts only on the claimed domains",
        ),
        (
            r#"type = "sync""#,
            "type = \"sync\"\nunlinked = \"always\"",
            "p.toml:18:12: in sync stage: unknown variant `always`, expected one of `keep`, `report`, `disable`",
        ),
        (
            r#"type = "sync""#,
            "type = \"sync\"\nbogus = 1",
            "p.toml:18:1: in sync stage: unknown field `bogus`",
        ),
        (
            r#"type = "sync""#,
            "type = \"sync\"\ncreate_users = \"yes\"",
            "p.toml:18:16: in sync stage: invalid type: string \"yes\", expected a boolean",
        ),
        (
            r#"type = "link""#,
            "type = \"lnk\"",
            "p.toml:14:8: unknown stage type `lnk`, expected filter, link, merge or sync; did you mean `link`?",
        ),
        (
            "source = \"src\"",
            "source = \"nope\"",
            "p.toml:2:10: source `nope` is not a connector of this pipeline",
        ),
        (
            "directory = \"dst\"",
            "directory = \"dst\"\nallowed_hosts = [\"ftp://x\"]",
            "p.toml:12:18: connectors.dst.allowed_hosts: `ftp://x`: scheme `ftp` is not http or https",
        ),
        (
            "directory = \"dst\"",
            "directory = \"dst\"\nconfig = { acounts = \"a.csv\" }",
            "p.toml:12:22: connectors.dst.config.acounts: plugin `csv` has no such field (did you mean `accounts`?",
        ),
        (
            "plugin = \"csv\"\ndirectory = \"src\"",
            "plugin = \"nosuch\"\ndirectory = \"src\"",
            "p.toml:6:10: connectors.src.plugin: no plugin `nosuch` found",
        ),
        (
            "plugin = \"csv\"\ndirectory = \"src\"",
            "plugin = \"cvs\"\ndirectory = \"src\"",
            "; did you mean `csv`?",
        ),
        (
            "name = \"inputs\"",
            "name = \"inputs\"\nnmae = 1",
            "p.toml:2:1: unknown field `nmae`",
        ),
        (
            "[[stages]]\ntype = \"link\"",
            "[[stages]]\ntype = \"sync\"\n\n[[stages]]\ntype = \"link\"",
            "the sync stage must come after the link stage",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD.contains(from), "bad case: {from}");
        let (code, err) = check(&GOOD.replacen(from, to, 1));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_toml_syntax_error_is_located() {
    let (code, err) = check("name = \"x\"\nsource = \n");
    assert_eq!(code, 2);
    assert!(err.starts_with("error: p.toml:2:"), "{err}");
}

#[test]
fn inspect_describes_and_caches() {
    let w = Work::new();
    let csv = plugins_dir().join("csv.wasm");
    let first = w
        .run(&["plugins", "inspect", csv.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(first["descriptor"]["name"], "csv");
    assert_eq!(first["contract"], "0.1.0");
    assert_eq!(first["descriptor"]["source"], true);
    assert_eq!(first["cache"], "miss");
    let fields: Vec<&str> = first["descriptor"]["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["accounts", "groups", "seats"]);
    let second = w
        .run(&["plugins", "inspect", csv.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(
        second["cache"], "hit",
        "the second run maps the compiled component"
    );
    let nocache = w
        .run(&[
            "plugins",
            "inspect",
            csv.to_str().unwrap(),
            "--json",
            "--no-cache",
        ])
        .ok()
        .json();
    assert_eq!(nocache["cache"], "off");

    // describe runs with no configuration: the misbehaving connector's logic never runs.
    let bad = w
        .run(&[
            "plugins",
            "inspect",
            plugins_dir().join("misbehave.wasm").to_str().unwrap(),
        ])
        .ok();
    assert!(
        bad.stdout().contains("token") && bad.stdout().contains("secret"),
        "{}",
        bad.stdout()
    );
}

#[test]
fn a_component_for_another_contract_is_refused_before_compiling() {
    let w = Work::new();
    let bytes = std::fs::read(plugins_dir().join("csv.wasm")).unwrap();
    let (from, to) = (b"@0.1.0".as_slice(), b"@0.9.0".as_slice());
    let mut patched = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            patched.extend_from_slice(to);
            i += from.len();
        } else {
            patched.push(bytes[i]);
            i += 1;
        }
    }
    assert_ne!(patched, bytes);
    w.write("future.wasm", "");
    std::fs::write(w.path("future.wasm"), &patched).unwrap();
    let r = w.run(&["plugins", "inspect", "future.wasm"]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("built for contract roster:connector@0.9.0, but this roster serves roster:connector@0.1.0"), "{}", r.stderr());
    assert!(!w.path(".cache").exists(), "nothing was compiled");

    w.write("notwasm.wasm", "hello");
    let r = w.run(&["plugins", "inspect", "notwasm.wasm"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("not a WebAssembly file"),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_failing_command_asked_for_json_prints_one_json_error_document() {
    let w = Work::new();
    w.write("p.toml", "name = \"x\"\nsource = \"nope\"\n");
    for args in [
        &["plan", "p.toml", "--json"][..],
        &["check", "p.toml", "--json"][..],
        &["status", "missing.toml", "--json"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code(), 2, "{args:?}");
        let doc: serde_json::Value = serde_json::from_str(&r.stdout())
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {}", r.stdout()));
        assert_eq!(doc["error"]["kind"], "input", "{doc:#}");
        assert_eq!(doc["error"]["exit_code"], 2);
        assert!(!doc["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[test]
fn piped_output_has_no_escape_codes_and_no_wide_tables() {
    let w = Work::new();
    let rows: String = (0..5)
        .map(|i| format!("u{i},person,a.rather.long.address.number{i}@a-long-domain.example,,A Long Display Name {i},,,true,OU=A Very Long Organisational Unit/OU=Another Long Unit/OU=Yet Another Unit/DC=corp,k{i},,\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{rows}"));
    w.write("dst/accounts.csv", HEADER);
    w.write("p.toml", GOOD);
    for (args, columns) in [
        (&["plan", "p.toml", "-v"][..], None),
        (&["read", "p.toml"][..], None),
        (&["read", "p.toml"][..], Some(70)),
    ] {
        let mut c = w.roster();
        c.args(args).env_remove("COLUMNS");
        if let Some(n) = columns {
            c.env("COLUMNS", n.to_string());
        }
        let r = common::Run::from(c.output().unwrap());
        let limit = columns.unwrap_or(100);
        assert_eq!(r.code(), 0, "{args:?}: {}", r.stderr());
        for text in [r.stdout(), r.stderr()] {
            assert!(!text.contains('\u{1b}'), "{args:?}: escape codes in {text}");
            let table = |l: &&str| l.starts_with(['│', '┌', '└', '╞', '├', '╭']);
            let widest = text
                .lines()
                .filter(table)
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0);
            assert!(
                widest <= limit,
                "{args:?}: a table line of {widest} characters:\n{text}"
            );
        }
    }
}
