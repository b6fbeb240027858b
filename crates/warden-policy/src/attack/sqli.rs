//! SQL injection, by tokenising rather than by keyword: libinjection (the pure-Rust port
//! `libinjectionrs`) reduces the value to a fingerprint of SQL token types and checks it against
//! the fingerprints of known injections, so `O'Brien` or a sentence about "select and union"
//! passes while `1' OR '1'='1` does not. A few high-signal constructs libinjection misses
//! (`INTO OUTFILE`, time-based probes) are matched as keywords.

use super::signals::{WordSet, CUE_SQL_KEYWORD, CUE_SQL_PROBE};
use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR, WARNING};

/// Whether a value could hold SQL injection at all, decided cheaply: libinjection costs a few
/// microseconds per value, and most values (names with an apostrophe, sentences with a semicolon)
/// cannot be SQL injection. A quote between two letters is an apostrophe unless a SQL word follows
/// it (`x'or'1`); a semicolon matters only before a statement (`; drop`); otherwise only comment
/// markers, SQL operators and keywords wake the tokenizer.
fn worth_tokenising(v: &Normalized<'_>, place: Place, cues: Option<u32>) -> bool {
    let l = v.lower.as_bytes();
    let word_after = |i: usize| -> &[u8] {
        let rest = &l[i.min(l.len())..];
        let start = rest
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let rest = &rest[start..];
        let end = rest
            .iter()
            .position(|c| !c.is_ascii_alphanumeric() && *c != b'_')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    const AFTER_QUOTE: [&[u8]; 12] = [
        b"or",
        b"and",
        b"union",
        b"select",
        b"like",
        b"xor",
        b"having",
        b"order",
        b"group",
        b"limit",
        b"into",
        b"procedure",
    ];
    const STATEMENTS: [&[u8]; 16] = [
        b"drop",
        b"select",
        b"insert",
        b"update",
        b"delete",
        b"exec",
        b"execute",
        b"shutdown",
        b"declare",
        b"waitfor",
        b"create",
        b"alter",
        b"union",
        b"truncate",
        b"begin",
        b"set",
    ];
    // Only the bytes below matter: jump from one to the next.
    const WAKE: [u8; 256] = super::byte_flags(&[(b"`'\";-", 1)]);
    let mut from = 0;
    while let Some(p) = l[from..].iter().position(|&c| WAKE[c as usize] != 0) {
        let i = from + p;
        from = i + 1;
        match l[i] {
            b'`' => return true,
            b'\'' | b'"' => {
                let letter = |j: Option<&u8>| j.is_some_and(u8::is_ascii_alphabetic);
                let apostrophe = i > 0 && letter(l.get(i - 1)) && letter(l.get(i + 1));
                if !apostrophe || AFTER_QUOTE.contains(&word_after(i + 1)) {
                    return true;
                }
            }
            b';' if STATEMENTS.contains(&word_after(i + 1)) => return true,
            // `1--`, `')--`: a comment cutting off the rest of a query. An em-dash in prose
            // ("please -- thanks") has a space before it.
            b'-' if l.get(i + 1) == Some(&b'-')
                && i > 0
                && !l[i - 1].is_ascii_whitespace()
                && l[i - 1] != b'-' =>
            {
                return true
            }
            _ => {}
        }
    }
    // Only keywords left. In free text, a sentence that starts with a word and has no digit, `=`
    // or `@` ("Select the blue one (not the grey)") cannot break out of a quoted string nor
    // stand in for a number, which is what an injection through a text field must do.
    let c = v.compact();
    const NUMERIC: [u8; 256] = super::byte_flags(&[(b"0123456789=@", 1)]);
    if place.is_free_text()
        && c.starts_with(|ch: char| ch.is_alphabetic())
        && super::flags_until(&NUMERIC, c.as_bytes(), 1) == 0
    {
        return false;
    }
    match cues {
        Some(m) => m & CUE_SQL_KEYWORD != 0,
        None => KEYWORDS.found_in(c),
    }
}

/// Words only SQL puts together with the syntax above.
pub(crate) static KEYWORDS: WordSet = WordSet::new(&[
    "/*",
    "||",
    "&&",
    "union",
    "select",
    "sleep",
    "benchmark",
    "waitfor",
    "outfile",
    "dumpfile",
    "xp_",
    "information_schema",
    "@@",
    "pg_",
    "dbms_",
    "load_file",
    "having",
    "order by",
    "group by",
    "insert",
    "delete",
    "drop",
    "case when",
    "0x",
    "char(",
    "concat",
    " or ",
    " and ",
    " xor ",
    "procedure",
    "rlike",
    "regexp",
]);

/// Fingerprints libinjection reports for harmless text as often as for attacks (quoted words in a
/// product name, "80% X and 20% Y", a trailing `--`): at paranoia 1 they only count together with
/// another signal; from paranoia 2 they count alone.
const WEAK_FINGERPRINTS: [&str; 5] = ["sos", "s&s", "1&1", "1c", "nc"];

/// Constructs libinjection does not fingerprint but that no honest value carries.
const HIGH_SIGNAL: [(&str, &str); 9] = [
    ("into outfile", "into-outfile"),
    ("into dumpfile", "into-outfile"),
    ("load_file(", "load-file"),
    ("benchmark(", "time-probe"),
    ("pg_sleep(", "time-probe"),
    ("waitfor delay", "time-probe"),
    ("dbms_pipe.receive_message", "time-probe"),
    ("information_schema.", "schema-probe"),
    ("@@version", "version-probe"),
];

/// Functions and catalogues that only an injection asks for: version and schema probes,
/// error-based extraction, SQLite and PostgreSQL introspection.
pub(crate) static PROBES: WordSet = WordSet::new(&[
    "sqlite_compileoption_",
    "sqlite_version(",
    "sqlite_master",
    "sqlite_temp_master",
    "information_schema",
    "pg_catalog",
    "pg_shadow",
    "pg_user",
    "pg_read_file(",
    "pg_ls_dir(",
    "sysobjects",
    "syscolumns",
    "sys.tables",
    "master..sysdatabases",
    "msysaccessobjects",
    "mysql.user",
    "extractvalue(",
    "updatexml(",
    "group_concat(",
    "json_extract(",
    "unistr(",
    "database(",
    "db_name(",
    "schema_name(",
    "user_name(",
    "current_user(",
    "session_user(",
    "system_user(",
    "@@version",
    "version()",
    "connection_id(",
    "last_insert_id(",
    "row_count(",
    "xp_cmdshell",
    "sp_executesql",
    "sp_oacreate",
    "utl_http.",
    "utl_inaddr.",
    "dbms_xmlgen",
    "ctxsys.drithsx",
    "lo_import(",
    "lo_export(",
    "lo_get(",
    "procedure analyse",
    "name_const(",
    "declare @",
    "exec master.",
    "exec(@",
    "exec (@",
]);

/// PostgreSQL casts to the types injections cast to (`password::int` makes the error message
/// print the value).
const CASTS: [&str; 12] = [
    "::int",
    "::integer",
    "::bigint",
    "::smallint",
    "::bool",
    "::boolean",
    "::text",
    "::varchar",
    "::json",
    "::jsonb",
    "::numeric",
    "::oid",
];

/// A statement stacked after `;` (`; DROP TABLE x`, `;INSERT INTO`), comments already removed.
fn stacked_statement(c: &str) -> bool {
    c.match_indices(';').any(|(p, _)| {
        let rest = c[p + 1..].trim_start();
        let (verb, after) = rest.split_at(
            rest.find(|ch: char| !ch.is_ascii_alphabetic())
                .unwrap_or(rest.len()),
        );
        let after = after.trim_start();
        match verb {
            "drop" | "truncate" | "alter" | "create" => {
                after.starts_with("table")
                    || after.starts_with("database")
                    || after.starts_with("procedure")
                    || after.starts_with("function")
                    || after.starts_with("user")
                    || after.starts_with("view")
                    || after.starts_with("index")
                    || after.starts_with('[')
                    || verb == "truncate"
            }
            "insert" | "replace" => after.starts_with("into") || after.contains(" values"),
            "delete" => after.starts_with("from"),
            "update" => after.contains(" set "),
            "select" => after.contains(" from") || after.starts_with('*') || after.starts_with('@'),
            "exec" | "execute" | "declare" => {
                after.starts_with('@')
                    || after.starts_with("xp_")
                    || after.starts_with("sp_")
                    || after.starts_with('(')
            }
            "shutdown" | "waitfor" => true,
            // `;call p(@version)`, `;do (1=1)`, `; if exists (`.
            "call" => after.contains('('),
            "do" => after.starts_with('('),
            "if" => after.starts_with("exists") || after.starts_with("not exists"),
            _ => false,
        }
    })
}

/// A quote closed, then a boolean operator, and a comment cutting off the rest of the query:
/// `admin' or 1--`, `x' and not f(id)-- -`, `' || 'a'#`.
/// Outside free text (`any_operator`), any operator after the quote counts: `x'|email--`,
/// `id'not like id--`.
fn quote_boolean_comment(c: &str, any_operator: bool) -> bool {
    let end = c.trim_end();
    let commented = end.ends_with("--")
        || end.ends_with("-- -")
        || end.ends_with('#')
        || end.ends_with("/*")
        || end.ends_with(";--");
    if !commented {
        return false;
    }
    c.match_indices(['\'', '"']).any(|(p, _)| {
        let rest = c[p + 1..].trim_start_matches([' ', ')']);
        [
            "or ", "and ", "xor ", "||", "&&", "or(", "and(", "collate", "notnull", "isnull",
        ]
        .iter()
        .any(|op| rest.starts_with(op))
            || any_operator && c.as_bytes()[p] == b'\'' && operator_at(rest).is_some()
    })
}

/// SQL's infix operators, as symbols (`|`, `<=>`, `!=`, `+`) or words (`or`, `div`, `sounds like`):
/// the length of the one that starts `s`, if any. A run of symbols counts as one (`=+`, `!!`).
fn operator_at(s: &str) -> Option<usize> {
    let symbols = s
        .bytes()
        .take_while(|b| b"|^/*-+%<>=!~&".contains(b))
        .count();
    if symbols > 0 {
        return Some(symbols);
    }
    const WORDS: [&str; 13] = [
        "or", "and", "xor", "div", "mod", "like", "rlike", "regexp", "glob", "is", "not", "sounds",
        "between",
    ];
    let word = s
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(s.len());
    WORDS.contains(&&s[..word]).then_some(word)
}

/// Whether `s` ends with an operator (see [`operator_at`]).
fn ends_with_operator(s: &str) -> bool {
    let s = s.trim_end();
    if s.ends_with(|c: char| "|^/*-+%<>=!~&".contains(c)) {
        return true;
    }
    let word = s
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphanumeric() && *c != '_')
        .map_or(0, |(p, c)| p + c.len_utf8());
    word < s.len() && operator_at(&s[word..]) == Some(s.len() - word)
}

/// The first quote of the value closes a string the query opened, an operator follows, and the
/// next quote opens one again to swallow the query's own closing quote: `x' OR 'y`,
/// `abc' = !!'0`, `1'*column-0-'0`, `' | '`. A quote that follows a letter and precedes a letter
/// is an apostrophe (`O'Brien`) unless an operator word follows it (`aa'like-'aa`); a quoted word
/// (`say 'hi' or 'bye'`) opens before it closes, so it does not count. Single quotes only:
/// double ones are inch marks and exact phrases in searches (`8.5x11"-300 dpi`, `"a" - "b"`).
fn quote_operator_quote(c: &str, q: char) -> bool {
    let Some(first) = c.find(q) else {
        return false;
    };
    let before = c[..first].chars().next_back();
    let after = &c[first + 1..];
    let closes = match before {
        None => !after.starts_with(|ch: char| ch.is_alphanumeric()),
        Some(b) => {
            (b.is_ascii_alphanumeric() || b == ')')
                && (!after.starts_with(|ch: char| ch.is_alphanumeric())
                    || operator_at(after).is_some())
        }
    };
    if !closes {
        return false;
    }
    let Some(next) = after.find(q) else {
        return false;
    };
    let between = after[..next].trim();
    // `x'*'''`: a run of quotes is padding, not a string reopened.
    !after[next + 1..].starts_with(q)
        && !between.is_empty()
        && operator_at(between).is_some()
        && ends_with_operator(between)
}

/// A boolean operator, an operand and a comparison, at the start of the value or right after the
/// quote that closes the query's string: the fragment a blind injection appends
/// (`AND 2771=1709)`, `|| langCode == '`, `&&(l=!0)`, `test' or 1=`, `xor 'b' >`).
fn boolean_fragment(c: &str) -> bool {
    let at_start = |s: &str| {
        let s = s.trim_start_matches([' ', '(']);
        let op = ["and", "or", "xor", "&&", "||"].iter().find_map(|op| {
            let rest = s.strip_prefix(op)?;
            let word = op.as_bytes()[0].is_ascii_alphabetic();
            (!word || rest.starts_with([' ', '('])).then_some(rest)
        });
        let Some(rest) = op else {
            return false;
        };
        let rest = rest.trim_start_matches([' ', '(']);
        let operand = if let Some(q) = rest.strip_prefix(['\'', '"']) {
            q.find(['\'', '"']).map_or(rest.len(), |e| e + 2)
        } else {
            rest.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .unwrap_or(rest.len())
        };
        let cmp = rest[operand.min(rest.len())..].trim_start_matches([' ', ')']);
        operand > 0
            && (cmp.starts_with(['=', '<', '>', '!'])
                || [
                    "sounds like",
                    "not like",
                    "not between",
                    "like ",
                    "between ",
                    "rlike ",
                ]
                .iter()
                .any(|w| cmp.starts_with(w)))
    };
    if at_start(c) {
        return true;
    }
    // A number first, as an injection into a numeric parameter sends it: `1 and 1 not between
    // 0 and 1`, `64 and(1)=1`, `(1)or(1)=(1)`, `-1 and 1>1`.
    // Word operators only: `5685587||order=||page=2` is a list of fields.
    let t = c.trim_start_matches([' ', '(', '-']);
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let after = t[digits..].trim_start_matches(')').trim_start();
    if digits > 0 && !after.starts_with(['&', '|']) && at_start(after) {
        return true;
    }
    c.match_indices(['\'', '"']).take(4).any(|(p, _)| {
        (p == 0 || c.as_bytes()[p - 1].is_ascii_alphanumeric()) && at_start(&c[p + 1..])
    })
}

/// A numeric expression and a comment that cuts off the rest of the query: `1--`, `417652--`,
/// `( ( 1 ) ) --`, `1 * 1 /*`, `@version --`, `limit 0,1--`, `1-- foo`. Only numbers, `@`
/// variables, brackets, arithmetic and a few SQL words before it.
fn numeric_then_comment(c: &str) -> bool {
    let Some(at) = c.find("--").or_else(|| c.find('#')) else {
        return false;
    };
    numeric_expression(&c[..at])
}

/// Numbers, `@` variables, brackets, arithmetic and a few SQL words (`( BINARY ( 1) )`).
fn numeric_expression(expr: &str) -> bool {
    let expr = expr.trim();
    if expr.is_empty() || !expr.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
        return false;
    }
    // `1,1--` is as often a list as a query's `limit 0,1--`.
    if expr.contains(',') && !expr.starts_with("limit ") {
        return false;
    }
    let mut words = expr
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '@'))
        .filter(|w| !w.is_empty());
    let symbols_ok = expr
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"@_ ()*+-/,.".contains(&b));
    symbols_ok
        && words.all(|w| {
            w.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                || w.starts_with('@')
                || matches!(w, "binary" | "cos" | "sin" | "limit" | "not" | "null")
        })
}

/// An operator word alone in single quotes (`'AND'`, `A 'OR' B`, `'NOT LIKE'`): libinjection
/// reads a string, the operator and a string again, where a query's quotes are broken out of.
fn quoted_operator_word(c: &str) -> bool {
    c.match_indices('\'').any(|(p, _)| {
        let rest = &c[p + 1..];
        let Some(end) = rest.find('\'') else {
            return false;
        };
        matches!(
            &rest[..end],
            "and"
                | "or"
                | "xor"
                | "div"
                | "mod"
                | "like"
                | "rlike"
                | "regexp"
                | "not like"
                | "not regexp"
                | "not rlike"
                | "sounds like"
        )
    }) && super::prose_words(c) <= 1
}

/// A statement once comments are gone: `select … from`, `drop <name>`, `union select`.
fn commented_statement(c: &str) -> bool {
    let t = c.trim_start_matches([' ', '\'', '"', ';', ')']);
    (t.starts_with("select ") && t.contains(" from "))
        || t.starts_with("drop ")
            && t[5..]
                .trim_start()
                .starts_with(|ch: char| ch.is_ascii_alphabetic())
        || t.contains("union select")
}

/// Catalogues and procedures that a value names only to probe or call them (`xp_cmdshell`,
/// `tempdb`, `openrowset`), sent as the whole value.
fn catalogue(c: &str) -> bool {
    matches!(
        c.trim(),
        "tempdb"
            | "msdb"
            | "mysql.db"
            | "mysql.user"
            | "xp_cmdshell"
            | "xp_dirtree"
            | "xp_regread"
            | "xp_fileexist"
            | "sp_password"
            | "sp_executesql"
            | "sp_oacreate"
            | "utl_http"
            | "utl_inaddr"
            | "openrowset"
            | "opendatasource"
            | "information_schema"
            | "pg_catalog"
            | "sqlite_master"
    )
}

/// A clause that starts the value: `FROM t WHERE …`, `from t limit`, `FROM t GROUP BY`,
/// `HAVING 1=`: the tail of a query whose head the application wrote.
fn clause_head(c: &str) -> bool {
    if let Some(rest) = c.strip_prefix("from ") {
        let rest = rest.trim_start_matches(['`', '"', '[']);
        let name = rest
            .find(|ch: char| {
                !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '`' | '"' | ']'))
            })
            .unwrap_or(rest.len());
        let tail = rest[name..].trim_start();
        return name > 0
            && [
                "where ",
                "limit",
                "group by",
                "order by",
                "join ",
                "inner join",
                "left join",
            ]
            .iter()
            .any(|k| tail.starts_with(k));
    }
    // `HAVING 1=`, `having count(*) >`: a number or an aggregate compared ("having fun = yes"
    // passes).
    c.strip_prefix("having ").is_some_and(|r| {
        (r.starts_with(|ch: char| ch.is_ascii_digit())
            || ["count(", "sum(", "min(", "max(", "avg("]
                .iter()
                .any(|a| r.starts_with(a)))
            && r.contains(['=', '<', '>'])
    })
}

/// An escaped quote that escapes the escape (`\'and 1`, `\"or"1`, `` \`or`1 ``): the backslash
/// meant to neutralise the quote is itself quoted away, then a boolean operator.
fn escaped_quote_boolean(c: &str) -> bool {
    ["\\'", "\\\"", "\\`"].iter().any(|q| {
        c.match_indices(q).any(|(p, _)| {
            let rest = c[p + 2..].trim_start();
            ["and", "or", "xor", "||", "&&"].iter().any(|op| {
                rest.strip_prefix(op).is_some_and(|r| {
                    op.starts_with(['|', '&'])
                        || r.is_empty()
                        || r.starts_with([' ', '(', '"', '\'', '`'])
                })
            })
        })
    })
}

/// `in (0,1)`, `IN (815914, 815913)`, `in ( select …`: the value starts a SQL membership test.
fn in_list(c: &str) -> bool {
    let Some(rest) = c.trim_start().strip_prefix("in") else {
        return false;
    };
    let Some(list) = rest.trim_start().strip_prefix('(') else {
        return false;
    };
    let list = list.trim_start();
    if list.starts_with("select ") {
        return true;
    }
    let items = list.split(')').next().unwrap_or(list);
    items.contains(',')
        && items.split(',').all(|x| {
            let x = x.trim();
            !x.is_empty()
                && (x
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    || x.len() >= 2 && x.starts_with('\'') && x.ends_with('\''))
        })
}

/// Functions a fragment calls: `floor(`, `MAX(`, `version=(` as the whole value, the head of a
/// call the rest of the query completes. (Searched only for a value ending in `(`.)
const FRAGMENT_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "ascii",
    "asin",
    "atan",
    "atan2",
    "avg",
    "bin",
    "bit_length",
    "ceil",
    "ceiling",
    "char",
    "char_length",
    "charindex",
    "chr",
    "coalesce",
    "compress",
    "concat",
    "concat_ws",
    "conv",
    "convert",
    "cos",
    "cot",
    "count",
    "crc32",
    "curdate",
    "current_date",
    "current_time",
    "current_user",
    "curtime",
    "database",
    "date",
    "date_add",
    "date_format",
    "datediff",
    "day",
    "dayname",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "decode",
    "default",
    "degrees",
    "elt",
    "encode",
    "exp",
    "extract",
    "field",
    "find_in_set",
    "floor",
    "format",
    "from_base64",
    "from_unixtime",
    "greatest",
    "hex",
    "hour",
    "if",
    "ifnull",
    "iif",
    "in",
    "inet_aton",
    "insert",
    "instr",
    "isnull",
    "lcase",
    "least",
    "left",
    "len",
    "length",
    "ln",
    "local",
    "localtime",
    "locate",
    "log",
    "log10",
    "log2",
    "lower",
    "lpad",
    "ltrim",
    "make_set",
    "max",
    "md5",
    "mid",
    "min",
    "minute",
    "month",
    "monthname",
    "now",
    "nullif",
    "oct",
    "ord",
    "password",
    "pi",
    "position",
    "pow",
    "power",
    "quarter",
    "quote",
    "radians",
    "rand",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "rpad",
    "rtrim",
    "schema",
    "second",
    "sha",
    "sha1",
    "sha2",
    "sign",
    "sin",
    "soundex",
    "space",
    "sqrt",
    "strcmp",
    "substr",
    "substring",
    "sum",
    "sysdate",
    "tan",
    "time",
    "timestamp",
    "to_base64",
    "trim",
    "ucase",
    "uncompress",
    "unhex",
    "upper",
    "user",
    "uuid",
    "values",
    "version",
    "week",
    "weekday",
    "year",
];

/// The whole value is a SQL function's name and an opening bracket, with at most symbols
/// between (`floor(`, `FLOOR (`, `length||(`, `date]=(`, `select char(`).
fn function_fragment(c: &str) -> bool {
    let t = c.trim();
    if !t.ends_with('(') {
        return false;
    }
    let t = t.strip_prefix("select ").unwrap_or(t);
    let name = t
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .unwrap_or(t.len());
    name > 0
        && t[name..t.len() - 1]
            .bytes()
            .all(|b| !b.is_ascii_alphanumeric() && b != b'_')
        && FRAGMENT_FUNCTIONS.contains(&&t[..name])
}

/// SQL that starts the value (after a quote, bracket or `;` that ends the query's own text): a
/// definition (`ALTER TABLE`, `CREATE FUNCTION`), `EXECUTE IMMEDIATE`, a `SELECT` whose list no
/// sentence has (`select *`, `select(`, `select if(`, `select 1,2,3`), `SET @var`, or `'; ` and
/// `' union …` with no quote closing them. "Select a date" and `"Union Station"` pass.
fn statement_head(c: &str) -> bool {
    let lead = c.len() - c.trim_start_matches([' ', '(', ';', '\'', '"', '`']).len();
    let head = &c[..lead];
    let t = &c[lead..];
    let word_end = t
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .unwrap_or(t.len());
    let (verb, rest) = t.split_at(word_end);
    let after = rest.trim_start();
    let next = after
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .unwrap_or(after.len());
    let next_word = &after[..next];
    let quoted = head.contains(['\'', '"']);
    // An opening quote that a later one closes is a quoted phrase, not a broken-out string.
    let unclosed = |q: char| head.contains(q) && !t.contains(q);
    match verb {
        "alter" | "create" | "drop" | "truncate" => {
            // Then a name: quoted, or one identifier that ends the value or opens a bracket
            // (`create table persons`, `create function f (`); "create table of contents"
            // and "drop table lamp" (furniture) pass.
            let object = matches!(
                next_word,
                "table"
                    | "function"
                    | "procedure"
                    | "view"
                    | "database"
                    | "index"
                    | "trigger"
                    | "user"
            );
            let name = after[next..].trim_start();
            let quoted_name = name.starts_with(['`', '"', '[']);
            let ident = name
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .unwrap_or(name.len());
            let tail = name[ident..].trim_start();
            let one_name = ident > 0 && (tail.is_empty() || tail.starts_with(['(', ';']));
            object && (quoted_name || one_name && verb != "drop")
                || quoted && (unclosed('\'') || unclosed('"'))
        }
        "execute" => next_word == "immediate",
        "set" => after.starts_with('@'),
        "select" => {
            after.starts_with(['*', '(', '@'])
                || after[next..].trim_start().starts_with('(')
                    && (FRAGMENT_FUNCTIONS.contains(&next_word)
                        || matches!(next_word, "sleep" | "pg_sleep" | "benchmark"))
                || {
                    // A list of numbers or columns: `select 1,2,3`, `select a.id, @x from`;
                    // "select red, blue, green" is a sentence.
                    let list = after.split(" from").next().unwrap_or(after);
                    let items = || list.split(',').map(str::trim);
                    list.contains(',')
                        && items().all(|x| {
                            !x.is_empty()
                                && x.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"_.@`()".contains(&b))
                        })
                        && items().any(|x| {
                            x.bytes().all(|b| b.is_ascii_digit()) || x.contains(['@', '`', '.'])
                        })
                }
                || quoted && (unclosed('\'') || unclosed('"'))
        }
        "union" | "insert" | "update" | "delete" | "exec" => {
            quoted && (unclosed('\'') || unclosed('"'))
        }
        // `';`, `'; print`: a string closed and the statement ended.
        _ => head.starts_with(['\'', '"']) && head[1..].trim_start().starts_with(';'),
    }
}

/// `) AS total FROM`, `` ` AS `id` from ``, `6 as" from`: the end of a select list, an alias and
/// `FROM`, after a bracket, quote or number that ends an expression.
fn alias_from(c: &str) -> bool {
    c.match_indices(" as ").any(|(p, _)| {
        let before = c[..p].trim_end_matches(' ').as_bytes().last();
        let expr_end = before.is_some_and(|b| b.is_ascii_digit() || b"`\"')".contains(b));
        let rest = c[p + 4..].trim_start_matches(['`', '"', '\'', ' ']);
        let alias = rest
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or(rest.len());
        expr_end
            && alias > 0
            && rest[alias..]
                .trim_start_matches(['`', '"', '\'', ' '])
                .starts_with("from")
    })
}

/// The whole value compares two literals (`1=1`, `42<=>42`, `'1' not regexp '2'`, `1 is not 2`):
/// the tautology an injection tests with. Ranges (`<`, `>=`) are left to filters.
fn literal_comparison(c: &str) -> bool {
    let literal = |s: &str| -> Option<usize> {
        if let Some(q) = s.strip_prefix(['\'', '"']) {
            return q.find(['\'', '"']).map(|e| e + 2);
        }
        let n = s
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .unwrap_or(s.len());
        (n > 0).then_some(n)
    };
    let t = c.trim();
    let Some(a) = literal(t) else {
        return false;
    };
    let rest = t[a..].trim_start();
    let op = ["<=>", "!=", "<>", "==", "="]
        .iter()
        .find(|o| rest.starts_with(*o))
        .map(|o| o.len())
        .or_else(|| {
            [
                "is not ",
                "not regexp ",
                "not like ",
                "regexp ",
                "rlike ",
                "like ",
                "glob ",
            ]
            .iter()
            .find(|o| rest.starts_with(*o))
            .map(|o| o.len())
        });
    let Some(op) = op else {
        return false;
    };
    let rest = rest[op..].trim_start();
    literal(rest).is_some_and(|b| rest[b..].trim().is_empty())
}

/// Whether a value with no other SQL trigger may still be a fragment the rules above read:
/// it starts with a boolean operator, a definition, a number, a closing bracket or a call, or
/// ends with an opening bracket.
pub(crate) fn wakes(l: &str) -> bool {
    let t = l.trim_start_matches([' ', '(']);
    let b = t.as_bytes();
    let head = match b.first() {
        Some(b'a' | b'o' | b'x' | b'c' | b't' | b's' | b'i') => [
            "and", "or", "xor", "alter", "create", "truncate", "set ", "in", "case ",
        ]
        .iter()
        .any(|w| t.starts_with(w)),
        // A literal that may be compared (`1=1`), or the end of an expression (`) as x from`).
        Some(b'0'..=b'9' | b')') => true,
        _ => false,
    };
    // `chr(123)`: a value that opens with a call.
    let name = t
        .bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .unwrap_or(t.len());
    head || name > 0 && t[name..].trim_start().starts_with('(')
        || l.trim_end().ends_with('(')
        || catalogue(l)
}

/// SQL functions an injection reaches for to build strings, compare or branch (`concat(`,
/// `char(`, `if(`), called at the start of a value or after a quote, comma, bracket or operator.
static FUNCTIONS: WordSet = WordSet::new(&[
    "concat",
    "concat_ws",
    "char",
    "chr",
    "ascii",
    "ord",
    "substr",
    "substring",
    "mid",
    "hex",
    "unhex",
    "coalesce",
    "find_in_set",
    "make_set",
    "elt",
    "ifnull",
    "nullif",
    "if",
    "iif",
    "xmltype",
    "md5",
    "sha1",
    "compress",
    "uncompress",
    "instr",
    "locate",
    "strcmp",
    "lpad",
    "rpad",
    "reverse",
    "cast",
    "convert",
    "sleep",
    "benchmark",
]);

fn injected_function_call(c: &str) -> bool {
    let b = c.as_bytes();
    FUNCTIONS.automaton_find_all(c).any(|(start, end)| {
        let before_ok = c[..start].trim_end().as_bytes().last().is_none_or(|p| {
            matches!(
                p,
                b'\'' | b'"' | b',' | b'(' | b'=' | b'|' | b'&' | b'+' | b'-' | b';' | b'`'
            )
        });
        let word_start = super::word_start(b, start);
        let word_end = !b
            .get(end)
            .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_');
        word_start && word_end && before_ok && c[end..].trim_start().starts_with('(')
    })
}

/// JSON operators of PostgreSQL, MySQL and SQLite applied to a quoted JSON literal:
/// `'{"a":2}' -> '$.a'`, `'[1,2]' ? '1'`, `'{"b":2}'::jsonb <@ '{...}'`.
fn json_sql(c: &str) -> bool {
    let quoted_json =
        c.contains("'{") || c.contains("'[") || c.contains("\"{") && c.contains("}\"");
    quoted_json
        && ["->", "<@", "@>", "?|", "?&", "#>", "' ?", "'?"]
            .iter()
            .any(|op| c.contains(op))
}

/// Conditional probes with a call: `) like (`, `having count(`, `if(1=1`.
fn conditional(c: &str) -> bool {
    // `c` has whitespace runs collapsed to one space.
    if [")like(", ") like(", ")like (", ") like ("]
        .iter()
        .any(|p| c.contains(p))
    {
        return true;
    }
    if c.contains("having") && (c.contains("count(") || c.contains("sum(") || c.contains(" = ")) {
        return true;
    }
    ["if(", "if ("].iter().any(|open| {
        c.match_indices(open).any(|(p, _)| {
            let arg = c[p + open.len()..].trim_start();
            let word = arg
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(arg.len());
            word > 0 && arg[word..].trim_start().starts_with(['=', '<', '>', '!'])
        })
    })
}

/// Warden's own structural rules, run before (and whatever) libinjection says: each is a shape
/// an injection takes and prose does not. Outside free text (query, form, cookie, header) they
/// are critical; in JSON strings and text bodies only the ones no sentence can take are.
fn structural(c: &str, place: Place, cues: Option<u32>, out: &mut Vec<Hit>) -> bool {
    let free_text = place.is_free_text();
    let strong = if free_text { ERROR } else { CRITICAL };
    // Which syntax is there at all, in one pass of table loads: each rule below needs one of
    // these. A flag for a two-byte token (`/*`, `::`, `--`) only says its first byte is there.
    const QUOTE: u8 = 1;
    const SEMI: u8 = 2;
    const PAREN: u8 = 4;
    const SLASH: u8 = 8;
    const COLON: u8 = 16;
    const DASH: u8 = 32;
    const HASH: u8 = 64;
    const BACKSLASH: u8 = 128;
    const SYNTAX: [u8; 256] = super::byte_flags(&[
        (b"'\"`", QUOTE),
        (b";", SEMI),
        (b"(", PAREN),
        (b"/", SLASH),
        (b":", COLON),
        (b"-", DASH),
        (b"#", HASH),
        (b"\\", BACKSLASH),
    ]);
    let f = super::flags_of(&SYNTAX, c.as_bytes());
    let (quote, semi, paren) = (f & QUOTE != 0, f & SEMI != 0, f & PAREN != 0);
    let backslash = f & BACKSLASH != 0;
    let rule = |out: &mut Vec<Hit>, name, score| {
        out.push(Hit::new(Detector::Sqli, name, score, 1));
        true
    };
    if f & SLASH != 0 && c.contains("/*!") {
        // MySQL's executable comment: code hidden from everything but MySQL.
        return rule(out, "mysql-executable-comment", CRITICAL);
    }
    if quote && quote_boolean_comment(c, !free_text) {
        return rule(out, "quote-boolean-comment", CRITICAL);
    }
    if semi && stacked_statement(c) {
        return rule(out, "stacked-statement", CRITICAL);
    }
    let probe = match cues {
        Some(m) => m & CUE_SQL_PROBE != 0,
        None => PROBES.found_in(c),
    };
    if probe {
        return rule(out, "schema-or-function-probe", strong);
    }
    if f & COLON != 0
        && c.contains("::")
        && CASTS.iter().any(|t| {
            c.match_indices(t).any(|(p, _)| {
                !c[p + t.len()..].starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_')
            })
        })
    {
        return rule(out, "postgres-cast", strong);
    }
    if free_text {
        return false;
    }
    if quote && quote_operator_quote(c, '\'') {
        return rule(out, "quote-operator-quote", CRITICAL);
    }
    if boolean_fragment(c) {
        return rule(out, "boolean-fragment", CRITICAL);
    }
    if paren && function_fragment(c) {
        return rule(out, "function-fragment", CRITICAL);
    }
    if statement_head(c) || clause_head(c) {
        return rule(out, "statement", CRITICAL);
    }
    if in_list(c) {
        return rule(out, "in-list", CRITICAL);
    }
    if catalogue(c) {
        return rule(out, "catalogue-name", CRITICAL);
    }
    if backslash && escaped_quote_boolean(c) {
        return rule(out, "escaped-quote-boolean", CRITICAL);
    }
    if c.contains(" as ") && alias_from(c) {
        return rule(out, "alias-from", CRITICAL);
    }
    if literal_comparison(c) {
        return rule(out, "literal-comparison", CRITICAL);
    }
    if paren && (injected_function_call(c) || conditional(c)) || quote && json_sql(c) {
        return rule(out, "sql-expression", CRITICAL);
    }
    if c.contains("case when") && c.contains(" then")
        || c.starts_with("case ")
            && c.contains(" when ")
            && c.contains(" then ")
            && c.ends_with(" end")
    {
        return rule(out, "sql-expression", CRITICAL);
    }
    if (f & HASH != 0 || f & DASH != 0 && c.contains("--")) && numeric_then_comment(c) {
        return rule(out, "numeric-comment", CRITICAL);
    }
    if quote && quoted_operator_word(c) {
        return rule(out, "quoted-operator", CRITICAL);
    }
    let union_select = c.contains("union")
        && ["union select", "union all select", "union distinct select"]
            .iter()
            .any(|u| {
                c.match_indices(u).any(|(p, _)| {
                    !c[p + u.len()..]
                        .starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_')
                })
            });
    if union_select {
        return rule(out, "union-select", CRITICAL);
    }
    false
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    check_cued(v, place, None, out);
}

/// [`check`], given the trigger walk's mask: its cues answer the word-list searches when the
/// compacted view is the lower-case text the walk read.
pub fn check_cued(v: &Normalized<'_>, place: Place, cues: Option<u32>, out: &mut Vec<Hit>) {
    let cues = cues.filter(|_| v.compact.is_none());
    if let Some(sep) = v.separated.as_deref() {
        // Null bytes or stray bytes as separators: the value read that way, first.
        let spaced = Normalized {
            decoded: sep.into(),
            lower: sep.into(),
            compact: None,
            separated: None,
            transforms: v.transforms,
        };
        let before = out.len();
        check_cued(&spaced, place, None, out);
        if out.len() > before {
            return;
        }
    }
    if structural(v.compact(), place, cues, out) {
        return;
    }
    // `SELECT/*x*/password/**/FROM/**/members`, `DROP/*x*/t`: comments where SQL's lexer sees
    // whitespace, hiding keywords from a filter that splits on spaces. Prose has no `/*`.
    // `1 /*`, `@version /*`: a comment opened after a number (the compact view has dropped it).
    if !place.is_free_text()
        && v.transforms
            .contains(super::normalize::Transforms::SQL_COMMENTS)
        && (commented_statement(v.compact())
            || v.lower.trim_end().ends_with("/*") && numeric_expression(v.compact()))
    {
        out.push(Hit::new(Detector::Sqli, "commented-statement", CRITICAL, 1));
        return;
    }
    if !worth_tokenising(v, place, cues) {
        return;
    }
    let r = libinjectionrs::detect_sqli(v.decoded.as_bytes());
    if r.is_injection() {
        let fp = r.fingerprint.map(|f| f.to_string()).unwrap_or_default();
        // A weak fingerprint with a comparison or a comment is an injection after all
        // (`1234 OR 1=1`); without one it is prose ("80% cotton and 20% wool").
        let c = v.compact().as_bytes();
        // `1=1`, `'a' = 'a'`: an equality between literals, the tautology of an injection.
        let second_signal = c.iter().enumerate().any(|(i, ch)| {
            if *ch != b'=' {
                return false;
            }
            let before = c[..i].iter().rev().find(|b| **b != b' ');
            let after = c[i + 1..].iter().find(|b| **b != b' ');
            let literal =
                |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_digit() || *b == b'\'' || *b == b'"');
            literal(before) && literal(after)
        });
        if WEAK_FINGERPRINTS.contains(&fp.as_str()) && !second_signal {
            out.push(Hit::new(Detector::Sqli, "libinjection-weak", WARNING, 1));
            out.push(Hit::new(Detector::Sqli, "libinjection-weak-pl2", 2, 2));
        } else {
            out.push(Hit::new(Detector::Sqli, "libinjection", CRITICAL, 1));
        }
        return;
    }
    let c = v.compact();
    for (needle, rule) in HIGH_SIGNAL {
        if c.contains(needle) {
            out.push(Hit::new(Detector::Sqli, rule, CRITICAL, 1));
            return;
        }
    }
    // `sleep(5)` and `sleep 5` after a quote or operator: blind, time-based probing.
    if let Some(p) = c.find("sleep") {
        let after = c[p + 5..].trim_start_matches([' ', '(']);
        let before = c[..p].trim_end();
        if after.starts_with(|ch: char| ch.is_ascii_digit())
            && (before.ends_with(['\'', '"', ')', ';', '='])
                || before.ends_with(" and")
                || before.ends_with(" or"))
        {
            out.push(Hit::new(Detector::Sqli, "time-probe", CRITICAL, 1));
            return;
        }
    }
    // Paranoia 3: SQL keyword pairs in names of parameters or in short values.
    if place != Place::JsonString
        && (c.contains("union select") || c.contains("select ") && c.contains(" from "))
    {
        out.push(Hit::new(Detector::Sqli, "sql-keywords", ERROR, 3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn hits(s: &str, place: Place) -> Vec<&'static str> {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), place, &mut out);
        out.into_iter()
            .filter(|h| h.paranoia == 1 && h.score >= 5)
            .map(|h| h.rule)
            .collect()
    }

    #[test]
    fn injections_are_caught() {
        for s in [
            "1' OR '1'='1",
            "1 UNION SELECT username, password FROM users--",
            "admin'--",
            "1; DROP TABLE users",
            "' into outfile '/var/www/shell.php",
            "1' AND SLEEP(5)-- -",
            "1 AND (SELECT 1 FROM information_schema.tables)",
            "-1 union select 1,2,@@version",
            // Warden's structural rules, where libinjection's fingerprints say nothing.
            "admin@example.com' or sqlite_compileoption_used (id)--",
            ";DROP/*x*/TABLE test;",
            "1' and unistr(password)::bool--",
            "9999 or {if length((/*!5000select username/*!50000from*/user where id=1))>0}",
            ", FIND_IN_SET('22', Category )",
            "OR '{\"a\":2}' -> '$.a' = 2",
            "x case when 1=1 then 1 else 0 end",
            // Fragments: a quote closed, an operator, a quote reopened; a boolean operator with a
            // comparison; a function's name and its bracket; a quote, an operator, a comment.
            "A' OR 'B",
            "abc' = !!'0",
            "' | '",
            "AND 2771=1709)",
            "|| langCode == '",
            "test' or 1=",
            "floor(",
            "date]=(",
            "x'|email--",
            // Statements and clauses that start the value; literals compared.
            "ALTER TABLE `mass_mails` CHANGE `a` `a` TEXT",
            "CREATE TABLE Persons",
            "EXECUTE IMMEDIATE \"",
            "select(user(",
            "select 1,2,3,user(",
            "'union a",
            "';",
            ") AS orders FROM",
            "42<=>42",
            "1 is not 2",
            // A number and a trailing comment; an operator word quoted; a number, then a
            // boolean test; a CASE expression; more stacked statements.
            "417652--",
            "( BINARY ( @a) )  --",
            "limit 0,1--",
            "A 'OR' B",
            "'NOT LIKE'",
            "1 AND 1 SOUNDS LIKE 1",
            "64 and(1)=1#",
            "case 1 when 2 then 2 end",
            "1;call p(@version, @a)",
        ] {
            assert!(!hits(s, Place::Query).is_empty(), "{s}");
        }
        // Null bytes and stray bytes where the database's lexer sees a space.
        for s in ["1%00UNION%00SELECT%002--", "1%A0UNION%A0SELECT%A02--"] {
            let mut out = Vec::new();
            check(&normalize(s, Encoding::Percent), Place::Query, &mut out);
            assert!(
                out.iter().any(|h| h.score >= 5 && h.paranoia == 1),
                "{s}: {out:?}"
            );
        }
    }

    #[test]
    fn prose_and_names_pass() {
        for s in [
            "O'Brien",
            "I'd like to select the union of both sets",
            "Please order by date and group by category",
            "Tom & Jerry",
            "rock 'n' roll",
            "sleep well, see you at 5",
            "SELECT * FROM users is how you'd read them",
            "80% ACRYLIC AND 20% WOOL",
            "CHRISTMAS STOCKING \"NOT\" STUFFER",
            "2026-11-23",
            "user@example.com",
            "O'connors UNION selected a few friends",
            "Use std::string or String::new() -- both work",
            "Please concatenate (join) the names",
            "In case when it rains, then stay home",
        ] {
            assert!(
                hits(s, Place::JsonString).is_empty(),
                "{s}: {:?}",
                hits(s, Place::JsonString)
            );
        }
    }

    /// Look-alikes of the fragment rules, where they apply: as query values.
    #[test]
    fn fragment_lookalikes_pass_in_queries() {
        for s in [
            "Say 'hi' or 'bye'",
            "the kids' - and the parents' - room",
            "or best offer",
            "and 3 more = 10 total",
            "Max (2 per order)",
            "\"MOD\" \"KITCHEN\"",
            "8.5x11\"-300 dpi --",
            "misterglas.dk'*''''",
            "Select a date",
            "\"Union Station\"",
            "drop table lamp",
            "create table of contents",
            "select red, blue, green",
            "select one (or more)",
            "2024 as a year from now",
            "1 = one",
            "Chapter 1 -- draft",
            "pages 10--12",
            "1,1--",
            "use 'and' or 'or' in searches",
            "5685587||ORDER=||SECTION_ID=||PAGE=2",
            "1 or 2 adults",
            "Room 12 and 14 = same floor",
        ] {
            assert!(
                hits(s, Place::Query).is_empty(),
                "{s}: {:?}",
                hits(s, Place::Query)
            );
        }
    }
}
