//! Per-route IP allow/deny lists. The decision itself is `warden_policy::IpRules`; this adapter picks
//! the route's rules and the resolved client address (after trusted proxies), never the raw peer of a
//! proxy hop, and never an `X-Forwarded-For` the client wrote itself.

use http::request;
use warden_policy::{IpRules, Verdict};

use crate::config::Config;
use crate::context::RequestCtx;
use crate::pipeline::Check;

pub struct IpRulesCheck {
    /// Indexed by route id; `None` where the route has no rules.
    per_route: Vec<Option<IpRules>>,
}

impl IpRulesCheck {
    pub fn new(config: &Config) -> Self {
        let per_route = config
            .routes
            .iter()
            .map(|r| {
                let rules = IpRules::new(r.ip_rules.allow.clone(), r.ip_rules.deny.clone());
                (!rules.is_empty()).then_some(rules)
            })
            .collect();
        IpRulesCheck { per_route }
    }
}

impl Check for IpRulesCheck {
    fn name(&self) -> &'static str {
        "ip_rules"
    }

    fn request_head(&self, ctx: &mut RequestCtx, _head: &mut request::Parts) -> Verdict {
        match ctx
            .route
            .and_then(|r| self.per_route.get(r.0))
            .and_then(Option::as_ref)
        {
            Some(rules) => rules.evaluate(ctx.client_ip),
            None => Verdict::Continue,
        }
    }
}
