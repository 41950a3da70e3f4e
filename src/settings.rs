//! Every setting the binary reads, declared once, validated once at start-up.
//!
//! Settings come from the environment (in Azure: app settings) and, for local runs, from the
//! `Values` of `local.settings.json` (the Functions convention; an environment variable wins over
//! the file). Loading is two-staged: raw strings become a validated [`Settings`], and every problem
//! is reported at once, naming the setting, before any port is bound.
//!
//! Invariant: no other module reads `std::env`; everything else receives `Arc<Settings>`.
//! `local.settings.json.example` and the README's settings table are checked against [`SPECS`]
//! by a test, so they cannot drift.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bifrost_store::azure_account::AzureAccount;

/// One declared setting: its name, whether its value is secret, its default and what it does.
#[derive(Debug)]
pub struct SettingSpec {
    pub name: &'static str,
    pub secret: bool,
    pub default: &'static str,
    pub doc: &'static str,
}

macro_rules! settings_table {
    ($( $konst:ident = $name:literal, secret: $secret:literal, default: $default:literal, doc: $doc:literal; )*) => {
        $( pub const $konst: &str = $name; )*
        /// The table of every setting the binary reads.
        pub const SPECS: &[SettingSpec] = &[
            $( SettingSpec { name: $name, secret: $secret, default: $default, doc: $doc }, )*
        ];
    };
}

settings_table! {
    CUSTOMHANDLER_PORT = "FUNCTIONS_CUSTOMHANDLER_PORT", secret: false, default: "",
        doc: "Set by the Azure Functions host: the loopback port to serve on. Its presence means 'running under the host' (JSON logs, bind 127.0.0.1).";
    PORT = "BIFROST_PORT", secret: false, default: "7071",
        doc: "Port for `bifrost serve` when not under the Functions host (`--port` overrides it).";
    BIND = "BIFROST_BIND", secret: false, default: "127.0.0.1",
        doc: "Address to listen on when not under the Functions host (use 0.0.0.0 in a container).";
    DATA_DIR = "BIFROST_DATA_DIR", secret: false, default: ".bifrost-data",
        doc: "Folder for the embedded backends: SQLite tables and queues, blob files, the encrypted secret store and its key file.";
    STORAGE = "BIFROST_STORAGE", secret: false, default: "embedded",
        doc: "Storage backend: `embedded` (SQLite + files in BIFROST_DATA_DIR) or `azure` (Tables, Queues and Blobs of AzureWebJobsStorage).";
    AZURE_STORAGE = "AzureWebJobsStorage", secret: true, default: "",
        doc: "Azure Storage connection string (or `UseDevelopmentStorage=true` for Azurite); used when BIFROST_STORAGE=azure.";
    AZURE_STORAGE_ACCOUNT = "AzureWebJobsStorage__accountName", secret: false, default: "",
        doc: "Identity-based storage: the account name, used with managed identity instead of a connection string.";
    AZURE_STORAGE_CLIENT_ID = "AzureWebJobsStorage__clientId", secret: false, default: "",
        doc: "Identity-based storage: client id of a user-assigned managed identity (empty = system-assigned).";
    SECRETS = "BIFROST_SECRETS", secret: false, default: "local",
        doc: "Secret store: `local` (AES-256-GCM encrypted file in BIFROST_DATA_DIR) or `keyvault` (AZURE_KEY_VAULT_URL).";
    KEY_VAULT_URL = "AZURE_KEY_VAULT_URL", secret: false, default: "",
        doc: "Key Vault URL, e.g. https://myvault.vault.azure.net/; required when BIFROST_SECRETS=keyvault.";
    KEY_VAULT_CLIENT_ID = "AZURE_KEY_VAULT_CLIENT_ID", secret: false, default: "",
        doc: "Client id of a user-assigned managed identity for Key Vault (empty = system-assigned).";
    MASTER_KEY = "BIFROST_MASTER_KEY", secret: true, default: "",
        doc: "Local secret store master key (base64 of 32 bytes). Empty: a key file is generated in BIFROST_DATA_DIR with 0600 permissions.";
    WORKSPACE = "BIFROST_WORKSPACE_LOCATION", secret: false, default: "workspace",
        doc: "Folder of workflow Python files (v1's name for it).";
    PYTHON_THREADS = "BIFROST_PYTHON_THREADS", secret: false, default: "2",
        doc: "Number of dedicated Python engine threads (1-64).";
    MAX_BODY_BYTES = "BIFROST_MAX_BODY_BYTES", secret: false, default: "10485760",
        doc: "Largest request body accepted, in bytes; larger bodies get 413.";
    EASY_AUTH = "WEBSITE_AUTH_ENABLED", secret: false, default: "false",
        doc: "Set by App Service when Easy Auth is on: only then are X-MS-CLIENT-PRINCIPAL headers trusted (otherwise ignored and audited).";
    DEV_IDENTITY = "BIFROST_DEV_IDENTITY", secret: false, default: "off",
        doc: "`admin` makes unauthenticated requests act as a local developer with platform-admin rights. Only for a developer machine; refused under the Functions host.";
    RATE_LIMIT = "BIFROST_RATE_LIMIT", secret: false, default: "100",
        doc: "Requests per second allowed per organization and per key (bursts up to twice that); excess gets 429 with Retry-After. 0 disables.";
    ANONYMOUS_RATE_LIMIT = "BIFROST_ANONYMOUS_RATE_LIMIT", secret: false, default: "20",
        doc: "Requests per second allowed per client address for callers without credentials (bursts up to twice that); excess gets 429 with Retry-After. 0 disables.";
    ANONYMOUS_MAX_BODY = "BIFROST_ANONYMOUS_MAX_BODY_BYTES", secret: false, default: "65536",
        doc: "Largest request body accepted from a caller without credentials (public forms and endpoints); larger bodies get 413 before anything reads them. Public form uploads have their own limit.";
    UPLOAD_RATE_LIMIT = "BIFROST_UPLOAD_RATE_LIMIT", secret: false, default: "2",
        doc: "File uploads per second allowed per client address for callers without credentials (bursts up to five); excess gets 429. 0 disables.";
    TRUSTED_PROXIES = "BIFROST_TRUSTED_PROXIES", secret: false, default: "",
        doc: "Comma-separated addresses or CIDR ranges of reverse proxies (Front Door, a load balancer) whose X-Forwarded-For / X-Azure-ClientIP name the client. Requests from anyone else are keyed by their socket address. Under the Functions host the host itself is trusted.";
    FRONT_DOOR_ID = "BIFROST_FRONT_DOOR_ID", secret: false, default: "",
        doc: "The Azure Front Door profile id (its X-Azure-FDID) in front of the app: requests carrying it take the client address from X-Azure-ClientIP, which Front Door sets. Restrict the app to that Front Door (access restrictions) so nobody can reach it directly with a forged id.";
    ALLOWED_ORIGINS = "BIFROST_ALLOWED_ORIGINS", secret: false, default: "",
        doc: "Comma-separated origins (https://portal.example.com) besides the app's own that browsers may call the API from: CORS is answered for them, and state-changing browser requests must come from one of them or the app itself.";
    MAX_STREAMS = "BIFROST_MAX_STREAMS_PER_CALLER", secret: false, default: "8",
        doc: "Live log streams (Server-Sent Events) one caller may hold open at once on an instance (1-1000); more get 429.";
    EXECUTION_LEASE = "BIFROST_EXECUTION_LEASE_SECONDS", secret: false, default: "60",
        doc: "Lease of a running execution (2-3600 s). The running instance renews it every third of it; a run whose lease passes is an orphan that execution_cleanup re-queues (retry_policy) or marks Failed.";
    WORKER_SLOTS = "BIFROST_WORKER_SLOTS", secret: false, default: "4",
        doc: "Async executions one instance runs at once from the queue (1-256).";
    MAX_RUNNING_PER_ORG = "BIFROST_MAX_RUNNING_PER_ORG", secret: false, default: "0",
        doc: "Most queued executions of one organization running at once across instances (0 = no limit); the excess waits in the queue without starving other organizations.";
    RETENTION_DAYS = "BIFROST_RETENTION_DAYS", secret: false, default: "90",
        doc: "Days finished executions and their logs are kept (1-36500). An organization's config key `execution_retention_days` overrides it.";
    TIMER_CLEANUP = "BIFROST_TIMER_EXECUTION_CLEANUP", secret: false, default: "0 * * * * *",
        doc: "Standalone only: NCRONTAB (six fields, UTC) of the execution_cleanup job. Under the Functions host functions/execution_cleanup/function.json decides.";
    TIMER_SCHEDULES = "BIFROST_TIMER_SCHEDULE_PROCESSOR", secret: false, default: "0 * * * * *",
        doc: "Standalone only: NCRONTAB of the schedule_processor job (starts due cron-scheduled workflows).";
    TIMER_RETENTION = "BIFROST_TIMER_RETENTION", secret: false, default: "0 30 3 * * *",
        doc: "Standalone only: NCRONTAB of the retention job.";
    LOG = "BIFROST_LOG", secret: false, default: "info",
        doc: "Log filter in tracing's EnvFilter syntax, e.g. `info,bifrost=debug`.";
    LOG_FORMAT = "BIFROST_LOG_FORMAT", secret: false, default: "auto",
        doc: "`text`, `json`, or `auto` (JSON lines under the Functions host, text otherwise).";
}

/// Environment variables workflow code must not see (`fnmatch` patterns, case-insensitive):
/// the platform's own settings and credentials, the managed identity's endpoint and header,
/// and anything named like a secret. Workflows read configuration through `config`/`secrets`.
pub const HIDDEN_FROM_WORKFLOWS: &[&str] = &[
    "BIFROST_*",
    "AzureWebJobs*",
    "FUNCTIONS_*",
    "IDENTITY_*",
    "MSI_*",
    "AZURE_*",
    "WEBSITE_AUTH_*",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET",
    "CONTAINER_ENCRYPTION_KEY",
    "APPLICATIONINSIGHTS_*",
    "*SECRET*",
    "*PASSWORD*",
    "*TOKEN*",
    "*_KEY",
    "*CONNECTION_STRING*",
    "*CONNECTIONSTRING*",
];

/// Where the settings came from, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawSettings {
    values: BTreeMap<String, String>,
}

impl RawSettings {
    /// The process environment, with `local.settings.json`'s `Values` underneath (if the file
    /// exists). Only the settings in [`SPECS`] are kept.
    pub fn load(local_settings: &Path) -> Result<Self, SettingsErrors> {
        let mut raw = match std::fs::read_to_string(local_settings) {
            Ok(text) => Self::from_local_settings_json(&text).map_err(|e| {
                SettingsErrors(vec![SettingError {
                    name: local_settings.display().to_string(),
                    problem: e,
                }])
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                return Err(SettingsErrors(vec![SettingError {
                    name: local_settings.display().to_string(),
                    problem: format!("cannot be read: {e}"),
                }]));
            }
        };
        for spec in SPECS {
            if let Ok(value) = std::env::var(spec.name) {
                raw.values.insert(spec.name.to_owned(), value);
            }
        }
        Ok(raw)
    }

    /// Parses the Functions `local.settings.json` shape; `Values` must map strings to strings.
    pub fn from_local_settings_json(text: &str) -> Result<Self, String> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
        if doc.get("IsEncrypted").and_then(|v| v.as_bool()) == Some(true) {
            return Err("IsEncrypted is true; encrypted local settings are not supported".into());
        }
        let mut values = BTreeMap::new();
        if let Some(obj) = doc.get("Values") {
            let obj = obj
                .as_object()
                .ok_or_else(|| "Values must be an object".to_owned())?;
            for (k, v) in obj {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("Values.{k} must be a string"))?;
                values.insert(k.clone(), v.to_owned());
            }
        }
        Ok(Self { values })
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(name.to_owned(), value.into());
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which storage backend serves tables, queues and blobs.
#[derive(Clone, Debug)]
pub enum StorageSettings {
    Embedded,
    Azure(Box<AzureAccount>),
}

impl StorageSettings {
    pub fn name(&self) -> &'static str {
        match self {
            StorageSettings::Embedded => "embedded",
            StorageSettings::Azure(_) => "azure",
        }
    }
}

#[derive(Clone, Debug)]
pub enum SecretSettings {
    Local {
        master_key: Option<String>,
    },
    KeyVault {
        url: url::Url,
        client_id: Option<String>,
    },
}

impl SecretSettings {
    pub fn name(&self) -> &'static str {
        match self {
            SecretSettings::Local { .. } => "local",
            SecretSettings::KeyVault { .. } => "keyvault",
        }
    }
}

/// The validated settings. Secret values are never printed by `Debug` (see [`Settings::summary`]).
#[derive(Clone)]
pub struct Settings {
    /// True when the Functions host started us (FUNCTIONS_CUSTOMHANDLER_PORT is set).
    pub under_functions_host: bool,
    pub bind: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub storage: StorageSettings,
    pub secrets: SecretSettings,
    pub workspace: PathBuf,
    pub python_threads: usize,
    pub max_body_bytes: u64,
    /// Trust Easy Auth principal headers (App Service sets WEBSITE_AUTH_ENABLED).
    pub easy_auth: bool,
    /// Unauthenticated requests act as a local developer (explicit opt-in only).
    pub dev_identity: bool,
    /// Requests per second per organization and per key; 0 = unlimited.
    pub rate_limit_per_second: u32,
    /// What callers without credentials, browsers and streams may do.
    pub limits: RequestLimits,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// Lower-cased Front Door profile id whose `X-Azure-ClientIP` names the client.
    pub front_door_id: Option<String>,
    /// Origins besides the app's own that browsers may call from (CORS, CSRF).
    pub allowed_origins: Vec<String>,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub executions: ExecutionSettings,
}

/// Limits on what callers without credentials, uploads and log streams may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests per second per client address without credentials; 0 = unlimited.
    pub anonymous_per_second: u32,
    /// Largest body a caller without credentials may send (uploads excepted).
    pub anonymous_max_body: u64,
    /// Anonymous uploads per second per client address; 0 = unlimited.
    pub uploads_per_second: u32,
    /// Open log streams per caller and instance.
    pub streams_per_caller: usize,
}

/// Addresses and CIDR ranges of trusted reverse proxies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub(crate) Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 192.0.2.7, ::1` (a bare address is a single host).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an address or CIDR range"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?} has an invalid prefix length"))?,
            };
            ranges.push((addr, bits));
        }
        Ok(Self(ranges))
    }

    /// Loopback only: the Functions host forwards from there.
    pub fn loopback() -> Self {
        Self(vec![
            (IpAddr::from([127, 0, 0, 0]), 8),
            (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
        ])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| match (canonical(*net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix_matches(&n.octets(), &a.octets(), *bits),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix_matches(&n.octets(), &a.octets(), *bits),
                _ => false,
            })
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_matches(net: &[u8], addr: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if net[..full] != addr[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (net[full] & mask) == (addr[full] & mask)
}

/// How executions run and are kept (see `executions::recovery` and `jobs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionSettings {
    pub lease: std::time::Duration,
    pub worker_slots: usize,
    pub max_running_per_org: usize,
    pub retention_days: u32,
    /// NCRONTAB of the in-process timer jobs: execution_cleanup, schedule_processor, retention.
    pub timer_cleanup: String,
    pub timer_schedules: String,
    pub timer_retention: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Command-line values that take precedence over the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub port: Option<u16>,
    pub workspace: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct SettingError {
    pub name: String,
    pub problem: String,
}

/// Every problem found while validating, reported together.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingsErrors(pub Vec<SettingError>);

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid settings:")?;
        for e in &self.0 {
            writeln!(f, "  {}: {}", e.name, e.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

impl Settings {
    pub fn from_raw(raw: &RawSettings, overrides: &Overrides) -> Result<Self, SettingsErrors> {
        let mut errors = Vec::new();
        let mut fail = |name: &str, problem: String| {
            errors.push(SettingError {
                name: name.to_owned(),
                problem,
            })
        };

        let host_port = raw.get(CUSTOMHANDLER_PORT).map(|v| {
            v.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{v:?} is not a port number (1-65535)"))
        });
        let under_functions_host = host_port.is_some();
        let port = match (host_port, overrides.port) {
            (Some(Ok(p)), _) => p,
            (Some(Err(e)), _) => {
                fail(CUSTOMHANDLER_PORT, e);
                0
            }
            (None, Some(p)) => p,
            (None, None) => parse_or(raw, PORT, 7071u16, &mut fail),
        };
        // The host always calls 127.0.0.1; standalone may choose its bind address.
        let bind = if under_functions_host {
            IpAddr::from([127, 0, 0, 1])
        } else {
            parse_or(raw, BIND, IpAddr::from([127, 0, 0, 1]), &mut fail)
        };

        let data_dir = overrides
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(raw.get(DATA_DIR).unwrap_or(".bifrost-data")));
        let workspace = overrides
            .workspace
            .clone()
            .unwrap_or_else(|| PathBuf::from(raw.get(WORKSPACE).unwrap_or("workspace")));

        let storage = match raw.get(STORAGE).unwrap_or("embedded") {
            "embedded" => StorageSettings::Embedded,
            "azure" => match (raw.get(AZURE_STORAGE), raw.get(AZURE_STORAGE_ACCOUNT)) {
                (Some(conn), _) => match AzureAccount::from_connection_string(conn) {
                    Ok(account) => StorageSettings::Azure(Box::new(account)),
                    Err(e) => {
                        fail(AZURE_STORAGE, e.to_string());
                        StorageSettings::Embedded
                    }
                },
                (None, Some(account)) => {
                    let client_id = raw.get(AZURE_STORAGE_CLIENT_ID).map(str::to_owned);
                    match AzureAccount::managed_identity(account, client_id) {
                        Ok(account) => StorageSettings::Azure(Box::new(account)),
                        Err(e) => {
                            fail(AZURE_STORAGE_ACCOUNT, e.to_string());
                            StorageSettings::Embedded
                        }
                    }
                }
                (None, None) => {
                    fail(
                        STORAGE,
                        format!("`azure` needs {AZURE_STORAGE} or {AZURE_STORAGE_ACCOUNT}"),
                    );
                    StorageSettings::Embedded
                }
            },
            other => {
                fail(
                    STORAGE,
                    format!("{other:?} is not a storage backend; expected `embedded` or `azure`"),
                );
                StorageSettings::Embedded
            }
        };

        let secrets = match raw.get(SECRETS).unwrap_or("local") {
            "local" => SecretSettings::Local {
                master_key: raw.get(MASTER_KEY).map(str::to_owned),
            },
            "keyvault" => match raw.get(KEY_VAULT_URL).map(url::Url::parse) {
                Some(Ok(url)) if url.scheme() == "https" => SecretSettings::KeyVault {
                    url,
                    client_id: raw.get(KEY_VAULT_CLIENT_ID).map(str::to_owned),
                },
                Some(Ok(_)) => {
                    fail(KEY_VAULT_URL, "must be an https:// URL".into());
                    SecretSettings::Local { master_key: None }
                }
                Some(Err(e)) => {
                    fail(KEY_VAULT_URL, format!("is not a URL: {e}"));
                    SecretSettings::Local { master_key: None }
                }
                None => {
                    fail(SECRETS, format!("`keyvault` needs {KEY_VAULT_URL}"));
                    SecretSettings::Local { master_key: None }
                }
            },
            other => {
                fail(
                    SECRETS,
                    format!("{other:?} is not a secret store; expected `local` or `keyvault`"),
                );
                SecretSettings::Local { master_key: None }
            }
        };

        let python_threads: usize = parse_or(raw, PYTHON_THREADS, 2, &mut fail);
        if !(1..=64).contains(&python_threads) {
            fail(PYTHON_THREADS, format!("{python_threads} is outside 1-64"));
        }
        let max_body_bytes: u64 = parse_or(raw, MAX_BODY_BYTES, 10 * 1024 * 1024, &mut fail);
        if max_body_bytes < 1024 {
            fail(MAX_BODY_BYTES, "must be at least 1024".into());
        }
        let easy_auth = match raw.get(EASY_AUTH).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                fail(EASY_AUTH, format!("{other:?} is not true or false"));
                false
            }
        };
        let dev_identity = match raw.get(DEV_IDENTITY).unwrap_or("off") {
            "off" => false,
            "admin" if under_functions_host => {
                fail(DEV_IDENTITY, "must be off under the Functions host".into());
                false
            }
            "admin" => true,
            other => {
                fail(DEV_IDENTITY, format!("{other:?} is not `off` or `admin`"));
                false
            }
        };
        if dev_identity && !bind.is_loopback() {
            fail(
                DEV_IDENTITY,
                format!(
                    "`admin` acts as a platform administrator for anyone who can connect, so it \
                     needs a loopback {BIND} (127.0.0.1 or ::1), not {bind}"
                ),
            );
        }
        let rate_limit_per_second: u32 = parse_or(raw, RATE_LIMIT, 100, &mut fail);
        let streams_per_caller: usize = parse_or(raw, MAX_STREAMS, 8, &mut fail);
        if !(1..=1000).contains(&streams_per_caller) {
            fail(
                MAX_STREAMS,
                format!("{streams_per_caller} is outside 1-1000"),
            );
        }
        let anonymous_max_body: u64 = parse_or(raw, ANONYMOUS_MAX_BODY, 64 * 1024, &mut fail);
        if anonymous_max_body < 1024 {
            fail(ANONYMOUS_MAX_BODY, "must be at least 1024".into());
        }
        let limits = RequestLimits {
            anonymous_per_second: parse_or(raw, ANONYMOUS_RATE_LIMIT, 20, &mut fail),
            anonymous_max_body: anonymous_max_body.min(max_body_bytes),
            uploads_per_second: parse_or(raw, UPLOAD_RATE_LIMIT, 2, &mut fail),
            streams_per_caller,
        };
        let mut trusted_proxies =
            match TrustedProxies::parse(raw.get(TRUSTED_PROXIES).unwrap_or("")) {
                Ok(p) => p,
                Err(e) => {
                    fail(TRUSTED_PROXIES, e);
                    TrustedProxies::default()
                }
            };
        if under_functions_host {
            // The host forwards every request from loopback, with the client in X-Forwarded-For.
            trusted_proxies.0.extend(TrustedProxies::loopback().0);
        }
        let front_door_id = raw
            .get(FRONT_DOOR_ID)
            .map(|v| v.trim().to_ascii_lowercase());
        let mut allowed_origins = Vec::new();
        for origin in raw
            .get(ALLOWED_ORIGINS)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match url::Url::parse(origin) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.path() == "/"
                        && u.query().is_none() =>
                {
                    allowed_origins.push(u.origin().ascii_serialization());
                }
                _ => fail(
                    ALLOWED_ORIGINS,
                    format!("{origin:?} is not an origin like https://portal.example.com"),
                ),
            }
        }
        let log_filter = raw.get(LOG).unwrap_or("info").to_owned();
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            fail(LOG, format!("is not a valid filter: {e}"));
        }
        let log_format = match raw.get(LOG_FORMAT).unwrap_or("auto") {
            "auto" if under_functions_host => LogFormat::Json,
            "auto" | "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                fail(
                    LOG_FORMAT,
                    format!("{other:?} is not a log format; expected text, json or auto"),
                );
                LogFormat::Text
            }
        };

        let lease: u64 = parse_or(raw, EXECUTION_LEASE, 60, &mut fail);
        if !(2..=3600).contains(&lease) {
            fail(EXECUTION_LEASE, format!("{lease} is outside 2-3600"));
        }
        let worker_slots: usize = parse_or(raw, WORKER_SLOTS, 4, &mut fail);
        if !(1..=256).contains(&worker_slots) {
            fail(WORKER_SLOTS, format!("{worker_slots} is outside 1-256"));
        }
        let max_running_per_org: usize = parse_or(raw, MAX_RUNNING_PER_ORG, 0, &mut fail);
        let retention_days: u32 = parse_or(raw, RETENTION_DAYS, 90, &mut fail);
        if !(1..=36_500).contains(&retention_days) {
            fail(
                RETENTION_DAYS,
                format!("{retention_days} is outside 1-36500"),
            );
        }
        let mut timer = |name: &str, default: &str| {
            let value = raw.get(name).unwrap_or(default).to_owned();
            match crate::schedules::Cron::parse(&value) {
                Ok(cron) if cron.has_seconds() => {}
                Ok(_) => fail(
                    name,
                    "must have six fields (NCRONTAB: seconds first)".into(),
                ),
                Err(e) => fail(name, format!("is not a valid NCRONTAB expression: {e}")),
            }
            value
        };
        let executions = ExecutionSettings {
            lease: std::time::Duration::from_secs(lease),
            worker_slots,
            max_running_per_org,
            retention_days,
            timer_cleanup: timer(TIMER_CLEANUP, "0 * * * * *"),
            timer_schedules: timer(TIMER_SCHEDULES, "0 * * * * *"),
            timer_retention: timer(TIMER_RETENTION, "0 30 3 * * *"),
        };

        if !errors.is_empty() {
            return Err(SettingsErrors(errors));
        }
        Ok(Settings {
            under_functions_host,
            bind,
            port,
            data_dir,
            storage,
            secrets,
            workspace,
            python_threads,
            max_body_bytes,
            easy_auth,
            dev_identity,
            rate_limit_per_second,
            limits,
            trusted_proxies,
            front_door_id,
            allowed_origins,
            log_filter,
            log_format,
            executions,
        })
    }

    /// One line for the start-up log; secret settings never appear in it.
    pub fn summary(&self) -> String {
        format!(
            "listen={}:{} functions_host={} storage={} secrets={} data_dir={} workspace={} python_threads={} max_body_bytes={} easy_auth={} dev_identity={} rate_limit={}/s",
            self.bind,
            self.port,
            self.under_functions_host,
            self.storage.name(),
            self.secrets.name(),
            self.data_dir.display(),
            self.workspace.display(),
            self.python_threads,
            self.max_body_bytes,
            self.easy_auth,
            self.dev_identity,
            self.rate_limit_per_second,
        )
    }
}

fn parse_or<T: std::str::FromStr>(
    raw: &RawSettings,
    name: &str,
    default: T,
    fail: &mut impl FnMut(&str, String),
) -> T
where
    T::Err: fmt::Display,
{
    match raw.get(name) {
        None => default,
        Some(v) => v.trim().parse().unwrap_or_else(|e| {
            fail(name, format!("{v:?} is invalid: {e}"));
            default
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsErrors> {
        Settings::from_raw(
            &RawSettings::from_pairs(pairs.iter().copied()),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_are_standalone_embedded_on_7071() {
        let s = settings(&[]).unwrap();
        assert!(!s.under_functions_host);
        assert_eq!(s.port, 7071);
        assert_eq!(s.storage.name(), "embedded");
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn functions_host_port_wins_and_switches_to_json_logs() {
        let s = Settings::from_raw(
            &RawSettings::from_pairs([(CUSTOMHANDLER_PORT, "5123"), (PORT, "9000")]),
            &Overrides {
                port: Some(8000),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.under_functions_host);
        assert_eq!(s.port, 5123);
        assert_eq!(s.bind.to_string(), "127.0.0.1");
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn every_invalid_setting_is_reported_by_name() {
        let err = settings(&[
            (PORT, "seventy"),
            (STORAGE, "mongo"),
            (PYTHON_THREADS, "0"),
            (LOG_FORMAT, "xml"),
        ])
        .unwrap_err();
        let names: Vec<_> = err.0.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [PORT, STORAGE, PYTHON_THREADS, LOG_FORMAT]);
    }

    #[test]
    fn azure_storage_needs_a_connection() {
        let err = settings(&[(STORAGE, "azure")]).unwrap_err();
        assert_eq!(err.0[0].name, STORAGE);
        let s = settings(&[
            (STORAGE, "azure"),
            (AZURE_STORAGE, "UseDevelopmentStorage=true"),
        ])
        .unwrap();
        assert_eq!(s.storage.name(), "azure");
    }

    #[test]
    fn summary_never_contains_secret_values() {
        let s = settings(&[
            (STORAGE, "azure"),
            (
                AZURE_STORAGE,
                "AccountName=acme;AccountKey=VERYSECRETKEY;DefaultEndpointsProtocol=https",
            ),
            (MASTER_KEY, "MASTERKEYVALUE"),
        ])
        .unwrap();
        let text = format!("{s:?} {}", s.summary());
        assert!(!text.contains("VERYSECRETKEY") && !text.contains("MASTERKEYVALUE"));
    }

    #[test]
    fn the_development_identity_needs_a_loopback_address() {
        let err = settings(&[(DEV_IDENTITY, "admin"), (BIND, "0.0.0.0")]).unwrap_err();
        assert_eq!(err.0[0].name, DEV_IDENTITY);
        assert!(settings(&[(DEV_IDENTITY, "admin"), (BIND, "::1")]).is_ok());
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let p = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7 ,fd00::/8").unwrap();
        assert!(p.contains("10.200.3.4".parse().unwrap()));
        assert!(p.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(p.contains("192.0.2.7".parse().unwrap()));
        assert!(!p.contains("192.0.2.8".parse().unwrap()));
        assert!(p.contains("fd12::1".parse().unwrap()));
        assert!(!p.contains("fe80::1".parse().unwrap()));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        let s = settings(&[(TRUSTED_PROXIES, "nope")]).unwrap_err();
        assert_eq!(s.0[0].name, TRUSTED_PROXIES);
    }

    #[test]
    fn allowed_origins_are_bare_origins() {
        let s = settings(&[(
            ALLOWED_ORIGINS,
            "https://portal.example.com, http://localhost:5173",
        )])
        .unwrap();
        assert_eq!(
            s.allowed_origins,
            ["https://portal.example.com", "http://localhost:5173"]
        );
        let err = settings(&[(ALLOWED_ORIGINS, "https://portal.example.com/app")]).unwrap_err();
        assert_eq!(err.0[0].name, ALLOWED_ORIGINS);
    }

    #[test]
    fn local_settings_values_must_be_strings() {
        let err = RawSettings::from_local_settings_json(r#"{"Values":{"BIFROST_PORT":7071}}"#)
            .unwrap_err();
        assert!(err.contains("Values.BIFROST_PORT"), "{err}");
    }

    #[test]
    fn example_file_and_readme_document_every_setting() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = std::fs::read_to_string(root.join("local.settings.json.example")).unwrap();
        let raw = RawSettings::from_local_settings_json(&example).unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        for spec in SPECS {
            // The host sets FUNCTIONS_CUSTOMHANDLER_PORT itself; it has no place in the file.
            assert!(
                spec.name == CUSTOMHANDLER_PORT || raw.values.contains_key(spec.name),
                "local.settings.json.example lacks {}",
                spec.name
            );
            assert!(
                readme.contains(&format!("`{}`", spec.name)),
                "README's settings table lacks {}",
                spec.name
            );
        }
        for name in raw.values.keys() {
            let known = SPECS.iter().any(|s| s.name == name) || name == "FUNCTIONS_WORKER_RUNTIME";
            assert!(
                known,
                "local.settings.json.example has unknown setting {name}"
            );
        }
    }
}
