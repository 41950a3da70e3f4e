//! The permission table: every API route, who may call it, declared once.
//!
//! Each operation's [`Route`] is part of its declaration ([`super::endpoint::Endpoint`]); the
//! router authorizes guarded operations against it ([`super::context::authorize`]) before their
//! handler runs. The permission-matrix test walks [`all_routes`] with every kind of principal,
//! and the OpenAPI test checks the same list against the generated document, so a route cannot
//! be added without being declared, enforced and documented.

/// Who may call a route. Finer rules (an org user sees only their own executions; another
/// organization's ids are "not found") are applied by the handler on top of this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, including anonymous callers.
    Public,
    /// Any authenticated principal: platform admins, org users, function keys, the local
    /// developer identity.
    Authenticated,
    /// Platform administrators, GLOBAL function keys and the local developer identity.
    PlatformAdmin,
}

/// One route of the API.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// Stable identifier, used by the authorization and as the OpenAPI operationId.
    pub id: &'static str,
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// Path template in OpenAPI form, e.g. `/api/organizations/{orgId}`.
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

/// Every route of the API, in the order they are documented.
pub fn all_routes() -> Vec<&'static Route> {
    super::endpoints().iter().map(|e| &e.route).collect()
}

/// The declaration of route `id`. Every id used by a filter is declared (checked by a test).
/// Called on every request, so the lookup table is built once.
pub fn route(id: &str) -> Option<&'static Route> {
    static BY_ID: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static Route>> =
        std::sync::OnceLock::new();
    BY_ID
        .get_or_init(|| all_routes().into_iter().map(|r| (r.id, r)).collect())
        .get(id)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_ids_and_method_paths_are_unique() {
        let routes = all_routes();
        let mut ids = std::collections::HashSet::new();
        let mut endpoints = std::collections::HashSet::new();
        for r in &routes {
            assert!(ids.insert(r.id), "duplicate route id {}", r.id);
            assert!(
                endpoints.insert((r.method, r.path)),
                "duplicate {} {}",
                r.method,
                r.path
            );
            assert!(
                r.path.starts_with("/api/"),
                "{} must live under /api",
                r.path
            );
            assert!(
                matches!(r.method, "GET" | "POST" | "PUT" | "PATCH" | "DELETE"),
                "{} has method {}",
                r.id,
                r.method
            );
        }
    }
}
