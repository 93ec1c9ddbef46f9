//! The Zivver resources the last read saw, kept by id as the base of full
//! PUTs (Zivver takes no PATCH of users): as compact JSON text, about a
//! third of a parsed tree's size in the connector's memory, and parsed again
//! only for the few that are written. 100,000 users fit the default memory
//! grant this way.

use serde_json::Value;
use std::collections::HashMap;

#[derive(Default)]
pub struct Kept(HashMap<String, Box<str>>);

impl Kept {
    pub fn insert(&mut self, id: String, resource: &Value) {
        self.0.insert(id, resource.to_string().into_boxed_str());
    }

    /// The resource as it was read or last written.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.0
            .get(id)
            .and_then(|text| serde_json::from_str(text).ok())
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.0.contains_key(id)
    }

    pub fn remove(&mut self, id: &str) {
        self.0.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kept_resource_comes_back_as_it_went_in() {
        let mut kept = Kept::default();
        let user = json!({"id": "u1", "userName": "a@x", "emails": [{"value": "a@x", "primary": true}],
            "urn:ietf:params:scim:schemas:zivver:0.1:User": {"SsoAccountKey": "k", "aliases": ["b@x"]}});
        kept.insert("u1".into(), &user);
        assert_eq!(kept.get("u1"), Some(user));
        assert!(kept.contains_key("u1"));
        kept.remove("u1");
        assert_eq!(kept.get("u1"), None);
    }
}
