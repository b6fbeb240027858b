//! Attack detection: injection, traversal, SSRF and friends, in request values. Every value is
//! normalised once ([`normalize`]), then each detector (one file each) looks at it and reports
//! hits with a score; the request's anomaly score is the sum, and the request is refused when it
//! reaches the threshold (5 by default, so one critical hit is enough), as in the OWASP CRS's
//! anomaly scoring. Paranoia levels 1–4 turn on more aggressive rules; level 1 is tuned so that
//! legitimate JSON API traffic passes (bench/README.md has the measured rates).
//!
//! Detectors are pure and linear in their input: no backtracking regex, values cut at
//! [`normalize::MAX_VALUE`].

pub mod cmdi;
pub mod code;
pub mod crlf;
pub mod engine;
pub mod jndi;
pub mod ldap;
pub mod normalize;
pub mod nosql;
pub mod signals;
pub mod sqli;
pub mod ssrf;
pub mod ssti;
pub mod traversal;
pub mod xss;
pub mod xxe;

pub use engine::{CleanValues, Exclusion, Finding, Inspector, Report, Settings};
pub use normalize::{Encoding, Normalized, Transforms};

/// The detectors, as named in config, findings and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Sqli,
    Xss,
    Nosql,
    Cmdi,
    Traversal,
    Ssrf,
    Xxe,
    Ssti,
    Jndi,
    Crlf,
    Code,
    /// LDAP search filter injection.
    Ldap,
    /// A session id handed over in the URL (session fixation).
    Session,
    Evasion,
}

impl Detector {
    pub const ALL: [Detector; 14] = [
        Detector::Sqli,
        Detector::Xss,
        Detector::Nosql,
        Detector::Cmdi,
        Detector::Traversal,
        Detector::Ssrf,
        Detector::Xxe,
        Detector::Ssti,
        Detector::Jndi,
        Detector::Crlf,
        Detector::Code,
        Detector::Ldap,
        Detector::Session,
        Detector::Evasion,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Detector::Sqli => "sqli",
            Detector::Xss => "xss",
            Detector::Nosql => "nosql",
            Detector::Cmdi => "cmdi",
            Detector::Traversal => "traversal",
            Detector::Ssrf => "ssrf",
            Detector::Xxe => "xxe",
            Detector::Ssti => "ssti",
            Detector::Jndi => "jndi",
            Detector::Crlf => "crlf",
            Detector::Code => "code",
            Detector::Ldap => "ldap",
            Detector::Session => "session-fixation",
            Detector::Evasion => "evasion",
        }
    }

    pub fn parse(s: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.id() == s)
    }
}

/// Where a value was found: decides which detectors apply (newlines are normal in a JSON comment,
/// not in a query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
    QueryName,
    Form,
    FormName,
    Cookie,
    CookieName,
    Header,
    JsonString,
    JsonKey,
    /// A whole body that is not JSON or a form (XML, text).
    Body,
}

impl Place {
    /// Values that end up in URLs, headers or cookies: CR/LF there is an injection.
    pub fn is_line_oriented(self) -> bool {
        matches!(
            self,
            Place::Path
                | Place::Query
                | Place::QueryName
                | Place::Form
                | Place::FormName
                | Place::Cookie
                | Place::CookieName
                | Place::Header
        )
    }

    pub fn is_name(self) -> bool {
        matches!(
            self,
            Place::QueryName | Place::FormName | Place::CookieName | Place::JsonKey
        )
    }

    /// JSON text or a text body: where code, templates and quoted requests may be the content
    /// (a ticket, a snippet, an e-mail template) rather than an attack.
    pub fn is_free_text(self) -> bool {
        matches!(self, Place::JsonString | Place::Body)
    }

    /// The score of a shape that is an attack where a value is a token (query, form, cookie,
    /// header, path, names) and may be content in free text: critical there, an error here
    /// (below the threshold alone).
    pub fn shape_score(self) -> u8 {
        if self.is_free_text() {
            ERROR
        } else {
            CRITICAL
        }
    }
}

/// A byte-to-flags table for the "which syntax is there at all" pass a detector makes before
/// its rules: one table load per byte where a `match` on the byte costs a chain of comparisons.
/// Each `(bytes, flag)` pair sets `flag` for those bytes.
pub(crate) const fn byte_flags(sets: &[(&[u8], u8)]) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < sets.len() {
        let (bytes, flag) = sets[i];
        let mut j = 0;
        while j < bytes.len() {
            t[bytes[j] as usize] |= flag;
            j += 1;
        }
        i += 1;
    }
    t
}

/// The union of `table`'s flags over `bytes`.
#[inline]
pub(crate) fn flags_of(table: &[u8; 256], bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, &b| acc | table[b as usize])
}

/// [`flags_of`], stopping (at an eight-byte step) once a flag in `stop` is seen.
#[inline]
pub(crate) fn flags_until(table: &[u8; 256], bytes: &[u8], stop: u8) -> u8 {
    let mut acc = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        acc |= flags_of(table, c);
        if acc & stop != 0 {
            return acc;
        }
    }
    acc | flags_of(table, chunks.remainder())
}

/// Whether a word starting at `at` in `b` starts there, not inside an identifier (`myalert(`
/// holds `alert(` but does not call it).
pub(crate) fn word_start(b: &[u8], at: usize) -> bool {
    at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_')
}

/// How many words of prose `s` holds: runs of three or more letters between spaces or tabs. A
/// shape made of code or a command line has few; a sentence about one ("ls -la shows hidden
/// files", "use 'and' or 'or' in searches") has more.
pub(crate) fn prose_words(s: &str) -> usize {
    s.split([' ', '\t'])
        .filter(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_alphabetic()))
        .count()
}

/// Severity scores, as CRS uses them: one critical hit reaches the default threshold of 5.
pub const CRITICAL: u8 = 5;
pub const ERROR: u8 = 4;
pub const WARNING: u8 = 3;
pub const NOTICE: u8 = 2;

/// One rule that matched one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub detector: Detector,
    /// Stable rule id within the detector, e.g. `libinjection`, `etc-passwd`.
    pub rule: &'static str,
    pub score: u8,
    /// The lowest paranoia level at which the rule counts.
    pub paranoia: u8,
}

impl Hit {
    pub const fn new(detector: Detector, rule: &'static str, score: u8, paranoia: u8) -> Hit {
        Hit {
            detector,
            rule,
            score,
            paranoia,
        }
    }
}

/// A file extension a web server runs as a script (PHP in its variants, JSP, ASP, CGI, SSI): an
/// upload with one, or an include of a remote one, hands the attacker code execution.
fn server_script(ext: &str) -> bool {
    ext.starts_with("php")
        || matches!(
            ext,
            "phtml" | "phar" | "pht" | "jsp" | "jspx" | "asp" | "aspx" | "cgi" | "shtml"
        )
}
