//! One connector's work on a 999-user Graph page, as wasm in the host and
//! as the same code built natively (the SDK's native harness): the
//! `exchange-online` connector's full read (delta link, mailbox list, one
//! users page; delegates off) of a generated tenant of 997 users, served by
//! the Microsoft 365 simulator on loopback. Both sides make the same
//! requests; the difference is wasm and the host's HTTP path against native
//! code and a plain HTTP client.
//!
//! Run with `cargo xtask bench host` (it builds the components first).

use criterion::{Criterion, criterion_group, criterion_main};
use roster::model::PageRequest;
use roster::runtime::{Grants, Redactor, Runtime};
use roster_exchange_online::ExchangeOnline;
use roster_sim::Faults;
use roster_sim::m365::{self, generate};
use std::path::PathBuf;

fn plugins_dir() -> PathBuf {
    std::env::var_os("ROSTER_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

fn parse(c: &mut Criterion) {
    let spec = generate::Spec {
        domain: "bench.example".into(),
        ..generate::Spec::new(950, 3)
    };
    let (running, _sim) = m365::start(generate::tenant(&spec), Faults::default(), 0).expect("sim");
    let url = running.url();
    let config = [
        ("tenant_id", "bench.example"),
        ("client_id", "roster-sim-client"),
        ("client_secret", "sim-client-secret"),
        ("login_url", url.as_str()),
        ("graph_url", url.as_str()),
        ("admin_url", url.as_str()),
        ("delegates", "false"),
    ];

    let mut native: ExchangeOnline = roster_sdk::native::configure(&config).expect("configure");
    let n = roster_sdk::native::read_all_accounts(&mut native, 1000)
        .expect("read")
        .len();
    assert!(n > 990, "{n} accounts");
    c.bench_function("exchange-online-999-users/native", |b| {
        b.iter(|| roster_sdk::native::read_all_accounts(&mut native, 1000).expect("read"))
    });

    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).expect("runtime");
    let component = runtime
        .load(&plugins_dir().join("exchange-online.wasm"))
        .expect("load");
    let mut grants = Grants::default();
    grants.http.allowed.push(url.parse().expect("host pattern"));
    let redactor = Redactor::global().clone();
    let mut instance = rt
        .block_on(runtime.instantiate("exchange", &component, &grants, &redactor))
        .expect("instantiate");
    let pairs = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rt.block_on(instance.configure(pairs)).expect("configure");
    let request = PageRequest {
        cursor: None,
        watermark: None,
        size: 1000,
    };
    c.bench_function("exchange-online-999-users/wasm", |b| {
        b.iter(|| {
            let page = rt.block_on(instance.read_accounts(&request)).expect("read");
            assert!(page.next_cursor.is_none() && page.accounts.len() > 990);
        })
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
