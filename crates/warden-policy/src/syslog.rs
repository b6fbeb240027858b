//! Syslog messages for the audit trail and alerts: RFC 5424, and ArcSight CEF carried in an RFC 5424
//! frame, as SIEMs ingest it. Formatting only; sending is the gateway's.

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`. Facility 13 is "log audit".
#[allow(clippy::too_many_arguments)]
pub fn rfc5424(
    severity: u8,
    at_ms: i64,
    host: &str,
    app: &str,
    procid: u32,
    msgid: &str,
    sd: &[(&str, String)],
    msg: &str,
) -> String {
    const FACILITY: u8 = 13;
    let pri = u16::from(FACILITY) * 8 + u16::from(severity.min(7));
    let mut out = format!(
        "<{pri}>1 {} {} {} {procid} {} ",
        rfc3339_ms(at_ms),
        header_field(host),
        header_field(app),
        header_field(msgid)
    );
    if sd.is_empty() {
        out.push('-');
    } else {
        // 32473 is the private enterprise number RFC 5612 sets aside for documentation.
        out.push_str("[warden@32473");
        for (k, v) in sd {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    out.push('\\');
                }
                // A line break would split the message for line-based receivers.
                out.push(if c == '\n' || c == '\r' { ' ' } else { c });
            }
            out.push('"');
        }
        out.push(']');
    }
    out.push(' ');
    // One line per message: a newline in the text would split it for line-based receivers.
    out.extend(
        msg.chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
    );
    out
}

/// A header field: printable ASCII without spaces, at most 48 characters, `-` when empty.
fn header_field(s: &str) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(48)
        .collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

/// `CEF:0|vendor|product|version|signature id|name|severity|extension`.
pub fn cef(
    version: &str,
    signature: &str,
    name: &str,
    severity: u8,
    ext: &[(&str, String)],
) -> String {
    let head = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('|', "\\|")
            .replace(['\n', '\r'], " ")
    };
    let mut out = format!(
        "CEF:0|Warden|Warden Gateway|{}|{}|{}|{}|",
        head(version),
        head(signature),
        head(name),
        severity.min(10)
    );
    for (i, (k, v)) in ext.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '=' => out.push_str("\\="),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    out
}

/// `2026-11-24T10:00:00.123Z`.
pub fn rfc3339_ms(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000);
    let ms = at_ms.rem_euclid(1000);
    let (y, m, d) = crate::traffic::window::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_frame_escapes_structured_data() {
        let m = rfc5424(
            5,
            1_707_998_400_123,
            "gw 1",
            "warden",
            42,
            "request",
            &[("seq", "7".into()), ("note", "a\"b]c".into())],
            "{\"x\":1}\nsecond",
        );
        assert_eq!(
            m,
            "<109>1 2024-02-15T12:00:00.123Z gw1 warden 42 request [warden@32473 seq=\"7\" note=\"a\\\"b\\]c\"] {\"x\":1} second"
        );
    }

    #[test]
    fn cef_escapes_header_and_extension() {
        let m = cef(
            "0.1",
            "request:denied",
            "GET /a|b",
            5,
            &[("src", "10.0.0.1".into()), ("request", "/x?a=b\\c".into())],
        );
        assert_eq!(
            m,
            "CEF:0|Warden|Warden Gateway|0.1|request:denied|GET /a\\|b|5|src=10.0.0.1 request=/x?a\\=b\\\\c"
        );
    }

    proptest::proptest! {
        #[test]
        fn messages_stay_on_one_line(msg in "(\\PC|\n|\r){0,80}", v in "(\\PC|\n|\r){0,40}") {
            let a = rfc5424(6, 0, "h", "a", 1, "m", &[("k", v.clone())], &msg);
            let b = cef("1", "s", &msg, 3, &[("k", v)]);
            proptest::prop_assert!(!a.contains('\n') && !b.contains('\n'));
        }
    }
}
