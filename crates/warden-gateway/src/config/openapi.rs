//! Config for enforcing an API's OpenAPI contract on a route (`routes[].openapi`). Strict by
//! default: only declared operations, declared parameters and declared properties get through,
//! and responses lose what the spec does not declare. Each relaxation is a named switch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use warden_openapi::{Contract, JsonLimits, Rule};

use super::ByteSize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteOpenApi {
    /// The OpenAPI 3.0 or 3.1 file (YAML or JSON), relative to the config's folder.
    pub spec: PathBuf,
    /// `enforce` refuses what the contract does not allow; `monitor` lets it through and records
    /// a finding for each thing it would have refused (for rolling a contract out).
    #[serde(default)]
    pub mode: ContractMode,
    /// The path the API is served under; by default the path of the spec's first `servers` URL.
    #[serde(default)]
    pub base_path: Option<String>,
    /// Query parameters the operation does not declare: refused unless this is true.
    #[serde(default)]
    pub allow_undeclared_query: bool,
    /// Responses: `filter` removes undeclared and `writeOnly` fields (the default); `strict`
    /// answers 502 instead of a response that has any; `off` passes them as they are.
    #[serde(default)]
    pub responses: ResponseMode,
    /// JSON responses larger than this are not filtered: `strict` refuses them, `filter` passes them (recorded).
    #[serde(default = "default_max_response")]
    pub max_response_bytes: ByteSize,
    /// Bounds on every JSON request body, whatever the spec says.
    #[serde(default)]
    pub json: JsonLimitsConfig,
    /// An owner rule that cannot be evaluated (a missing attribute, a type mismatch): `closed`
    /// refuses the call (the default), `open` lets it through; either way it is recorded.
    #[serde(default)]
    pub on_rule_error: RuleErrorMode,
    /// Per-operation additions and overrides, by `operationId` (or `GET /path/{template}`):
    /// what the spec's `x-warden` extension says, for specs you do not own.
    #[serde(default)]
    pub operations: BTreeMap<String, OperationPolicy>,
    /// The compiled contract, filled in at load.
    #[serde(skip)]
    pub compiled: Option<Compiled>,
}

fn default_max_response() -> ByteSize {
    ByteSize(8 << 20)
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContractMode {
    #[default]
    Enforce,
    Monitor,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    #[default]
    Filter,
    Strict,
    Off,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleErrorMode {
    #[default]
    Closed,
    Open,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JsonLimitsConfig {
    pub max_depth: usize,
    pub max_array_items: usize,
    pub max_string_length: usize,
}

impl Default for JsonLimitsConfig {
    fn default() -> Self {
        let d = JsonLimits::default();
        JsonLimitsConfig {
            max_depth: d.max_depth,
            max_array_items: d.max_array_items,
            max_string_length: d.max_string_chars,
        }
    }
}

impl JsonLimitsConfig {
    pub fn limits(&self) -> JsonLimits {
        JsonLimits {
            max_depth: self.max_depth,
            max_array_items: self.max_array_items,
            max_string_chars: self.max_string_length,
        }
    }
}

/// What the config adds to an operation (replacing what `x-warden` says for the same key).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperationPolicy {
    /// The caller needs one of these roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The caller needs all of these scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// CEL over `path`, `query`, `headers`, `body` and `caller`; must hold for the call to go on.
    #[serde(default)]
    pub owner: Option<String>,
    /// CEL that may also read `response`; a response where it does not hold becomes a 404.
    #[serde(default)]
    pub response_owner: Option<String>,
    #[serde(default)]
    pub exempt_roles: Option<Vec<String>>,
}

/// A compiled contract. Compared by identity: two loads of one file are two contracts.
#[derive(Debug, Clone)]
pub struct Compiled(pub Arc<Contract>);

impl PartialEq for Compiled {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl RouteOpenApi {
    /// Loads the spec (or takes it from `cache`, for routes sharing one) and applies the
    /// per-operation policies. Errors: (field, message).
    pub fn compile(
        &mut self,
        field: &str,
        cache: &mut Vec<(PathBuf, Option<String>, Arc<Contract>)>,
    ) -> Result<(), CompileError> {
        let j = self.json;
        if j.max_depth == 0 || j.max_array_items == 0 || j.max_string_length == 0 {
            return Err(CompileError::Field(
                format!("{field}.json"),
                "limits must be greater than zero".into(),
            ));
        }
        let key = (self.spec.clone(), self.base_path.clone());
        let shared = self.operations.is_empty().then(|| {
            cache
                .iter()
                .find(|(p, b, _)| (p, b) == (&key.0, &key.1))
                .map(|c| c.2.clone())
        });
        if let Some(Some(c)) = shared {
            self.compiled = Some(Compiled(c));
            return Ok(());
        }
        let mut contract = Contract::load(&self.spec, self.base_path.as_deref())
            .map_err(|e| CompileError::Spec(format!("{field}.spec"), Box::new(e)))?;
        for (name, policy) in &self.operations {
            let ops: Vec<usize> = contract
                .operations
                .iter()
                .enumerate()
                .filter(|(_, o)| {
                    o.id == *name || format!("{} {}", o.method, o.template.text) == *name
                })
                .map(|(i, _)| i)
                .collect();
            if ops.is_empty() {
                let known: Vec<&str> = contract
                    .operations
                    .iter()
                    .map(|o| o.id.as_str())
                    .take(20)
                    .collect();
                return Err(CompileError::Field(
                    format!("{field}.operations.{name}"),
                    format!(
                        "the spec has no operation `{name}`; it has: {}",
                        known.join(", ")
                    ),
                ));
            }
            let rule = |src: &Option<String>, key: &str, response: bool| {
                src.as_deref()
                    .map(|s| Rule::compile(s, response))
                    .transpose()
                    .map_err(|m| CompileError::Field(format!("{field}.operations.{name}.{key}"), m))
            };
            for i in ops {
                let op = &mut contract.operations[i];
                if let Some(r) = &policy.roles {
                    op.roles = r.clone();
                }
                if let Some(s) = &policy.scopes {
                    op.scopes = s.clone();
                }
                if let Some(e) = &policy.exempt_roles {
                    op.exempt_roles = e.clone();
                }
                if policy.owner.is_some() {
                    op.owner = rule(&policy.owner, "owner", false)?;
                }
                if policy.response_owner.is_some() {
                    op.response_owner = rule(&policy.response_owner, "response_owner", true)?;
                }
            }
        }
        let contract = Arc::new(contract);
        if self.operations.is_empty() {
            cache.push((key.0, key.1, contract.clone()));
        }
        self.compiled = Some(Compiled(contract));
        Ok(())
    }
}

/// Why a route's contract could not be compiled.
#[derive(Debug)]
pub enum CompileError {
    /// A config field is wrong: (field, message).
    Field(String, String),
    /// The spec itself is wrong (it names its own file, pointer and line), brought in by `field`.
    Spec(String, Box<warden_openapi::SpecError>),
}
