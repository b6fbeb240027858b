//! `warden scan`: runs `warden_scan` against a live API with a progress bar, then prints or
//! writes the report and sets the exit status for CI (`--fail-on`).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use warden_scan::report;
use warden_scan::{Config, Given, User};

use crate::cli::{Failure, ScanArgs};

struct Bar(ProgressBar);

impl warden_scan::Progress for Bar {
    fn begin(&self, steps: u64) {
        self.0.set_length(steps);
    }
    fn step(&self, name: &str) {
        if !self.0.message().is_empty() {
            self.0.inc(1);
        }
        self.0.set_message(name.to_string());
    }
    fn end(&self) {
        self.0.finish_and_clear();
    }
}

fn pair<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), Failure> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k, v)),
        _ => Err(Failure::BadInput(format!(
            "--{flag} {text}: expected NAME=VALUE"
        ))),
    }
}

pub async fn run(args: ScanArgs) -> Result<(), Failure> {
    let mut config = Config::new(args.spec.clone(), args.target.clone());
    for (flag, list) in [
        ("login", &args.login),
        ("bearer", &args.bearer),
        ("api-key", &args.api_key),
    ] {
        for text in list {
            let (name, value) = pair(flag, text)?;
            let given = match flag {
                "login" => Given::Login(value.to_string()),
                "bearer" => Given::Bearer(value.to_string()),
                _ => Given::ApiKey(value.to_string()),
            };
            config.users.push(User {
                name: name.to_string(),
                given,
                admin: args.admin.iter().any(|a| a == name),
            });
        }
    }
    for a in &args.admin {
        if !config.users.iter().any(|u| &u.name == a) {
            return Err(Failure::BadInput(format!(
                "--admin {a}: no user of that name (give it with --login, --bearer or --api-key)"
            )));
        }
    }
    for s in &args.seed {
        let (k, v) = pair("seed", s)?;
        config.seeds.push((k.to_string(), v.to_string()));
    }
    config.api_key_header = args.api_key_header.clone();
    config.allow_writes = args.allow_writes;
    config.max_requests = args.max_requests;
    config.rate = args.rate.max(1);
    config.burst = args.burst.max(1);
    config.timeout = args.timeout;
    config.delay = args.delay;
    config.canary = args.canary;
    config.insecure = args.insecure;
    let ordinary = config.users.iter().filter(|u| !u.admin).count();
    if ordinary < 2 {
        eprintln!("warning: object-level checks need two ordinary users (--login/--bearer/--api-key); they will be skipped");
    }

    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("a fixed template parses")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let result = warden_scan::run(config, &Bar(bar.clone())).await;
    bar.finish_and_clear();
    let report = result.map_err(Failure::BadInput)?;

    let rendered = match args.format.as_str() {
        "json" => format!("{:#}\n", report::json(&report)),
        "sarif" => format!("{:#}\n", report::sarif(&report)),
        "junit" => report::junit(&report),
        "html" => report::html(&report),
        _ => report::text(&report),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, rendered).map_err(|e| {
                Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))
            })?;
            print!("{}", report::text(&report));
            crate::out(format!("report written to {}", path.display()));
        }
        None => print!("{rendered}"),
    }
    crate::lint::fail_on(
        args.fail_on.as_deref(),
        report.findings.iter().map(|f| f.check.severity),
    )
}
