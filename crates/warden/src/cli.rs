//! Command-line arguments (clap derive). Choices are enums, not strings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "warden",
    version,
    about = "API security gateway: authenticate, authorize, validate, limit, mask and audit every API call"
)]
pub struct Cli {
    /// Folder for the embedded store (keys, audit log, inventory). Default: `warden-data` beside the
    /// config file, or the platform data folder in quick mode.
    #[arg(long, global = true, env = "WARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json, env = "WARDEN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `warden=debug` (tracing EnvFilter syntax).
    #[arg(long, global = true, default_value = "info", env = "WARDEN_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway, from a config file or in quick mode (--listen/--upstream).
    Serve(ServeArgs),
    /// Validate a config file without serving; exits 2 with file:line: field: problem on error.
    CheckConfig(CheckConfigArgs),
    /// Start the bundled example API behind the gateway and print requests to try.
    Demo(DemoArgs),
    /// API keys in the embedded store: create, list, rotate (with overlap), revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign a request for a partner route (HMAC-SHA256 with timestamp and nonce); prints the
    /// `Authorization` header, or a curl command with `--curl`.
    Sign(SignArgs),
    /// Keys and values of the personal-data protection (encrypt/hash actions).
    #[command(subcommand)]
    Pii(PiiCommand),
    /// The audit trail in the data folder: verify it, query it, export it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Audit an OpenAPI spec for security gaps, like a compiler: rule, severity, file:line, fix;
    /// and a score out of 100.
    Lint(LintArgs),
    /// Test a running API, from its OpenAPI spec, for the OWASP API Security Top 10 (2023):
    /// users played against each other, forged tokens, exposure, limits, inventory, injection.
    Scan(ScanArgs),
    /// Run only the bundled example API (deliberately naive; never expose it).
    #[command(hide = true)]
    DemoApi(DemoApiArgs),
}

#[derive(Args, Debug)]
pub struct LintArgs {
    /// The OpenAPI 3.0/3.1 spec (YAML or JSON; `$ref`s into other files are followed).
    pub spec: PathBuf,
    /// `text` (the default) or `json` (one document: findings and score).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Exit 1 when a finding has this severity or worse: info, low, medium, high, critical.
    #[arg(long, value_parser = ["info", "low", "medium", "high", "critical"])]
    pub fail_on: Option<String>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// The API's OpenAPI 3.0/3.1 spec: a YAML or JSON file, or an http(s):// URL to fetch it from.
    #[arg(long)]
    pub spec: PathBuf,
    /// Base URL of the running API, e.g. https://api.example.com (the spec's server path is
    /// added unless the URL has a path of its own).
    #[arg(long)]
    pub target: String,
    /// A user who signs in through the spec's login operation: NAME=PASSWORD. Give at least two
    /// ordinary users: object-level checks replay one user's objects as the other.
    #[arg(long, value_name = "NAME=PASSWORD")]
    pub login: Vec<String>,
    /// A user with a bearer token: NAME=TOKEN.
    #[arg(long, value_name = "NAME=TOKEN")]
    pub bearer: Vec<String>,
    /// A user with an API key: NAME=KEY (sent in --api-key-header).
    #[arg(long, value_name = "NAME=KEY")]
    pub api_key: Vec<String>,
    /// The header API keys go in (default: the spec's apiKey scheme, else X-API-Key).
    #[arg(long)]
    pub api_key_header: Option<String>,
    /// Which of the users above is an administrator (repeatable).
    #[arg(long, value_name = "NAME")]
    pub admin: Vec<String>,
    /// A value to try for a parameter: NAME=VALUE (repeatable), e.g. an object id.
    #[arg(long, value_name = "NAME=VALUE")]
    pub seed: Vec<String>,
    /// Also send POST, PUT, PATCH and DELETE (mass assignment, admin writes, login probes).
    /// Only against an API whose data may change.
    #[arg(long)]
    pub allow_writes: bool,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 5000)]
    pub max_requests: usize,
    /// Requests per second (the rate-limit burst excepted).
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// How many requests the rate-limit check fires at once.
    #[arg(long, default_value_t = 100)]
    pub burst: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// The pause time-based injection probes ask for.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub delay: std::time::Duration,
    /// Where the SSRF canary listens (the target must reach it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub canary: SocketAddr,
    /// Accept any TLS certificate from the target.
    #[arg(long)]
    pub insecure: bool,
    /// Report format on standard output (or in --output).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "sarif", "junit", "html"])]
    pub format: String,
    /// Write the report here; the terminal then gets the summary.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding has this severity or worse: info, low, medium, high, critical.
    #[arg(long, value_parser = ["info", "low", "medium", "high", "critical"])]
    pub fail_on: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// YAML config file. Reloaded on SIGHUP and when the file changes.
    #[arg(long, short, conflicts_with_all = ["listen", "upstream"], required_unless_present = "upstream")]
    pub config: Option<PathBuf>,
    /// Quick mode: address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, requires = "upstream")]
    pub listen: Option<SocketAddr>,
    /// Quick mode: the API to protect, e.g. http://127.0.0.1:3000.
    #[arg(long, requires = "listen")]
    pub upstream: Option<String>,
    /// Quick mode: the API's OpenAPI 3.0/3.1 spec, enforced strictly (undeclared operations and
    /// fields refused, requests validated, undeclared response fields removed).
    #[arg(long, requires = "listen")]
    pub spec: Option<PathBuf>,
    /// Quick mode: admin listener address (health, readiness, metrics).
    #[arg(long, default_value = "127.0.0.1:9901", requires = "listen")]
    pub admin: SocketAddr,
    /// Quick mode: serve TLS with this PEM certificate chain.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Quick mode: PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Quick mode: accept unencrypted HTTP on a non-loopback address.
    #[arg(long)]
    pub plain_http: bool,
    /// Worker threads handling connections (overrides the config's `workers`); default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a key; it is printed once, on standard output, and never stored in clear.
    Create(KeysCreateArgs),
    /// Consumers, key ids, prefixes, scopes and expiry (never a secret).
    List(KeysListArgs),
    /// Replace a key: the new one is printed once; the old one stays valid for `--overlap`.
    Rotate(KeysRotateArgs),
    /// Revoke a key; running gateways refuse it within a second.
    Revoke(KeysRevokeArgs),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the whole chain and every signed checkpoint; exits 0 only when the trail is intact,
    /// else 1, naming the first entry that was edited, deleted, inserted, reordered or cut off.
    Verify(AuditVerifyArgs),
    /// Entries matching the filters, oldest first: a table, or JSON lines with --json.
    Query(AuditQueryArgs),
    /// Every entry (or those in a time range) as JSON lines with its sequence number and hash.
    Export(AuditExportArgs),
    /// The public key checkpoints are signed with (hex), to pin with `verify --public-key`.
    PublicKey,
}

/// Where the trail is: the data folder's store (default), or PostgreSQL.
#[derive(Args, Debug)]
pub struct AuditSource {
    /// A trail kept in PostgreSQL (`audit.postgres` in the gateways' config), e.g.
    /// postgres://warden@db.internal:5432/audit
    #[arg(long)]
    pub postgres: Option<String>,
    /// The schema holding it.
    #[arg(long, default_value = "warden", requires = "postgres")]
    pub pg_schema: String,
}

#[derive(Args, Debug)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub source: AuditSource,
    /// The trail's public key (hex, as `warden audit public-key` printed it when the trail was
    /// new), or a file holding it: checkpoints signed by any other key fail. Repeat it for a trail
    /// in PostgreSQL, one per replica.
    #[arg(long)]
    pub public_key: Vec<String>,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AuditQueryArgs {
    #[command(flatten)]
    pub source: AuditSource,
    /// From this time (RFC 3339, e.g. 2026-11-24T10:00:00Z) or this long ago (e.g. 1h).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time (RFC 3339) or this long ago.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub consumer: Option<String>,
    #[arg(long)]
    pub route: Option<String>,
    /// allowed, denied or failed.
    #[arg(long)]
    pub decision: Option<String>,
    #[arg(long)]
    pub status: Option<u16>,
    /// A reason code, e.g. rate-limited, attack-detected, expired.
    #[arg(long)]
    pub reason: Option<String>,
    /// request or admin.
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AuditExportArgs {
    #[command(flatten)]
    pub source: AuditSource,
    /// From this time (RFC 3339) or this long ago (e.g. 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time (RFC 3339) or this long ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Send to a syslog server instead of printing: udp://host:port or tcp://host:port.
    #[arg(long)]
    pub syslog: Option<String>,
    /// Syslog message format.
    #[arg(long, value_enum, default_value_t = SyslogFormat::Rfc5424, requires = "syslog")]
    pub format: SyslogFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum SyslogFormat {
    /// RFC 5424, the entry's JSON as the message.
    Rfc5424,
    /// ArcSight CEF in an RFC 5424 frame.
    Cef,
}

#[derive(Args, Debug)]
pub struct KeysCreateArgs {
    #[arg(long)]
    pub consumer: String,
    /// A scope the key grants (repeat for several).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// A role the key's consumer has (repeat for several).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Lifetime, e.g. `90d`, `12h`; no expiry when left out.
    #[arg(long, value_parser = parse_duration)]
    pub expires: Option<std::time::Duration>,
}

#[derive(Args, Debug)]
pub struct KeysListArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct KeysRotateArgs {
    pub key_id: String,
    /// How long the old key keeps working, e.g. `24h` (default) or `0s`.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub overlap: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct KeysRevokeArgs {
    pub key_id: String,
    /// The gateways' config: when it has `traffic.redis`, the revocation is also shared there, so
    /// replicas with their own stores refuse the key within a second too.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The request URL, e.g. https://api.example.com/v1/payments?x=1
    pub url: String,
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    #[arg(long)]
    pub key_id: String,
    /// Environment variable holding the shared secret.
    #[arg(
        long,
        conflicts_with = "secret_file",
        required_unless_present = "secret_file"
    )]
    pub secret_env: Option<String>,
    /// File holding the shared secret (trailing whitespace ignored).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// A header sent with the request, `Name: value` (repeat for several).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// The body sent, as text; `@FILE` reads a file.
    #[arg(long, short = 'd')]
    pub data: Option<String>,
    /// Headers to sign besides `host`, comma-separated.
    #[arg(long, default_value = "host,content-type")]
    pub signed_headers: String,
    /// Print a complete curl command instead of the header alone.
    #[arg(long)]
    pub curl: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (use e.g. 90d, 12h, 30m)"))
}

#[derive(Subcommand, Debug)]
pub enum PiiCommand {
    /// Print a new random 256-bit key as 64 hex digits (for `keys.hash` or `keys.encryption`).
    Keygen,
    /// Decrypt values made by the `encrypt` action, with the keys a config names.
    Decrypt(PiiDecryptArgs),
}

#[derive(Args, Debug)]
pub struct PiiDecryptArgs {
    /// The config whose `data_protection.keys.encryption` holds the keys.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Values as they appear in responses: `enc:v1:<key id>:...`.
    #[arg(required = true)]
    pub values: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Where the example API listens (loopback only).
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub api_listen: SocketAddr,
    /// Admin listener.
    #[arg(long, default_value = "127.0.0.1:8789")]
    pub admin: SocketAddr,
}

#[derive(Args, Debug)]
pub struct DemoApiArgs {
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub listen: SocketAddr,
    /// Serve the API with its planted flaws fixed (the scanner's clean target).
    #[arg(long)]
    pub fixed: bool,
}

/// How a subcommand failed: bad input exits 2, anything else 1.
#[derive(Debug)]
pub enum Failure {
    BadInput(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}
