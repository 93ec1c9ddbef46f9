//! Host overhead per connector (criterion): compiling a component, loading
//! it from the compiled cache, instantiating it, an empty call (`describe`),
//! and a page of 1,000 accounts across the boundary (the csv connector
//! reading a 1,000-row file from its granted directory).
//!
//! Run with `cargo xtask bench host` (it builds the components first).

use criterion::{Criterion, criterion_group, criterion_main};
use roster::model::PageRequest;
use roster::runtime::{Grants, Redactor, Runtime};
use std::path::PathBuf;

fn plugins_dir() -> PathBuf {
    std::env::var_os("ROSTER_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

const COMPONENTS: &[&str] = &["csv", "exchange-online", "zivver"];

fn host(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let redactor = Redactor::global().clone();
    let cache = tempfile::tempdir().expect("temp dir");
    let cached = Runtime::new(Some(cache.path().to_path_buf())).expect("runtime");
    let uncached = Runtime::new(None).expect("runtime");
    for name in COMPONENTS {
        let path = plugins_dir().join(format!("{name}.wasm"));
        assert!(
            path.is_file(),
            "{} missing: run `cargo xtask bench host`",
            path.display()
        );
        c.bench_function(&format!("compile/{name}"), |b| {
            b.iter(|| uncached.load(&path).expect("compile"))
        });
        cached.load(&path).expect("fill the cache");
        c.bench_function(&format!("load-cached/{name}"), |b| {
            b.iter(|| cached.load(&path).expect("load"))
        });
        let component = cached.load(&path).expect("load");
        c.bench_function(&format!("instantiate/{name}"), |b| {
            b.iter(|| {
                rt.block_on(cached.instantiate(name, &component, &Grants::default(), &redactor))
                    .expect("instantiate")
            })
        });
        let mut instance = rt
            .block_on(cached.instantiate(name, &component, &Grants::default(), &redactor))
            .expect("instantiate");
        c.bench_function(&format!("empty-call/{name}"), |b| {
            b.iter(|| rt.block_on(instance.describe()).expect("describe"))
        });
    }

    // A page of 1,000 accounts: the csv connector over a granted directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from(
        "id,kind,email,aliases,display_name,given_name,family_name,enabled,org_unit,external_key,delegates,groups\n",
    );
    for i in 0..1000 {
        csv.push_str(&format!(
            "a{i},person,user{i}@corp.example,alias{i}@corp.example;u{i}@corp.example,User {i},User,{i},true,\"OU=Sales,DC=corp\",key-{i},boss@corp.example,\n"
        ));
    }
    std::fs::write(dir.path().join("accounts.csv"), csv).expect("write");
    let component = cached.load(&plugins_dir().join("csv.wasm")).expect("load");
    let grants = Grants {
        directory: Some(dir.path().to_path_buf()),
        directory_read_only: true,
        ..Grants::default()
    };
    let mut instance = rt
        .block_on(cached.instantiate("csv", &component, &grants, &redactor))
        .expect("instantiate");
    rt.block_on(instance.configure(vec![])).expect("configure");
    let request = PageRequest {
        cursor: None,
        watermark: None,
        size: 1000,
    };
    c.bench_function("page-of-1000-accounts/csv", |b| {
        b.iter(|| {
            let page = rt.block_on(instance.read_accounts(&request)).expect("read");
            assert_eq!(page.accounts.len(), 1000);
        })
    });
}

criterion_group!(benches, host);
criterion_main!(benches);
