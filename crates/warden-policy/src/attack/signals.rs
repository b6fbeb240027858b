//! Which detectors have anything to look at in a value, found in one pass: a byte table for the
//! characters a detector needs (a quote for SQL, `<` for markup, `$` for NoSQL operators) and one
//! Aho-Corasick automaton for the words (`union`, `../`, `://`, `{{`, `jndi`...). A detector none
//! of whose triggers occur is skipped: most values of ordinary traffic wake up none.

use std::sync::OnceLock;

use aho_corasick::automaton::Automaton;
use aho_corasick::automaton::StateID;
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, Anchored, MatchKind, StartKind};

use super::Detector;

fn bit(d: Detector) -> u32 {
    1 << (d as u32)
}

/// Bits past the detectors' in a [`triggered`] mask: a word list some detector would search the
/// value for anyway, found by the same walk. Valid for the text the walk read (the value's
/// lower-case view); a detector reading another view searches that itself.
pub const CUE_SQL_PROBE: u32 = 1 << 16;
pub const CUE_SQL_KEYWORD: u32 = 1 << 17;
pub const CUE_POWERSHELL: u32 = 1 << 18;
pub const CUE_JSFUCK: u32 = 1 << 19;

fn cue_sets() -> [(&'static WordSet, u32); 4] {
    [
        (&super::sqli::PROBES, CUE_SQL_PROBE),
        (&super::sqli::KEYWORDS, CUE_SQL_KEYWORD),
        (&super::cmdi::POWERSHELL, CUE_POWERSHELL),
        (&super::xss::JSFUCK_WORDS, CUE_JSFUCK),
    ]
}

/// Word triggers and the detectors they wake.
const WORDS: &[(&str, Detector)] = &[
    ("/*", Detector::Sqli),
    ("--", Detector::Sqli),
    ("::", Detector::Sqli),
    ("sqlite_", Detector::Sqli),
    ("pg_", Detector::Sqli),
    ("sys", Detector::Sqli),
    ("mysql.", Detector::Sqli),
    ("extractvalue", Detector::Sqli),
    ("updatexml", Detector::Sqli),
    ("group_concat", Detector::Sqli),
    ("json_extract", Detector::Sqli),
    ("unistr", Detector::Sqli),
    ("database(", Detector::Sqli),
    ("db_name", Detector::Sqli),
    ("_name(", Detector::Sqli),
    ("_user(", Detector::Sqli),
    ("version(", Detector::Sqli),
    ("connection_id", Detector::Sqli),
    ("last_insert_id", Detector::Sqli),
    ("row_count", Detector::Sqli),
    ("sp_", Detector::Sqli),
    ("utl_", Detector::Sqli),
    ("dbms_", Detector::Sqli),
    ("ctxsys", Detector::Sqli),
    ("#", Detector::Sqli),
    ("lo_import(", Detector::Sqli),
    ("lo_export(", Detector::Sqli),
    ("lo_get(", Detector::Sqli),
    ("procedure analyse", Detector::Sqli),
    ("name_const(", Detector::Sqli),
    ("declare @", Detector::Sqli),
    ("exec master.", Detector::Sqli),
    ("exec(@", Detector::Sqli),
    ("exec (@", Detector::Sqli),
    ("||", Detector::Sqli),
    ("&&", Detector::Sqli),
    ("union", Detector::Sqli),
    ("select", Detector::Sqli),
    ("sleep", Detector::Sqli),
    ("benchmark", Detector::Sqli),
    ("waitfor", Detector::Sqli),
    ("outfile", Detector::Sqli),
    ("dumpfile", Detector::Sqli),
    ("load_file", Detector::Sqli),
    ("information_schema", Detector::Sqli),
    ("@@", Detector::Sqli),
    ("pg_", Detector::Sqli),
    ("dbms_", Detector::Sqli),
    ("xp_", Detector::Sqli),
    ("exec", Detector::Sqli),
    ("drop", Detector::Sqli),
    ("insert", Detector::Sqli),
    ("delete", Detector::Sqli),
    ("update", Detector::Sqli),
    ("having", Detector::Sqli),
    ("0x", Detector::Sqli),
    ("char(", Detector::Sqli),
    ("concat", Detector::Sqli),
    (" or ", Detector::Sqli),
    (" and ", Detector::Sqli),
    (" xor ", Detector::Sqli),
    ("like", Detector::Sqli),
    ("procedure", Detector::Sqli),
    ("order by", Detector::Sqli),
    ("group by", Detector::Sqli),
    // The functions blind injections build their questions from (`and((ascii(substring(...`),
    // which need no quote or comment to reach an unquoted number.
    ("and(", Detector::Sqli),
    ("or(", Detector::Sqli),
    ("ascii", Detector::Sqli),
    ("substr", Detector::Sqli),
    ("coalesce", Detector::Sqli),
    ("ifnull", Detector::Sqli),
    ("nullif", Detector::Sqli),
    ("strcmp", Detector::Sqli),
    ("find_in_set", Detector::Sqli),
    ("make_set", Detector::Sqli),
    ("xmltype", Detector::Sqli),
    ("iif(", Detector::Sqli),
    ("if(", Detector::Sqli),
    ("mid(", Detector::Sqli),
    ("hex(", Detector::Sqli),
    ("ord(", Detector::Sqli),
    ("cast(", Detector::Sqli),
    ("convert(", Detector::Sqli),
    ("instr(", Detector::Sqli),
    ("locate(", Detector::Sqli),
    ("lpad(", Detector::Sqli),
    ("rpad(", Detector::Sqli),
    ("md5(", Detector::Sqli),
    ("sha1(", Detector::Sqli),
    ("elt(", Detector::Sqli),
    ("javascript", Detector::Xss),
    ("vbscript", Detector::Xss),
    ("livescript", Detector::Xss),
    ("data:", Detector::Xss),
    ("expression", Detector::Xss),
    ("script", Detector::Xss),
    ("document.", Detector::Xss),
    ("window.", Detector::Xss),
    ("binding", Detector::Xss),
    ("url(", Detector::Xss),
    ("<!--", Detector::Xss),
    ("alert(", Detector::Xss),
    ("prompt(", Detector::Xss),
    ("confirm(", Detector::Xss),
    ("settimeout(", Detector::Xss),
    ("setinterval(", Detector::Xss),
    ("atob(", Detector::Xss),
    ("btoa(", Detector::Xss),
    ("window[", Detector::Xss),
    ("self[", Detector::Xss),
    ("document[", Detector::Xss),
    ("top[", Detector::Xss),
    ("parent[", Detector::Xss),
    ("globalthis[", Detector::Xss),
    ("frames[", Detector::Xss),
    (")[", Detector::Xss),
    ("/*", Detector::Xss),
    ("_$$nd_func$$_", Detector::Code),
    ("__js_function", Detector::Code),
    ("fromcharcode", Detector::Code),
    ("function", Detector::Code),
    ("process", Detector::Code),
    ("require", Detector::Code),
    ("module.exports", Detector::Code),
    ("xyqktkrfrlvoqyqk", Detector::Code),
    ("php]", Detector::Code),
    ("php}", Detector::Code),
    ("constructor", Detector::Code),
    ("opensymphony", Detector::Code),
    ("com.sun.", Detector::Code),
    ("java.", Detector::Code),
    ("javax.", Detector::Code),
    ("getproperty", Detector::Code),
    ("xmldecoder", Detector::Code),
    ("filewriter", Detector::Code),
    ("factory", Detector::Code),
    ("closure", Detector::Code),
    ("/etc/", Detector::Traversal),
    ("/sys/", Detector::Traversal),
    ("/dev/", Detector::Traversal),
    ("/boot/", Detector::Traversal),
    ("/.", Detector::Traversal),
    ("..;", Detector::Traversal),
    ("debug.log", Detector::Traversal),
    ("error.log", Detector::Traversal),
    (".sql", Detector::Traversal),
    (".bak", Detector::Traversal),
    ("/[", Detector::Traversal),
    ("]/", Detector::Traversal),
    ("?/", Detector::Traversal),
    ("/?", Detector::Traversal),
    ("*/", Detector::Traversal),
    ("/*", Detector::Traversal),
    ("for ", Detector::Cmdi),
    ("for/", Detector::Cmdi),
    ("http:", Detector::Ssrf),
    ("https:", Detector::Ssrf),
    ("..", Detector::Traversal),
    ("etc/", Detector::Traversal),
    ("proc/", Detector::Traversal),
    ("win.ini", Detector::Traversal),
    ("system32", Detector::Traversal),
    ("boot.ini", Detector::Traversal),
    (".ssh", Detector::Traversal),
    (".ht", Detector::Traversal),
    (".env", Detector::Traversal),
    (".git", Detector::Traversal),
    (".aws", Detector::Traversal),
    ("wp-config", Detector::Traversal),
    ("web.config", Detector::Traversal),
    ("var/log", Detector::Traversal),
    ("root/", Detector::Traversal),
    ("history", Detector::Traversal),
    ("dev/tcp", Detector::Traversal),
    ("://", Detector::Traversal),
    ("jar:", Detector::Traversal),
    ("://", Detector::Ssrf),
    ("localhost", Detector::Ssrf),
    (".internal", Detector::Ssrf),
    ("lvh.me", Detector::Ssrf),
    ("localtest.me", Detector::Ssrf),
    ("ip6-", Detector::Ssrf),
    ("ipv6-", Detector::Ssrf),
    ("kubernetes.", Detector::Ssrf),
    ("cluster.local", Detector::Ssrf),
    ("<!", Detector::Xxe),
    ("xinclude", Detector::Xxe),
    ("xi:include", Detector::Xxe),
    ("{{", Detector::Ssti),
    ("${", Detector::Ssti),
    ("#{", Detector::Ssti),
    ("*{", Detector::Ssti),
    ("<%", Detector::Ssti),
    ("{%", Detector::Ssti),
    ("__", Detector::Ssti),
    ("java.lang", Detector::Ssti),
    ("constructor", Detector::Ssti),
    ("freemarker", Detector::Ssti),
    ("#set", Detector::Ssti),
    ("$class", Detector::Ssti),
    ("getclass", Detector::Ssti),
    ("${", Detector::Jndi),
    ("jndi", Detector::Jndi),
    ("<?", Detector::Code),
    ("$_", Detector::Code),
    ("$globals", Detector::Code),
    ("java", Detector::Code),
    ("org.omg", Detector::Code),
    ("runtime", Detector::Code),
    ("processbuilder", Detector::Code),
    ("classloader", Detector::Code),
    ("transformer", Detector::Code),
    ("forclosure", Detector::Code),
    ("memberaccess", Detector::Code),
    ("#context", Detector::Code),
    ("child_process", Detector::Code),
    ("mainmodule", Detector::Code),
    ("kernel.", Detector::Code),
    ("popen", Detector::Code),
    ("proto", Detector::Code),
    ("ro0ab", Detector::Code),
    ("aced0005", Detector::Code),
    ("o:", Detector::Code),
    ("c:", Detector::Code),
    ("cos\n", Detector::Code),
    ("posix", Detector::Code),
    ("__builtin__", Detector::Code),
    ("invoke-", Detector::Cmdi),
    ("iex", Detector::Cmdi),
    ("iwr", Detector::Cmdi),
    ("powershell", Detector::Cmdi),
    ("downloadstring", Detector::Cmdi),
    ("new-object", Detector::Cmdi),
    ("start-process", Detector::Cmdi),
    (" in (", Detector::Cmdi),
    ("<(", Detector::Cmdi),
    (">(", Detector::Cmdi),
    ("etc/", Detector::Cmdi),
    ("exist", Detector::Cmdi),
    ("errorlevel", Detector::Cmdi),
    ("defined", Detector::Cmdi),
    ("if /i", Detector::Cmdi),
    ("@{", Detector::Code),
    // PHP's variable variables (`${'a'}`, `$ {$a}`) and the php.ini settings a value may set.
    ("${", Detector::Code),
    ("$ ", Detector::Code),
    ("$\t", Detector::Code),
    ("allow_url_", Detector::Code),
    ("auto_prepend_", Detector::Code),
    ("auto_append_", Detector::Code),
    ("disable_functions", Detector::Code),
    ("open_basedir", Detector::Code),
    ("memory_limit", Detector::Code),
    ("max_execution_time", Detector::Code),
    ("extension_dir", Detector::Code),
    ("include_path", Detector::Code),
    ("unserialize_max_depth", Detector::Code),
    ("display_errors", Detector::Code),
    ("error_reporting", Detector::Code),
    ("log_errors", Detector::Code),
    ("error_log", Detector::Code),
    ("upload_tmp_dir", Detector::Code),
    ("post_max_size", Detector::Code),
    ("upload_max_filesize", Detector::Code),
    ("safe_mode", Detector::Code),
    ("register_globals", Detector::Code),
    ("session.s", Detector::Code),
    ("opcache.", Detector::Code),
    ("mbstring.", Detector::Code),
    ("process.spawn", Detector::Code),
    ("bin/", Detector::Cmdi),
    ("/dev/", Detector::Cmdi),
    (" -c", Detector::Cmdi),
    (" -i", Detector::Cmdi),
    (" /c", Detector::Cmdi),
    (" /k", Detector::Cmdi),
    ("() {", Detector::Cmdi),
    ("strace", Detector::Cmdi),
    ("cpulimit", Detector::Cmdi),
    ("nohup", Detector::Cmdi),
    ("sudo", Detector::Cmdi),
    ("xargs", Detector::Cmdi),
    ("setsid", Detector::Cmdi),
    ("stdbuf", Detector::Cmdi),
    ("unbuffer", Detector::Cmdi),
    ("chroot", Detector::Cmdi),
    ("http/", Detector::Crlf),
    (")(", Detector::Ldap),
    (") (", Detector::Ldap),
    (")\t(", Detector::Ldap),
    (")|", Detector::Ldap),
    (")&", Detector::Ldap),
    (")!", Detector::Ldap),
];

/// The byte table, the words' automaton, and the detectors each match state stands for.
struct Table {
    bytes: [u32; 256],
    words: DFA,
    start: StateID,
    /// Indexed by pattern id.
    masks: Vec<u32>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut bytes = [0u32; 256];
        let mut set = |chars: &[u8], d: Detector| {
            for c in chars {
                bytes[*c as usize] |= bit(d);
            }
        };
        set(b"'\"`;", Detector::Sqli);
        set(b"<>`=", Detector::Xss);
        set(b"$", Detector::Nosql);
        set(b";|&`$\n{", Detector::Cmdi);
        set(b"\r\n", Detector::Crlf);
        set(b"(", Detector::Code);
        // One pattern per distinct word, with the detectors of every entry for it. The input is
        // already lower case, so the automaton need not fold case.
        let mut words: Vec<(&str, u32)> = Vec::new();
        let cued = cue_sets()
            .into_iter()
            .flat_map(|(set, cue)| set.words.iter().map(move |w| (*w, cue)));
        for (w, m) in WORDS.iter().map(|(w, d)| (*w, bit(*d))).chain(cued) {
            match words.iter_mut().find(|(x, _)| *x == w) {
                Some((_, have)) => *have |= m,
                None => words.push((w, m)),
            }
        }
        let masks = words.iter().map(|(_, m)| *m).collect();
        // Standard semantics: a match state carries every word that ends there, overlapping
        // ones included, so one walk over the bytes sees them all. No prefilter: it would only
        // add a special start state to a walk that has to look at every byte anyway.
        let words = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(words.iter().map(|(w, _)| w))
            .expect("static patterns");
        let start = words
            .start_state(Anchored::No)
            .expect("built with unanchored starts");
        Table {
            bytes,
            words,
            start,
            masks,
        }
    })
}

/// The detectors a value wakes up, as a bit set (bit = `Detector as u16`).
///
/// One walk over the bytes drives both the byte table and the automaton by hand: the
/// overlapping-match iterator did the same work at about three times the instructions (a
/// `Match` built and returned per word found, and its own bookkeeping per call).
pub fn triggered(lower: &str) -> u32 {
    let t = table();
    let mut m = 0u32;
    let mut sid = t.start;
    for &b in lower.as_bytes() {
        m |= t.bytes[b as usize];
        sid = t.words.next_state(Anchored::No, sid, b);
        if t.words.is_special(sid) && t.words.is_match(sid) {
            for i in 0..t.words.match_len(sid) {
                m |= t.masks[t.words.match_pattern(sid, i).as_usize()];
            }
        }
    }
    m
}

pub fn has(mask: u32, d: Detector) -> bool {
    mask & bit(d) != 0
}

/// A fixed list of words searched in one pass: a detector's `for w in LIST { s.contains(w) }`
/// costs one substring search per word per value, which on prose-heavy JSON was a third of the
/// inspection time. Built on first use.
pub struct WordSet {
    words: &'static [&'static str],
    ac: OnceLock<AhoCorasick>,
    present: Presence,
}

/// Whether any of a fixed list of words occurs, on a prefilter-free DFA walked by hand as
/// [`triggered`] walks its own. A searcher's `is_match` cost more per request (its per-call
/// setup and the bookkeeping of a general search). As a gate before a `find` it pays only for
/// some lists (measured per list: `code`'s markers and calls gain, `WordSet::find` lost,
/// where the searcher's prefilter already skips most values without reading every byte).
pub struct Presence(OnceLock<(DFA, StateID)>);

impl Presence {
    pub const fn new() -> Presence {
        Presence(OnceLock::new())
    }

    /// `words` is called once, on first use, to build the automaton.
    pub fn any<I, P>(&self, words: impl FnOnce() -> I, hay: &str) -> bool
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let (dfa, start) = self.0.get_or_init(|| {
            let dfa = DFA::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Unanchored)
                .prefilter(false)
                .build(words())
                .expect("static patterns");
            let start = dfa
                .start_state(Anchored::No)
                .expect("built with unanchored starts");
            (dfa, start)
        });
        let mut sid = *start;
        for &b in hay.as_bytes() {
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) {
                return true;
            }
        }
        false
    }
}

impl Default for Presence {
    fn default() -> Presence {
        Presence::new()
    }
}

impl WordSet {
    pub const fn new(words: &'static [&'static str]) -> WordSet {
        WordSet {
            words,
            ac: OnceLock::new(),
            present: Presence::new(),
        }
    }

    fn automaton(&self) -> &AhoCorasick {
        self.ac.get_or_init(|| {
            AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(self.words)
                .expect("static patterns")
        })
    }

    /// The first occurrence (leftmost, the earlier listed word on a tie): (word index, offset).
    pub fn find(&self, hay: &str) -> Option<(usize, usize)> {
        self.automaton()
            .find(hay)
            .map(|m| (m.pattern().as_usize(), m.start()))
    }

    /// Where the words occur (non-overlapping, left to right).
    pub fn starts<'a>(&'a self, hay: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.automaton().find_iter(hay).map(|m| m.start())
    }

    /// Every occurrence, non-overlapping, as (start, end) byte offsets.
    pub fn automaton_find_all<'a>(
        &'a self,
        hay: &'a str,
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        self.automaton()
            .find_iter(hay)
            .map(|m| (m.start(), m.end()))
    }

    /// Every occurrence, overlapping ones too, as (word index, start, end).
    pub fn overlapping<'a>(
        &'a self,
        hay: &'a str,
    ) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
        self.automaton()
            .find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
    }

    /// Whether any word occurs.
    pub fn found_in(&self, hay: &str) -> bool {
        self.present.any(|| self.words, hay)
    }

    pub fn word(&self, index: usize) -> &'static str {
        self.words[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    /// What `triggered` must answer, worked out the plain way: every byte looked up, every
    /// occurrence of every word found by substring search.
    fn by_hand(lower: &str) -> u32 {
        let t = table();
        let mut m = 0u32;
        for b in lower.bytes() {
            m |= t.bytes[b as usize];
        }
        for (w, d) in WORDS {
            if lower.contains(w) {
                m |= bit(*d);
            }
        }
        for (set, cue) in cue_sets() {
            if set.words.iter().any(|w| lower.contains(w)) {
                m |= cue;
            }
        }
        m
    }

    #[test]
    fn words_overlapping_and_nested_are_all_seen() {
        for s in [
            "",
            "plain words only",
            "x' union select 1--",
            // `java.lang` holds `java.` and `java`; `${jndi:` holds `${` for two detectors.
            "${jndi:ldap://x}",
            "java.lang.runtime",
            "../../etc/passwd",
            "http://169.254.169.254/",
            "a /* b */ c",
            "proto__constructor",
            "ends with sys",
            "x' union select pg_catalog",
            "iex (new-object net.webclient).downloadstring('x')",
        ] {
            assert_eq!(triggered(s), by_hand(s), "{s}");
        }
        assert!(has(triggered("${jndi:ldap://x}"), Detector::Jndi));
        assert!(has(triggered("${jndi:ldap://x}"), Detector::Ssti));
        assert_eq!(triggered("plain words only"), 0);
        assert_ne!(triggered("1 union select 2") & CUE_SQL_KEYWORD, 0);
        assert_ne!(
            triggered("from information_schema.tables") & CUE_SQL_PROBE,
            0
        );
        assert_ne!(triggered("powershell iwr x") & CUE_POWERSHELL, 0);
    }

    proptest::proptest! {
        #[test]
        fn one_walk_finds_what_a_search_per_word_finds(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(
                        WORDS
                            .iter()
                            .map(|(w, _)| *w)
                            .chain(cue_sets().into_iter().flat_map(|(set, _)| set.words.iter().copied()))
                            .collect::<Vec<_>>()
                    )
                    .prop_map(str::to_string),
                    "[a-z0-9 ./:;'$({<_-]{0,6}",
                ],
                0..8,
            )
        ) {
            let s = parts.concat();
            proptest::prop_assert_eq!(triggered(&s), by_hand(&s), "{:?}", s);
        }
    }
}
