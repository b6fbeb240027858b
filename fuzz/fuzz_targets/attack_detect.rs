//! Every detector, on every kind of place, on any value: never panics. The whole inspection of
//! a request made of the input (path, query, form, cookies, header, JSON, text) stays within its
//! byte budget. A JSON body inspected from the contract's parsed tree reports what its text does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden_policy::attack::normalize::{normalize, Encoding};
use warden_policy::attack::{
    cmdi, code, crlf, jndi, ldap, nosql, sqli, ssrf, ssti, traversal, xss, xxe, Inspector, Place,
    Settings,
};

const PLACES: [Place; 11] = [
    Place::Path,
    Place::Query,
    Place::QueryName,
    Place::Form,
    Place::FormName,
    Place::Cookie,
    Place::CookieName,
    Place::Header,
    Place::JsonString,
    Place::JsonKey,
    Place::Body,
];

fuzz_target!(|input: (&str, u16)| {
    let (s, budget) = input;
    let v = normalize(s, Encoding::Percent);
    let mut out = Vec::new();
    for place in PLACES {
        sqli::check(&v, place, &mut out);
        xss::check(&v, place, &mut out);
        nosql::check(&v, place, &mut out);
        cmdi::check(&v, place, &mut out);
        traversal::check(&v, place, &mut out);
        ssrf::check(&v, place, &mut out);
        xxe::check(&v, place, &mut out);
        ssti::check(&v, place, &mut out);
        jndi::check(&v, place, &mut out);
        crlf::check(&v, place, &mut out);
        code::check(&v, place, &mut out);
        ldap::check(&v, place, &mut out);
    }
    // The base64 test reads the value as sent.
    let _ = code::encoded_java(s);
    assert!(out.iter().all(|h| (1..=4).contains(&h.paranoia)));
    let settings = Settings { paranoia: 4, ..Settings::default() };
    let budget = usize::from(budget);
    let mut i = Inspector::new(&settings, budget);
    i.path(s);
    i.params(s, false);
    i.params(s, true);
    i.cookies(s);
    i.header("user-agent", s);
    if !i.json(s) {
        i.text(s);
    }
    let r = i.finish();
    assert!(r.inspected <= budget);

    if let Ok(tree) = warden_openapi::strict_json::parse(s.as_bytes()) {
        let sorted = |mut r: warden_policy::attack::Report| {
            r.findings.sort_by(|a, b| (&a.location, a.rule).cmp(&(&b.location, b.rule)));
            r
        };
        let mut text = Inspector::new(&settings, 1 << 20);
        let parsed = text.json(s);
        let mut value = Inspector::new(&settings, 1 << 20);
        value.json_value(&tree);
        // The scanner's depth limit may refuse what serde_json's recursion limit allowed.
        if parsed {
            assert_eq!(sorted(value.finish()), sorted(text.finish()), "{s:?}");
        }
    }
});
