//! What the console keeps in memory between requests, so that paging and
//! searching a large plan or account list does not read it again: plans
//! (a kept plan never changes; a pipeline's current plan until "Plan
//! again"), accounts loaded from both systems ("Load external users"), and
//! each pipeline's last connection test. Bounded; a node that restarts
//! simply reads again.

use crate::model::{Account, Descriptor};
use crate::plan::Plan;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Rows (changes, links, skipped accounts) of all plans kept at a time: a
/// 100,000-change plan is some 100 MB in memory. The least recently used
/// go first; the newest is always kept.
const ROWS: usize = 250_000;

#[derive(Default)]
pub struct Cache {
    plans: Mutex<Vec<(String, Arc<Kept<Plan>>)>>,
    accounts: Mutex<HashMap<String, Arc<Kept<Loaded>>>>,
    tests: Mutex<HashMap<String, Arc<Kept<Tested>>>>,
    targets: Mutex<HashMap<String, Arc<Descriptor>>>,
    loading: Mutex<std::collections::HashSet<String>>,
}

/// A value and when it was made (UTC, as people read it).
pub struct Kept<T> {
    pub at: String,
    pub value: T,
}

impl<T> Kept<T> {
    pub fn now(value: T) -> Arc<Kept<T>> {
        Arc::new(Kept {
            at: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            value,
        })
    }
}

/// Both systems' accounts, as the pipeline's connectors read them.
pub struct Loaded {
    pub source: Vec<Account>,
    pub target: Vec<Account>,
}

/// A connection test of each connector: its checks, or its error.
pub struct Tested {
    pub address: Option<String>,
    pub results: Vec<crate::serve::reads::Tested>,
}

/// The key of the plan kept for approval under run `run`.
pub fn kept_key(run: i64) -> String {
    format!("run:{run}")
}

/// The key of pipeline `name`'s current plan.
pub fn current_key(name: &str) -> String {
    format!("pipeline:{name}")
}

fn rows(p: &Plan) -> usize {
    p.changes.len() + p.links.len() + p.skipped.len() + p.unlinks.len()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cache {
    pub fn plan(&self, key: &str) -> Option<Arc<Kept<Plan>>> {
        let mut plans = lock(&self.plans);
        let i = plans.iter().position(|(k, _)| k == key)?;
        let used = plans.remove(i);
        plans.push(used.clone());
        Some(used.1)
    }

    pub fn keep_plan(&self, key: &str, plan: Plan) -> Arc<Kept<Plan>> {
        let kept = Kept::now(plan);
        let mut plans = lock(&self.plans);
        plans.retain(|(k, _)| k != key);
        plans.push((key.to_string(), kept.clone()));
        while plans.len() > 1 && plans.iter().map(|(_, p)| rows(&p.value)).sum::<usize>() > ROWS {
            plans.remove(0);
        }
        kept
    }

    /// Whether this caller is the one to load `key` (no other is).
    pub fn start_loading(&self, key: &str) -> bool {
        lock(&self.loading).insert(key.to_string())
    }

    pub fn done_loading(&self, key: &str) {
        lock(&self.loading).remove(key);
    }

    pub fn forget_plan(&self, key: &str) {
        lock(&self.plans).retain(|(k, _)| k != key);
    }

    pub fn accounts(&self, pipeline: &str) -> Option<Arc<Kept<Loaded>>> {
        lock(&self.accounts).get(pipeline).cloned()
    }

    pub fn keep_accounts(&self, pipeline: &str, loaded: Loaded) {
        lock(&self.accounts).insert(pipeline.to_string(), Kept::now(loaded));
    }

    pub fn test(&self, pipeline: &str) -> Option<Arc<Kept<Tested>>> {
        lock(&self.tests).get(pipeline).cloned()
    }

    pub fn keep_test(&self, pipeline: &str, tested: Tested) -> Arc<Kept<Tested>> {
        let kept = Kept::now(tested);
        lock(&self.tests).insert(pipeline.to_string(), kept.clone());
        kept
    }

    /// The target connector's descriptor (its declared link options).
    pub fn target(&self, pipeline: &str) -> Option<Arc<Descriptor>> {
        lock(&self.targets).get(pipeline).cloned()
    }

    pub fn keep_target(&self, pipeline: &str, d: Descriptor) -> Arc<Descriptor> {
        let d = Arc::new(d);
        lock(&self.targets).insert(pipeline.to_string(), d.clone());
        d
    }
}
