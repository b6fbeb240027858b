//! Feeds every finished call to the alert detectors (`warden_policy::alerts`): bursts of 401s from
//! one client, one caller walking object ids into 403/404, scanner sweeps of missing paths, large
//! amounts of data to one caller. Log phase only: it never changes an answer.

use std::sync::Arc;

use warden_policy::alerts::{Call, Rules};

use crate::config::Config;
use crate::context::RequestCtx;
use crate::pipeline::{Check, Outcome};
use crate::services::Services;

pub struct AlertingCheck {
    rules: Rules,
    services: Arc<Services>,
}

impl AlertingCheck {
    pub fn new(config: &Config, services: Arc<Services>) -> AlertingCheck {
        AlertingCheck {
            rules: config.alerts.rules(),
            services,
        }
    }
}

impl Check for AlertingCheck {
    fn name(&self) -> &'static str {
        "alerting"
    }

    fn log(&self, ctx: &RequestCtx, outcome: &Outcome) {
        // Most calls can raise nothing: skip the lock for them.
        let interesting = matches!(outcome.status, 401 | 403 | 404)
            || outcome.bytes_out >= warden_policy::alerts::LARGE_RESPONSE;
        if !interesting {
            return;
        }
        let ip = ctx.client_ip.to_canonical().to_string();
        let call = Call {
            now_ms: crate::traffic::now_ms(),
            client_ip: &ip,
            consumer: ctx.identity.as_ref().map(|i| i.consumer.as_str()),
            path: &ctx.path,
            status: outcome.status,
            bytes_out: outcome.bytes_out,
            request_id: &ctx.request_id,
        };
        let alerts = &self.services.traffic.alerts;
        let raised = alerts
            .detectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&self.rules, &call);
        for a in raised {
            alerts.raise_with(
                a.kind.id(),
                &a.subject,
                serde_json::json!({
                    "count": a.count,
                    "pattern": a.pattern,
                    "window_secs": a.window_ms / 1000,
                    "route": ctx.route_name.as_deref(),
                    "sample_request_ids": a.samples,
                }),
            );
        }
    }
}
