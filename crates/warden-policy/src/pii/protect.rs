//! What to do with personal data found in a response: the policy (rules in order, then defaults),
//! and its application to a JSON body, a text body or a header value.
//!
//! Defaults, when no rule matches: a high-confidence finding of a verified class (card, resident
//! id, IBAN, private key, vendor API key, secret field) is masked; anything else of medium or high
//! confidence is reported but left as is; low confidence is ignored unless a rule names the class.

use std::ops::Range;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::detect::{self, Confidence, DataClass, KeyHint, Match};
use crate::json::{self, Edit, Event, JsonError, Scalar, Seg};

/// What happens to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace all but the last `keep_last` letters and digits with `*` (separators kept).
    Mask { keep_last: usize },
    /// A keyed pseudonym (HMAC-SHA256): equal values give equal pseudonyms, so joins still work.
    Hash,
    /// Remove the field (or the matched text).
    Drop,
    /// AES-256-GCM under the active key; an authorised back office can decrypt with the key id.
    Encrypt,
    /// Leave it; the finding is still recorded.
    Allow,
    /// Leave it and record the finding as an alert.
    Alert,
}

impl Action {
    pub fn id(&self) -> &'static str {
        match self {
            Action::Mask { .. } => "mask",
            Action::Hash => "hash",
            Action::Drop => "drop",
            Action::Encrypt => "encrypt",
            Action::Allow => "allow",
            Action::Alert => "alert",
        }
    }

    fn changes(&self) -> bool {
        !matches!(self, Action::Allow | Action::Alert)
    }
}

/// A field path pattern: a bare name (`email`) matches that key anywhere; a path (`users[*].email`,
/// `*.card.number`, `**.ssn`) matches whole paths, with `*` for one key, `[*]` for any index and
/// `**` for any number of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPattern {
    raw: String,
    steps: Option<Vec<Step>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    AnyKey,
    AnyIndex,
    Deep,
}

impl FieldPattern {
    pub fn parse(raw: &str) -> Result<FieldPattern, String> {
        let body = raw.trim().trim_start_matches("$.").trim_start_matches('$');
        if body.is_empty() {
            return Err(format!("field pattern `{raw}` is empty"));
        }
        if !body.contains(['.', '[', '*']) {
            return Ok(FieldPattern {
                raw: raw.to_string(),
                steps: None,
            });
        }
        let mut steps = Vec::new();
        for part in body.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            match name {
                "" if !rest.is_empty() => {}
                "" => return Err(format!("field pattern `{raw}` has an empty step")),
                "*" => steps.push(Step::AnyKey),
                "**" => steps.push(Step::Deep),
                n => steps.push(Step::Key(n.to_ascii_lowercase())),
            }
            while !rest.is_empty() {
                let close = rest
                    .find(']')
                    .ok_or_else(|| format!("field pattern `{raw}`: `[` without `]`"))?;
                match &rest[1..close] {
                    "*" | "" => steps.push(Step::AnyIndex),
                    n if n.parse::<usize>().is_ok() => steps.push(Step::AnyIndex),
                    _ => {
                        return Err(format!(
                            "field pattern `{raw}`: only `[*]` or a number may go in brackets"
                        ))
                    }
                }
                rest = &rest[close + 1..];
            }
        }
        Ok(FieldPattern {
            raw: raw.to_string(),
            steps: Some(steps),
        })
    }

    pub fn matches(&self, path: &[Seg<'_>]) -> bool {
        match &self.steps {
            None => {
                path.iter().rev().find_map(|s| match s {
                    Seg::Key(k) => Some(k.eq_ignore_ascii_case(&self.raw)),
                    Seg::Index(_) => None,
                }) == Some(true)
            }
            Some(steps) => steps_match(steps, path),
        }
    }
}

fn steps_match(steps: &[Step], path: &[Seg<'_>]) -> bool {
    match (steps.first(), path.first()) {
        (None, None) => true,
        (Some(Step::Deep), _) => {
            (0..=path.len()).any(|skip| steps_match(&steps[1..], &path[skip..]))
        }
        (Some(_), None) | (None, Some(_)) => false,
        (Some(step), Some(seg)) => {
            let ok = match (step, seg) {
                (Step::Key(k), Seg::Key(s)) => s.eq_ignore_ascii_case(k),
                (Step::AnyKey, Seg::Key(_)) => true,
                (Step::AnyIndex, Seg::Index(_)) => true,
                _ => false,
            };
            ok && steps_match(&steps[1..], &path[1..])
        }
    }
}

/// One policy rule; the first rule that matches a finding decides its action.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Empty: any class. With `fields` set and no classes, the rule applies to every value at those
    /// fields whether or not a detector fired (e.g. always drop `internal_notes`).
    pub classes: Vec<DataClass>,
    pub fields: Vec<FieldPattern>,
    /// Route names; empty: every route.
    pub routes: Vec<String>,
    pub action: Action,
    /// Consumers holding any of these scopes see the original value.
    pub allow_scopes: Vec<String>,
}

/// Secret keys for the hash and encrypt actions.
#[derive(Clone, Default)]
pub struct Keys {
    pub hash: Option<Vec<u8>>,
    /// (key id, 32-byte key) of the key new values are encrypted under.
    pub encryption: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Keys")
            .field("hash", &self.hash.as_ref().map(|_| "<set>"))
            .field("encryption", &self.encryption.as_ref().map(|(kid, _)| kid))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// For high-confidence findings of verified classes that no rule covers.
    pub default_verified: Action,
    /// For other findings of at least medium confidence that no rule covers.
    pub default_other: Action,
    pub keys: Keys,
    /// Birth years after this are not real (identity numbers).
    pub max_year: u32,
    /// JSON nesting beyond this is not inspected: the body is treated as unparseable.
    pub max_depth: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: Vec::new(),
            default_verified: Action::Mask { keep_last: 4 },
            default_other: Action::Alert,
            keys: Keys::default(),
            max_year: detect::current_year(),
            max_depth: 64,
        }
    }
}

/// A recorded detection, for the audit trail, metrics and inventory. Never holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The class found, or `None` for a field rule that applies regardless of content.
    pub class: Option<DataClass>,
    /// Where: `body.users[0].card`, `header.x-phone`, `body` (text bodies).
    pub location: String,
    pub action: &'static str,
    pub confidence: Confidence,
}

impl Finding {
    pub fn class_id(&self) -> &'static str {
        self.class.map_or("field", DataClass::id)
    }
}

/// The result of protecting one body or value.
#[derive(Debug, Default)]
pub struct Protected {
    /// The rewritten text; `None` when nothing had to change (send the original bytes).
    pub body: Option<String>,
    pub findings: Vec<Finding>,
}

/// What becomes of one leaf.
enum LeafEdit {
    Keep,
    Replace(Edit),
    /// Remove the member that holds it (an array item becomes `null`: see `protect_json_with`).
    RemoveMember,
}

/// Who is asking and where, for rules scoped by route and consumer.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    pub route: &'a str,
    pub scopes: &'a [String],
}

#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("the {0} action needs a key, and none is configured")]
    MissingKey(&'static str),
    #[error("encryption failed")]
    Crypto,
}

impl Policy {
    fn rule_for(
        &self,
        aud: Audience<'_>,
        class: Option<DataClass>,
        path: Option<&[Seg<'_>]>,
    ) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            (r.routes.is_empty() || r.routes.iter().any(|n| n == aud.route))
                && match class {
                    Some(c) => r.classes.is_empty() || r.classes.contains(&c),
                    None => r.classes.is_empty() && !r.fields.is_empty(),
                }
                && (r.fields.is_empty()
                    || path.is_some_and(|p| r.fields.iter().any(|f| f.matches(p))))
        })
    }

    /// The action for one detection, or `None` when it is not worth a finding.
    fn decide(&self, aud: Audience<'_>, m: &Match, path: Option<&[Seg<'_>]>) -> Option<Action> {
        let action = match self.rule_for(aud, Some(m.class), path) {
            Some(rule) => {
                // A rule naming no class acts only on what the defaults would report.
                if rule.classes.is_empty() && m.confidence == Confidence::Low {
                    return None;
                }
                if rule.allow_scopes.iter().any(|s| aud.scopes.contains(s)) {
                    Action::Allow
                } else {
                    rule.action.clone()
                }
            }
            None if m.class.verified() && m.confidence == Confidence::High => {
                self.default_verified.clone()
            }
            None if m.confidence >= Confidence::Medium => self.default_other.clone(),
            None => return None,
        };
        Some(action)
    }

    /// Protects a JSON body. Errors when the body is not JSON (the caller decides what then).
    pub fn protect_json(&self, text: &str, aud: Audience<'_>) -> Result<Protected, ProtectError> {
        self.protect_json_with(text, aud, &mut json::KeepAll, None)
    }

    /// [`Policy::protect_json`] in the same pass as `members`, which removes the members it
    /// decides against (from `root` down): their values are neither scanned nor reported.
    pub fn protect_json_with<M: json::Members>(
        &self,
        text: &str,
        aud: Audience<'_>,
        members: &mut M,
        root: Option<M::Node>,
    ) -> Result<Protected, ProtectError> {
        let mut edits = Vec::new();
        let mut findings = Vec::new();
        let mut failed: Option<ProtectError> = None;
        let mut matches = Vec::new();
        let walked = json::walk_members(text, self.max_depth, members, root, |e| {
            let Event::Leaf {
                path,
                value,
                span,
                member,
            } = e
            else {
                return false;
            };
            if failed.is_some() {
                return false;
            }
            let location = || format!("body.{path}");
            // What a leaf's edit turned out to be: a member to remove goes back to the walk,
            // which takes out runs of neighbours with their commas right.
            let mut apply = |edit: Result<LeafEdit, ProtectError>| match edit {
                Ok(LeafEdit::Keep) => false,
                Ok(LeafEdit::Replace(e)) => {
                    edits.push(e);
                    false
                }
                Ok(LeafEdit::RemoveMember) if member.is_some() => true,
                Ok(LeafEdit::RemoveMember) => {
                    edits.push(Edit {
                        span: span.clone(),
                        replacement: "null".into(),
                    });
                    false
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            };
            // Field rules first: they act whatever the value holds.
            if let Some(rule) = self.rule_for(aud, None, Some(path.0)) {
                let action = if rule.allow_scopes.iter().any(|s| aud.scopes.contains(s)) {
                    Action::Allow
                } else {
                    rule.action.clone()
                };
                if matches!(value, Scalar::Null) {
                    return false;
                }
                let whole = match value {
                    Scalar::Str(s) => s.to_string(),
                    Scalar::Num(n) => n.to_string(),
                    _ => String::new(),
                };
                findings.push(Finding {
                    class: None,
                    location: location(),
                    action: action.id(),
                    confidence: Confidence::High,
                });
                return apply(self.leaf_edit(&action, None, &whole, span.clone()));
            }
            let hint = KeyHint::cached(path.last_key());
            matches.clear();
            let original: &str = match value {
                Scalar::Str(s) => {
                    detect::scan_str(s, hint, self.max_year, &mut matches);
                    s
                }
                Scalar::Num(n) => {
                    detect::scan_number(n, hint, self.max_year, &mut matches);
                    n
                }
                _ => return false,
            };
            if matches.is_empty() {
                return false;
            }
            let decided = self.resolve(aud, &matches, Some(path.0));
            if decided.is_empty() {
                return false;
            }
            for (m, action) in &decided {
                findings.push(Finding {
                    class: Some(m.class),
                    location: location(),
                    action: action.id(),
                    confidence: m.confidence,
                });
            }
            let whole_value = decided.len() == 1 && decided[0].0.range == (0..original.len());
            if whole_value {
                let (m, action) = &decided[0];
                apply(self.leaf_edit(action, Some(m.class), original, span.clone()))
            } else if decided.iter().any(|(_, a)| a.changes()) {
                let rewritten = self.rewrite(original, &decided).map(|new| {
                    LeafEdit::Replace(Edit {
                        span: span.clone(),
                        replacement: json::quote(&new),
                    })
                });
                apply(rewritten)
            } else {
                false
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        edits.extend(walked.removed.into_iter().map(|span| Edit {
            span,
            replacement: String::new(),
        }));
        let body = (!edits.is_empty()).then(|| json::splice(text, edits));
        Ok(Protected { body, findings })
    }

    /// Protects a text body (or a header value) scanned as one string.
    pub fn protect_text(
        &self,
        text: &str,
        location: &str,
        aud: Audience<'_>,
    ) -> Result<Protected, ProtectError> {
        let mut matches = Vec::new();
        detect::scan_str(text, KeyHint::default(), self.max_year, &mut matches);
        let decided = self.resolve(aud, &matches, None);
        let findings = decided
            .iter()
            .map(|(m, a)| Finding {
                class: Some(m.class),
                location: location.to_string(),
                action: a.id(),
                confidence: m.confidence,
            })
            .collect();
        let body = if decided.iter().any(|(_, a)| a.changes()) {
            Some(self.rewrite(text, &decided)?)
        } else {
            None
        };
        Ok(Protected { body, findings })
    }

    /// Decides each match, dropping overlaps (the first, longest match wins).
    fn resolve(
        &self,
        aud: Audience<'_>,
        matches: &[Match],
        path: Option<&[Seg<'_>]>,
    ) -> Vec<(Match, Action)> {
        let mut sorted: Vec<&Match> = matches.iter().collect();
        sorted.sort_by_key(|m| (m.range.start, std::cmp::Reverse(m.range.end)));
        let mut out: Vec<(Match, Action)> = Vec::new();
        let mut covered = 0;
        for m in sorted {
            if m.range.start < covered {
                continue;
            }
            if let Some(action) = self.decide(aud, m, path) {
                covered = m.range.end;
                out.push((m.clone(), action));
            }
        }
        out
    }

    /// The edit for a leaf whose whole value is one finding (or a field rule). Dropping removes
    /// the member that holds it, or, for an array item, leaves `null` in its place.
    fn leaf_edit(
        &self,
        action: &Action,
        class: Option<DataClass>,
        value: &str,
        span: Range<usize>,
    ) -> Result<LeafEdit, ProtectError> {
        let replacement = match action {
            Action::Allow | Action::Alert => return Ok(LeafEdit::Keep),
            Action::Drop => return Ok(LeafEdit::RemoveMember),
            other => self.transform(other, class, value)?,
        };
        Ok(LeafEdit::Replace(Edit {
            span,
            replacement: json::quote(&replacement),
        }))
    }

    /// Applies each match's action inside `s`, back to front so earlier ranges stay valid.
    fn rewrite(&self, s: &str, decided: &[(Match, Action)]) -> Result<String, ProtectError> {
        let mut out = s.to_string();
        for (m, action) in decided.iter().rev() {
            let piece = &s[m.range.clone()];
            let replacement = match action {
                Action::Allow | Action::Alert => continue,
                Action::Drop => "[REDACTED]".to_string(),
                other => self.transform(other, Some(m.class), piece)?,
            };
            out.replace_range(m.range.clone(), &replacement);
        }
        Ok(out)
    }

    fn transform(
        &self,
        action: &Action,
        class: Option<DataClass>,
        value: &str,
    ) -> Result<String, ProtectError> {
        Ok(match action {
            Action::Mask { keep_last } => mask(class, value, *keep_last),
            Action::Hash => {
                let key = self
                    .keys
                    .hash
                    .as_ref()
                    .ok_or(ProtectError::MissingKey("hash"))?;
                pseudonym(key, class, value)
            }
            Action::Encrypt => {
                let (kid, key) = self
                    .keys
                    .encryption
                    .as_ref()
                    .ok_or(ProtectError::MissingKey("encrypt"))?;
                encrypt(kid, key, value)?
            }
            Action::Drop => "[REDACTED]".into(),
            Action::Allow | Action::Alert => value.to_string(),
        })
    }
}

/// Masks letters and digits, keeping the last `keep_last` of them and every separator, so the
/// result still reads as what it was (`************1111`, `***-**-6789`). Secrets and keys are
/// replaced whole: their length and tail are worth something to an attacker. An email keeps its
/// first letter and its domain.
pub fn mask(class: Option<DataClass>, value: &str, keep_last: usize) -> String {
    match class {
        Some(DataClass::Secret | DataClass::PrivateKey | DataClass::ApiKey | DataClass::Jwt) => {
            return "[REDACTED]".into()
        }
        Some(DataClass::Email) => {
            if let Some((local, domain)) = value.rsplit_once('@') {
                let first = local.chars().next().map(String::from).unwrap_or_default();
                return format!("{first}***@{domain}");
            }
        }
        _ => {}
    }
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let keep = keep_last.min(total / 2);
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen > total - keep {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

/// `pii:<class>:<hex>`: HMAC-SHA256 over the class and the value, truncated to 96 bits.
pub fn pseudonym(key: &[u8], class: Option<DataClass>, value: &str) -> String {
    let class = class.map_or("field", DataClass::id);
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(class.as_bytes());
    ctx.update(b":");
    ctx.update(value.as_bytes());
    let tag = ctx.sign();
    let hex: String = tag.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("pii:{class}:{hex}")
}

const ENC_PREFIX: &str = "enc:v1:";

fn aad(kid: &str) -> Vec<u8> {
    format!("warden-pii:v1:{kid}").into_bytes()
}

/// `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, AES-256-GCM with the key id as
/// associated data, so a value cannot be passed off as encrypted under another key.
pub fn encrypt(kid: &str, key: &[u8], value: &str) -> Result<String, ProtectError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| ProtectError::Crypto)?;
    let key = LessSafeKey::new(unbound);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| ProtectError::Crypto)?;
    let mut buf = value.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(kid)),
        &mut buf,
    )
    .map_err(|_| ProtectError::Crypto)?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&buf);
    Ok(format!(
        "{ENC_PREFIX}{kid}:{}",
        URL_SAFE_NO_PAD.encode(blob)
    ))
}

/// The key id an encrypted value names, to pick the key for [`decrypt`].
pub fn encrypted_key_id(token: &str) -> Option<&str> {
    token
        .strip_prefix(ENC_PREFIX)?
        .split_once(':')
        .map(|(kid, _)| kid)
}

/// Reverses [`encrypt`] given the right key; fails on any tampering.
pub fn decrypt(token: &str, key: &[u8]) -> Result<String, ProtectError> {
    let rest = token.strip_prefix(ENC_PREFIX).ok_or(ProtectError::Crypto)?;
    let (kid, b64) = rest.split_once(':').ok_or(ProtectError::Crypto)?;
    let blob = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| ProtectError::Crypto)?;
    if blob.len() < NONCE_LEN + 16 {
        return Err(ProtectError::Crypto);
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| ProtectError::Crypto)?;
    let key = LessSafeKey::new(unbound);
    let mut buf = sealed.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| ProtectError::Crypto)?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad(kid)), &mut buf)
        .map_err(|_| ProtectError::Crypto)?;
    String::from_utf8(plain.to_vec()).map_err(|_| ProtectError::Crypto)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11010519491231002X";
    const CARD: &str = "4111111111111111";

    fn aud() -> Audience<'static> {
        Audience {
            route: "api",
            scopes: &[],
        }
    }

    fn run(policy: &Policy, text: &str) -> (String, Vec<Finding>) {
        let p = policy.protect_json(text, aud()).unwrap();
        (p.body.unwrap_or_else(|| text.to_string()), p.findings)
    }

    #[test]
    fn defaults_mask_verified_and_report_the_rest() {
        let text = format!(
            r#"{{"id": 7, "card": "{CARD}", "note": "id {ID} ok", "email": "jo@example.com", "password_hash": "$2b$x", "bad": "4111111111111112"}}"#
        );
        let (out, findings) = run(&Policy::default(), &text);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["card"], "************1111");
        assert_eq!(v["note"], "id **************002X ok");
        assert_eq!(
            v["email"], "jo@example.com",
            "reported, not masked by default"
        );
        assert_eq!(v["password_hash"], "[REDACTED]");
        assert_eq!(v["bad"], "4111111111111112", "near miss untouched");
        assert_eq!(v["id"], 7);
        let summary: Vec<_> = findings
            .iter()
            .map(|f| (f.class_id(), f.location.as_str(), f.action))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("card", "body.card", "mask"),
                ("cn_id", "body.note", "mask"),
                ("email", "body.email", "alert"),
                ("secret", "body.password_hash", "mask"),
            ]
        );
    }

    #[test]
    fn unchanged_bodies_are_not_rewritten() {
        let p = Policy::default()
            .protect_json(r#"{"n": 1.10, "s": "plain"}"#, aud())
            .unwrap();
        assert!(p.body.is_none() && p.findings.is_empty());
    }

    #[test]
    fn rules_pick_actions_by_class_field_route_and_scope() {
        let mut policy = Policy {
            keys: Keys {
                hash: Some(vec![7; 32]),
                encryption: Some(("k1".into(), vec![9; 32])),
            },
            ..Policy::default()
        };
        policy.rules = vec![
            Rule {
                classes: vec![DataClass::Email],
                fields: vec![],
                routes: vec![],
                action: Action::Hash,
                allow_scopes: vec![],
            },
            Rule {
                classes: vec![DataClass::Card],
                fields: vec![],
                routes: vec!["api".into()],
                action: Action::Encrypt,
                allow_scopes: vec!["pii:read".into()],
            },
            Rule {
                classes: vec![],
                fields: vec![FieldPattern::parse("users[*].internal").unwrap()],
                routes: vec![],
                action: Action::Drop,
                allow_scopes: vec![],
            },
        ];
        let text = format!(
            r#"{{"users": [{{"email": "a@b.io", "card": "{CARD}", "internal": "x", "keep": 1}}]}}"#
        );
        let (out, _) = run(&policy, &text);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let u = &v["users"][0];
        assert_eq!(
            u["email"],
            pseudonym(&[7; 32], Some(DataClass::Email), "a@b.io")
        );
        let enc = u["card"].as_str().unwrap();
        assert_eq!(encrypted_key_id(enc), Some("k1"));
        assert_eq!(decrypt(enc, &[9; 32]).unwrap(), CARD);
        assert!(decrypt(enc, &[8; 32]).is_err());
        assert!(u.get("internal").is_none());
        assert_eq!(u["keep"], 1);
        // The same card for a consumer with pii:read, and on another route (default: mask).
        let scopes = vec!["pii:read".to_string()];
        let p = policy
            .protect_json(
                &text,
                Audience {
                    route: "api",
                    scopes: &scopes,
                },
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(p.body.as_deref().unwrap()).unwrap();
        assert_eq!(v["users"][0]["card"], CARD);
        let p = policy
            .protect_json(
                &text,
                Audience {
                    route: "other",
                    scopes: &[],
                },
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(p.body.as_deref().unwrap()).unwrap();
        assert_eq!(v["users"][0]["card"], "************1111");
    }

    /// Dropped neighbours: each took one comma on its own, so the last of a run at an object's
    /// end once overlapped the one before it and was kept.
    #[test]
    fn neighbouring_drops_all_go() {
        let policy = Policy {
            rules: vec![Rule {
                classes: vec![],
                fields: ["secret_1", "secret_2", "secret_3", "secret_4"]
                    .iter()
                    .map(|f| FieldPattern::parse(f).unwrap())
                    .collect(),
                routes: vec![],
                action: Action::Drop,
                allow_scopes: vec![],
            }],
            ..Policy::default()
        };
        let (out, _) = run(
            &policy,
            r#"{"a": 1, "secret_1": "x", "secret_2": "y", "list": ["s", {"secret_3": 3, "secret_4": 4}]}"#,
        );
        assert_eq!(out, r#"{"a": 1, "list": ["s", {}]}"#);
        let (out, _) = run(&policy, r#"{"secret_1": "x", "secret_2": "y"}"#);
        assert_eq!(out, "{}");
    }

    #[test]
    fn missing_key_is_an_error_not_a_leak() {
        let mut policy = Policy::default();
        policy.rules.push(Rule {
            classes: vec![DataClass::Card],
            fields: vec![],
            routes: vec![],
            action: Action::Hash,
            allow_scopes: vec![],
        });
        let text = format!(r#"{{"card": "{CARD}"}}"#);
        assert!(matches!(
            policy.protect_json(&text, aud()),
            Err(ProtectError::MissingKey("hash"))
        ));
    }

    #[test]
    fn text_and_numbers() {
        let p = Policy::default()
            .protect_text(&format!("card {CARD} and id {ID}"), "body", aud())
            .unwrap();
        assert_eq!(
            p.body.unwrap(),
            "card ************1111 and id **************002X"
        );
        let (out, _) = run(&Policy::default(), &format!(r#"{{"pan": {CARD}}}"#));
        assert_eq!(out, r#"{"pan": "************1111"}"#);
    }

    #[test]
    fn field_patterns() {
        let p = |s: &str| FieldPattern::parse(s).unwrap();
        let path = [
            Seg::Key("users".into()),
            Seg::Index(3),
            Seg::Key("Card".into()),
            Seg::Key("number".into()),
        ];
        assert!(p("number").matches(&path));
        assert!(p("users[*].card.number").matches(&path));
        assert!(p("$.users[].*.number").matches(&path));
        assert!(p("**.number").matches(&path));
        assert!(p("users.**").matches(&path));
        assert!(!p("card").matches(&path));
        assert!(!p("users.card.number").matches(&path));
        assert!(FieldPattern::parse("a[x]").is_err());
        assert!(FieldPattern::parse("").is_err());
    }

    #[test]
    fn masks_keep_shape() {
        assert_eq!(
            mask(Some(DataClass::Card), "4111 1111 1111 1111", 4),
            "**** **** **** 1111"
        );
        assert_eq!(
            mask(Some(DataClass::UsSsn), "123-45-6789", 4),
            "***-**-6789"
        );
        assert_eq!(mask(Some(DataClass::Email), "jane@x.org", 4), "j***@x.org");
        assert_eq!(mask(Some(DataClass::Secret), "hunter2", 4), "[REDACTED]");
        // Never more than half is kept, whatever keep_last says.
        assert_eq!(mask(None, "ab", 4), "*b");
    }

    proptest::proptest! {
        #[test]
        fn output_is_json_and_never_holds_a_masked_card(prefix in "([a-z]{0,10}[ :=])?", n in 0usize..3) {
            let cards: Vec<&str> = [CARD; 2].into_iter().take(n).collect();
            let text = serde_json::json!({"a": format!("{prefix}{CARD}"), "b": cards}).to_string();
            let p = Policy::default().protect_json(&text, aud()).unwrap();
            let out = p.body.unwrap_or(text);
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
            proptest::prop_assert!(!out.contains(CARD));
        }
    }
}
