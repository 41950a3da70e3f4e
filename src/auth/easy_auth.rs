//! App Service / Static Web Apps authentication ("Easy Auth"): turns the headers the platform
//! front end injects into one [`EasyAuthIdentity`].
//!
//! Pure functions over header values; no HTTP types, no I/O. Invariants:
//! - headers are parsed only when the caller says Easy Auth is enabled (`WEBSITE_AUTH_ENABLED`);
//!   otherwise anyone could have sent them, so they are reported as ignored, never read;
//! - both principal shapes are accepted: App Service (`auth_typ`, `claims[{typ,val}]`,
//!   `name_typ`, `role_typ`, with short or long claim-type URIs and repeated claims) and Static
//!   Web Apps (`identityProvider`, `userId`, `userDetails`, `userRoles`);
//! - any malformed input is an [`EasyAuthError`], never a panic; sizes are bounded.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

pub const PRINCIPAL_HEADER: &str = "X-MS-CLIENT-PRINCIPAL";
pub const PRINCIPAL_ID_HEADER: &str = "X-MS-CLIENT-PRINCIPAL-ID";
pub const PRINCIPAL_NAME_HEADER: &str = "X-MS-CLIENT-PRINCIPAL-NAME";
pub const PRINCIPAL_IDP_HEADER: &str = "X-MS-CLIENT-PRINCIPAL-IDP";

/// Largest `X-MS-CLIENT-PRINCIPAL` value accepted (group-heavy tokens make big principals, but
/// front ends cap headers well below this).
pub const MAX_PRINCIPAL_HEADER_LEN: usize = 64 * 1024;
/// Longest single identity field kept (ids, emails, names, roles).
pub const MAX_FIELD_LEN: usize = 512;
/// Most roles kept from one principal.
pub const MAX_ROLES: usize = 256;

const OBJECT_ID_CLAIMS: &[&str] = &[
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
];
/// In priority order: the first one holding an email-like value wins.
const EMAIL_CLAIMS: &[&str] = &[
    "preferred_username",
    "email",
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];
const DISPLAY_NAME_CLAIMS: &[&str] = &[
    "name",
    "http://schemas.microsoft.com/identity/claims/displayname",
];
const ROLE_CLAIMS: &[&str] = &[
    "roles",
    "role",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
];

/// The Easy Auth header values of one request (the HTTP layer looks them up; header names are
/// case-insensitive there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EasyAuthHeaders<'a> {
    pub principal: Option<&'a str>,
    pub principal_id: Option<&'a str>,
    pub principal_name: Option<&'a str>,
    pub principal_idp: Option<&'a str>,
}

impl<'a> EasyAuthHeaders<'a> {
    /// Builds the set from a header lookup function (called with the `*_HEADER` names).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            principal: lookup(PRINCIPAL_HEADER),
            principal_id: lookup(PRINCIPAL_ID_HEADER),
            principal_name: lookup(PRINCIPAL_NAME_HEADER),
            principal_idp: lookup(PRINCIPAL_IDP_HEADER),
        }
    }

    /// Names of the headers that are present (for auditing ignored headers).
    pub fn present(&self) -> Vec<&'static str> {
        [
            (PRINCIPAL_HEADER, self.principal),
            (PRINCIPAL_ID_HEADER, self.principal_id),
            (PRINCIPAL_NAME_HEADER, self.principal_name),
            (PRINCIPAL_IDP_HEADER, self.principal_idp),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(name, _)| name)
        .collect()
    }
}

/// Who Easy Auth says the caller is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EasyAuthIdentity {
    /// `aad`, `github`, ... (`auth_typ`, `identityProvider` or `X-MS-CLIENT-PRINCIPAL-IDP`).
    pub provider: Option<String>,
    /// Entra object id (`oid` claim), SWA `userId`, or `X-MS-CLIENT-PRINCIPAL-ID`.
    pub object_id: Option<String>,
    /// As sent (not case-folded); always contains `@` when present.
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Deduplicated, in first-seen order.
    pub roles: Vec<String>,
}

/// What the Easy Auth headers of a request amount to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EasyAuthOutcome {
    /// No Easy Auth header was sent.
    Absent,
    /// Headers were sent but Easy Auth is not enabled, so they were not read: audit it as
    /// `easy_auth_ignored` (a caller may be trying to forge an identity).
    Ignored {
        headers: Vec<&'static str>,
    },
    Authenticated(EasyAuthIdentity),
}

/// Malformed Easy Auth input. Messages name the field and never echo header contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EasyAuthError {
    #[error("{PRINCIPAL_HEADER} is too large ({len} bytes; at most {MAX_PRINCIPAL_HEADER_LEN})")]
    TooLarge { len: usize },
    #[error("{PRINCIPAL_HEADER} is not valid base64")]
    Base64,
    #[error("{PRINCIPAL_HEADER} is not UTF-8 JSON: {reason}")]
    Json { reason: String },
    #[error(
        "{PRINCIPAL_HEADER} is neither an App Service nor a Static Web Apps principal: {reason}"
    )]
    Shape { reason: String },
    #[error("invalid {field} in the Easy Auth principal: {reason}")]
    Field { field: String, reason: String },
    #[error("the Easy Auth principal has neither an object id nor an email")]
    MissingIdentity,
}

/// Resolves the Easy Auth headers of a request. `trusted` must be true only when Easy Auth is
/// enabled on the app (`WEBSITE_AUTH_ENABLED=true`): then the front end strips client-supplied
/// copies of these headers.
pub fn easy_auth_identity(
    headers: &EasyAuthHeaders<'_>,
    trusted: bool,
) -> Result<EasyAuthOutcome, EasyAuthError> {
    let present = headers.present();
    if present.is_empty() {
        return Ok(EasyAuthOutcome::Absent);
    }
    if !trusted {
        return Ok(EasyAuthOutcome::Ignored { headers: present });
    }
    let mut identity = match headers.principal.map(str::trim).filter(|p| !p.is_empty()) {
        Some(encoded) => parse_principal(encoded)?,
        None => EasyAuthIdentity::default(),
    };
    // Companion headers fill what the principal lacks.
    let companion = |field: &str, value: Option<&str>| clean(field, value);
    if identity.object_id.is_none() {
        identity.object_id = companion(PRINCIPAL_ID_HEADER, headers.principal_id)?;
    }
    if identity.provider.is_none() {
        identity.provider = companion(PRINCIPAL_IDP_HEADER, headers.principal_idp)?;
    }
    let name = companion(PRINCIPAL_NAME_HEADER, headers.principal_name)?;
    if identity.email.is_none() {
        identity.email = name.clone().filter(|n| looks_like_email(n));
    }
    if identity.display_name.is_none() {
        identity.display_name = name.or_else(|| identity.email.clone());
    }
    if identity.object_id.is_none() && identity.email.is_none() {
        return Err(EasyAuthError::MissingIdentity);
    }
    Ok(EasyAuthOutcome::Authenticated(identity))
}

/// Decodes and reads one `X-MS-CLIENT-PRINCIPAL` value (either shape).
pub fn parse_principal(encoded: &str) -> Result<EasyAuthIdentity, EasyAuthError> {
    if encoded.len() > MAX_PRINCIPAL_HEADER_LEN {
        return Err(EasyAuthError::TooLarge { len: encoded.len() });
    }
    // The platform pads; tolerate missing padding rather than refusing a real login.
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = STANDARD_ANY_PADDING
        .decode(encoded)
        .map_err(|_| EasyAuthError::Base64)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| EasyAuthError::Json {
        reason: "not UTF-8".into(),
    })?;
    let json: Value = serde_json::from_str(text).map_err(|e| EasyAuthError::Json {
        reason: format!(
            "line {} column {}: {:?}",
            e.line(),
            e.column(),
            e.classify()
        ),
    })?;
    let Value::Object(root) = json else {
        return Err(EasyAuthError::Shape {
            reason: "not a JSON object".into(),
        });
    };
    if root.contains_key("claims") || root.contains_key("auth_typ") {
        app_service(&root)
    } else if ["identityProvider", "userId", "userDetails", "userRoles"]
        .iter()
        .any(|k| root.contains_key(*k))
    {
        static_web_apps(&root)
    } else {
        Err(EasyAuthError::Shape {
            reason: "expected 'claims'/'auth_typ' or 'userId'/'userDetails'/'userRoles'".into(),
        })
    }
}

fn app_service(root: &Map<String, Value>) -> Result<EasyAuthIdentity, EasyAuthError> {
    let provider = optional_string(root, "auth_typ")?;
    let name_typ = optional_string(root, "name_typ")?;
    let role_typ = optional_string(root, "role_typ")?;
    let claims: Vec<(String, String)> = match root.get("claims") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| claim(i, item))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(field_error("claims", "must be an array"));
        }
    };
    let find = |types: &[&str]| -> Option<&str> {
        types.iter().find_map(|t| {
            claims
                .iter()
                .find(|(typ, val)| typ.eq_ignore_ascii_case(t) && !val.is_empty())
                .map(|(_, val)| val.as_str())
        })
    };
    let object_id = find(OBJECT_ID_CLAIMS).map(str::to_owned);
    let email = EMAIL_CLAIMS.iter().find_map(|t| {
        claims
            .iter()
            .find(|(typ, val)| typ.eq_ignore_ascii_case(t) && looks_like_email(val))
            .map(|(_, val)| val.clone())
    });
    let display_name = find(DISPLAY_NAME_CLAIMS)
        .or_else(|| name_typ.as_deref().and_then(|t| find(&[t])))
        .map(str::to_owned);
    let is_role = |typ: &str| {
        role_typ
            .as_deref()
            .is_some_and(|r| typ.eq_ignore_ascii_case(r))
            || ROLE_CLAIMS.iter().any(|r| typ.eq_ignore_ascii_case(r))
    };
    let roles = dedup_roles(
        claims
            .iter()
            .filter(|(typ, val)| is_role(typ) && !val.is_empty())
            .map(|(_, val)| val.clone()),
    )?;
    Ok(EasyAuthIdentity {
        provider,
        object_id,
        email,
        display_name,
        roles,
    })
}

fn static_web_apps(root: &Map<String, Value>) -> Result<EasyAuthIdentity, EasyAuthError> {
    let provider = optional_string(root, "identityProvider")?;
    let object_id = optional_string(root, "userId")?;
    let details = optional_string(root, "userDetails")?;
    let roles = match root.get("userRoles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => dedup_roles(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    _ => Err(field_error(&format!("userRoles[{i}]"), "must be a string")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|r| !r.is_empty()),
        )?,
        Some(_) => return Err(field_error("userRoles", "must be an array")),
    };
    let email = details.clone().filter(|d| looks_like_email(d));
    // v1 showed the email's local part as the name; for non-email details, the details.
    let display_name = match &email {
        Some(e) => e.split('@').next().map(str::to_owned),
        None => details,
    };
    Ok(EasyAuthIdentity {
        provider,
        object_id,
        email,
        display_name,
        roles,
    })
}

fn claim(index: usize, item: &Value) -> Result<(String, String), EasyAuthError> {
    let Value::Object(obj) = item else {
        return Err(field_error(
            &format!("claims[{index}]"),
            "must be an object",
        ));
    };
    let get = |key: &str| -> Result<String, EasyAuthError> {
        match obj.get(key) {
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.chars().count() > MAX_FIELD_LEN {
                    Err(field_error(
                        &format!("claims[{index}].{key}"),
                        &format!("longer than {MAX_FIELD_LEN} characters"),
                    ))
                } else {
                    Ok(s.to_owned())
                }
            }
            _ => Err(field_error(
                &format!("claims[{index}].{key}"),
                "must be a string",
            )),
        }
    };
    Ok((get("typ")?, get("val")?))
}

fn optional_string(root: &Map<String, Value>, key: &str) -> Result<Option<String>, EasyAuthError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => clean(key, Some(s)),
        Some(_) => Err(field_error(key, "must be a string")),
    }
}

/// Trims; blank is absent; over-long is an error naming the field.
fn clean(field: &str, value: Option<&str>) -> Result<Option<String>, EasyAuthError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > MAX_FIELD_LEN => Err(field_error(
            field,
            &format!("longer than {MAX_FIELD_LEN} characters"),
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn dedup_roles(roles: impl Iterator<Item = String>) -> Result<Vec<String>, EasyAuthError> {
    let mut out: Vec<String> = Vec::new();
    for role in roles {
        if role.chars().count() > MAX_FIELD_LEN {
            return Err(field_error(
                "roles",
                &format!("a role is longer than {MAX_FIELD_LEN} characters"),
            ));
        }
        if !out.contains(&role) {
            if out.len() == MAX_ROLES {
                return Err(field_error(
                    "roles",
                    &format!("more than {MAX_ROLES} roles"),
                ));
            }
            out.push(role);
        }
    }
    Ok(out)
}

fn looks_like_email(value: &str) -> bool {
    value
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

fn field_error(field: &str, reason: &str) -> EasyAuthError {
    EasyAuthError::Field {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    fn encode(value: &Value) -> String {
        STANDARD.encode(value.to_string())
    }

    fn principal_only(encoded: &str) -> EasyAuthHeaders<'_> {
        EasyAuthHeaders {
            principal: Some(encoded),
            ..Default::default()
        }
    }

    fn authenticated(headers: &EasyAuthHeaders<'_>) -> EasyAuthIdentity {
        match easy_auth_identity(headers, true).unwrap() {
            EasyAuthOutcome::Authenticated(identity) => identity,
            other => panic!("expected an identity, got {other:?}"),
        }
    }

    #[test]
    fn app_service_long_claim_types_and_repeated_roles() {
        let p = encode(&json!({
            "auth_typ": "aad",
            "claims": [
                {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "oid-123"},
                {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "val": "alice@contoso.com"},
                {"typ": "name", "val": "Alice Example"},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "PlatformAdmin"},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "Operator"},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "PlatformAdmin"}
            ],
            "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
        }));
        let id = authenticated(&principal_only(&p));
        assert_eq!(
            id,
            EasyAuthIdentity {
                provider: Some("aad".into()),
                object_id: Some("oid-123".into()),
                email: Some("alice@contoso.com".into()),
                display_name: Some("Alice Example".into()),
                roles: vec!["PlatformAdmin".into(), "Operator".into()],
            }
        );
    }

    #[test]
    fn app_service_short_claim_types() {
        let p = encode(&json!({
            "auth_typ": "aad",
            "claims": [
                {"typ": "oid", "val": "oid-9"},
                {"typ": "preferred_username", "val": "bob@fabrikam.com"},
                {"typ": "email", "val": "other@fabrikam.com"},
                {"typ": "roles", "val": "A"},
                {"typ": "roles", "val": "B"}
            ]
        }));
        let id = authenticated(&principal_only(&p));
        assert_eq!(id.object_id.as_deref(), Some("oid-9"));
        // preferred_username outranks email.
        assert_eq!(id.email.as_deref(), Some("bob@fabrikam.com"));
        assert_eq!(id.roles, vec!["A", "B"]);
        // No name claim: the display name falls back to the email.
        assert_eq!(id.display_name.as_deref(), Some("bob@fabrikam.com"));
    }

    #[test]
    fn custom_role_typ_and_emailaddress_uri() {
        let p = encode(&json!({
            "auth_typ": "github",
            "claims": [
                {"typ": "urn:custom:role", "val": "Writer"},
                {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "val": "c@x.io"}
            ],
            "role_typ": "urn:custom:role"
        }));
        let id = authenticated(&principal_only(&p));
        assert_eq!(id.roles, vec!["Writer"]);
        assert_eq!(id.email.as_deref(), Some("c@x.io"));
        assert_eq!(id.object_id, None);
    }

    #[test]
    fn static_web_apps_shape() {
        let p = encode(&json!({
            "identityProvider": "aad",
            "userId": "swa-user-1",
            "userDetails": "dana@contoso.com",
            "userRoles": ["anonymous", "authenticated", "PlatformAdmin", "authenticated"]
        }));
        let id = authenticated(&principal_only(&p));
        assert_eq!(
            id,
            EasyAuthIdentity {
                provider: Some("aad".into()),
                object_id: Some("swa-user-1".into()),
                email: Some("dana@contoso.com".into()),
                display_name: Some("dana".into()),
                roles: vec![
                    "anonymous".into(),
                    "authenticated".into(),
                    "PlatformAdmin".into()
                ],
            }
        );
    }

    #[test]
    fn companion_headers_fill_missing_fields() {
        let p = encode(&json!({"auth_typ": "aad", "claims": [{"typ": "roles", "val": "R"}]}));
        let headers = EasyAuthHeaders {
            principal: Some(&p),
            principal_id: Some("oid-from-header"),
            principal_name: Some("eve@contoso.com"),
            principal_idp: Some("ignored-because-auth_typ-wins"),
        };
        let id = authenticated(&headers);
        assert_eq!(id.object_id.as_deref(), Some("oid-from-header"));
        assert_eq!(id.email.as_deref(), Some("eve@contoso.com"));
        assert_eq!(id.provider.as_deref(), Some("aad"));
        assert_eq!(id.roles, vec!["R"]);

        // Companion headers alone are enough.
        let only = EasyAuthHeaders {
            principal_id: Some("oid-2"),
            principal_idp: Some("aad"),
            ..Default::default()
        };
        let id = authenticated(&only);
        assert_eq!(id.object_id.as_deref(), Some("oid-2"));
        assert_eq!(id.provider.as_deref(), Some("aad"));
    }

    #[test]
    fn untrusted_headers_are_ignored_not_parsed() {
        let headers = EasyAuthHeaders {
            principal: Some("%%% not even base64 %%%"),
            principal_name: Some("mallory@evil.example"),
            ..Default::default()
        };
        assert_eq!(
            easy_auth_identity(&headers, false).unwrap(),
            EasyAuthOutcome::Ignored {
                headers: vec![PRINCIPAL_HEADER, PRINCIPAL_NAME_HEADER]
            }
        );
        assert_eq!(
            easy_auth_identity(&EasyAuthHeaders::default(), false).unwrap(),
            EasyAuthOutcome::Absent
        );
        assert_eq!(
            easy_auth_identity(&EasyAuthHeaders::default(), true).unwrap(),
            EasyAuthOutcome::Absent
        );
    }

    #[test]
    fn from_lookup_uses_the_documented_names() {
        let headers = EasyAuthHeaders::from_lookup(|name| match name {
            "X-MS-CLIENT-PRINCIPAL-ID" => Some("id"),
            "X-MS-CLIENT-PRINCIPAL-IDP" => Some("aad"),
            _ => None,
        });
        assert_eq!(headers.principal_id, Some("id"));
        assert_eq!(headers.principal_idp, Some("aad"));
        assert_eq!(headers.principal, None);
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        let check = |encoded: &str, expected: fn(&EasyAuthError) -> bool| {
            let err = easy_auth_identity(&principal_only(encoded), true).unwrap_err();
            assert!(expected(&err), "{encoded:?}: {err:?}");
        };
        check("***", |e| matches!(e, EasyAuthError::Base64));
        check(&STANDARD.encode([0xff, 0xfe, 0x00]), |e| {
            matches!(e, EasyAuthError::Json { .. })
        });
        check(&STANDARD.encode("{\"claims\": ["), |e| {
            matches!(e, EasyAuthError::Json { .. })
        });
        check(&STANDARD.encode("[1,2]"), |e| {
            matches!(e, EasyAuthError::Shape { .. })
        });
        check(&STANDARD.encode("{\"foo\": 1}"), |e| {
            matches!(e, EasyAuthError::Shape { .. })
        });
        check(
            &encode(&json!({"claims": {"typ": "x"}})),
            |e| matches!(e, EasyAuthError::Field { field, .. } if field == "claims"),
        );
        check(
            &encode(&json!({"claims": [{"typ": "oid", "val": 5}]})),
            |e| matches!(e, EasyAuthError::Field { field, .. } if field == "claims[0].val"),
        );
        check(
            &encode(&json!({"claims": ["oops"]})),
            |e| matches!(e, EasyAuthError::Field { field, .. } if field == "claims[0]"),
        );
        check(
            &encode(&json!({"userRoles": "admin", "userId": "u"})),
            |e| matches!(e, EasyAuthError::Field { field, .. } if field == "userRoles"),
        );
        check(
            &encode(&json!({"userId": 7})),
            |e| matches!(e, EasyAuthError::Field { field, .. } if field == "userId"),
        );
        check(&encode(&json!({"auth_typ": "aad", "claims": []})), |e| {
            matches!(e, EasyAuthError::MissingIdentity)
        });
        let long = "a".repeat(MAX_FIELD_LEN + 1);
        check(
            &encode(&json!({"claims": [{"typ": "oid", "val": long}]})),
            |e| matches!(e, EasyAuthError::Field { .. }),
        );
        check(&"A".repeat(MAX_PRINCIPAL_HEADER_LEN + 4), |e| {
            matches!(e, EasyAuthError::TooLarge { .. })
        });
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let p = encode(&json!({"userId": "u1", "userDetails": "x@y.z"}));
        let unpadded = p.trim_end_matches('=');
        assert_ne!(unpadded.len(), p.len(), "test needs a padded value");
        assert_eq!(
            authenticated(&principal_only(unpadded))
                .object_id
                .as_deref(),
            Some("u1")
        );
    }

    /// Fuzz-ish: deterministic pseudo-random garbage (raw, base64 of bytes, base64 of mangled
    /// JSON) must only ever produce `Ok` or a typed error.
    #[test]
    fn garbage_never_panics() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let template = json!({
            "auth_typ": "aad",
            "claims": [{"typ": "oid", "val": "o"}, {"typ": "roles", "val": "r"}],
            "userRoles": ["a"]
        })
        .to_string()
        .into_bytes();
        let mut errors = 0;
        for round in 0..3000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let candidate = match round % 3 {
                0 => String::from_utf8_lossy(&bytes).into_owned(),
                1 => STANDARD.encode(&bytes),
                _ => {
                    let mut mangled = template.clone();
                    for _ in 0..(next() % 4 + 1) {
                        let i = (next() as usize) % mangled.len();
                        mangled[i] = next() as u8;
                    }
                    STANDARD.encode(&mangled)
                }
            };
            if easy_auth_identity(&principal_only(&candidate), true).is_err() {
                errors += 1;
            }
        }
        assert!(
            errors > 1000,
            "garbage should mostly be rejected ({errors})"
        );
    }
}
