//! Config for attack detection on requests. On and blocking by default: a config that says
//! nothing gets the default paranoia level, and turning it down is an explicit act.

use serde::Deserialize;
use warden_policy::attack::{Detector, Exclusion};
use warden_policy::pii::FieldPattern;

use super::ByteSize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttackDetection {
    pub mode: AttackMode,
    /// 1 (few false alarms; the default) to 4 (every rule).
    pub paranoia: u8,
    /// Anomaly score that refuses a request: 5 is one critical finding.
    pub threshold: u32,
    /// Bytes of one request (path, query, headers, cookies, body) inspected at most; a payload past
    /// this is not seen, so `beyond_budget` decides.
    pub max_inspect_bytes: ByteSize,
    /// What to do with a request larger than `max_inspect_bytes`, or with a body the gateway
    /// cannot read (compressed): `pass` (recorded) or `block`.
    pub beyond_budget: BeyondBudget,
    pub exclusions: Vec<AttackExclusion>,
}

impl Default for AttackDetection {
    fn default() -> Self {
        AttackDetection {
            mode: AttackMode::Block,
            paranoia: 1,
            threshold: 5,
            max_inspect_bytes: ByteSize(1 << 20),
            beyond_budget: BeyondBudget::Pass,
            exclusions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttackMode {
    /// Refuse requests whose score reaches the threshold (403).
    Block,
    /// Let them through, recording what was found: for tuning a new API before blocking.
    Detect,
    Off,
}

impl AttackMode {
    pub fn id(self) -> &'static str {
        match self {
            AttackMode::Block => "block",
            AttackMode::Detect => "detect",
            AttackMode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BeyondBudget {
    Pass,
    Block,
}

/// Per-route changes: `attack_detection: {mode: detect}` on a route being tuned, or a higher
/// paranoia level on an admin route.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteAttackDetection {
    #[serde(default)]
    pub mode: Option<AttackMode>,
    #[serde(default)]
    pub paranoia: Option<u8>,
    #[serde(default)]
    pub threshold: Option<u32>,
}

/// Detectors to skip for some fields, on some routes (all routes when none are listed).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "RawExclusion")]
pub struct AttackExclusion {
    pub exclusion: Exclusion,
    pub routes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExclusion {
    #[serde(default)]
    detectors: Vec<String>,
    fields: Vec<String>,
    #[serde(default)]
    routes: Vec<String>,
}

impl TryFrom<RawExclusion> for AttackExclusion {
    type Error = String;
    fn try_from(raw: RawExclusion) -> Result<Self, String> {
        let detectors = raw
            .detectors
            .iter()
            .map(|d| {
                Detector::parse(d).ok_or_else(|| {
                    let known: Vec<_> = Detector::ALL.iter().map(|d| d.id()).collect();
                    format!("unknown detector `{d}`; known: {}", known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.fields.is_empty() {
            return Err(
                "an exclusion needs `fields` (e.g. [\"body.query\", \"header.user-agent\"]); \
                 to stop detection on a route, set the route's attack_detection.mode"
                    .into(),
            );
        }
        let fields = raw
            .fields
            .iter()
            .map(|f| FieldPattern::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AttackExclusion {
            exclusion: Exclusion { detectors, fields },
            routes: raw.routes,
        })
    }
}

impl AttackDetection {
    pub(super) fn validate(&self) -> Option<(String, String)> {
        if !(1..=4).contains(&self.paranoia) {
            return Some((
                "attack_detection.paranoia".into(),
                "must be 1, 2, 3 or 4".into(),
            ));
        }
        if self.threshold == 0 {
            return Some((
                "attack_detection.threshold".into(),
                "must be at least 1 (5 is one critical finding); to let everything through, set mode: detect".into(),
            ));
        }
        if self.max_inspect_bytes.0 < 1024 {
            return Some((
                "attack_detection.max_inspect_bytes".into(),
                "must be at least 1KiB".into(),
            ));
        }
        None
    }
}

impl RouteAttackDetection {
    pub(super) fn validate(&self, field: &str) -> Option<(String, String)> {
        if self.paranoia.is_some_and(|p| !(1..=4).contains(&p)) {
            return Some((format!("{field}.paranoia"), "must be 1, 2, 3 or 4".into()));
        }
        if self.threshold == Some(0) {
            return Some((format!("{field}.threshold"), "must be at least 1".into()));
        }
        None
    }
}
