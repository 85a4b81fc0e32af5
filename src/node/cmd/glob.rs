//! Glob-style patterns, matched exactly as Redis's `stringmatchlen`
//! (`util.c`) matches them, for KEYS, SCAN's MATCH and CONFIG GET:
//!
//! - `*` any run of bytes, `?` any one byte;
//! - `[abc]` one of a set, `[^abc]` one not in it, `[a-z]` a range (its ends
//!   in either order), `\x` inside a set is `x` itself;
//! - `\x` outside a set is `x` itself; a trailing `\` is a plain `\`;
//! - everything else matches itself; `nocase` folds ASCII letters.
//!
//! Redis's quirks are kept, since a client that moves between Redis and
//! kvstore should see the same keys:
//!
//! - a set left open (`[abc`) ends at the end of the pattern; `[` alone
//!   matches nothing and `[^` any one byte;
//! - `]` right after `[` closes an empty set (so `[]a]` is "nothing", then
//!   `a]`), and `[a-]` is the range from `a` to `]`;
//! - the empty string matches only the empty pattern (not even `*`: KEYS
//!   and SCAN treat the pattern `*` alone as "everything" before matching);
//! - a range compares bytes as C's `char` does on x86-64, signed, so a
//!   byte from 0x80 up sorts below `\0` (`[a-\xff]` is not "a and above");
//! - past 1000 nested `*`, matching gives up and says "no match" (Redis's
//!   guard against patterns built to take exponential time).
//!
//! The search is Redis's too: backtracking over `*`, cut short once the
//! rest of the pattern has failed from every later position (what follows
//! a `*` that failed everywhere cannot succeed with an earlier `*` taking
//! more). So matching takes time polynomial in the lengths, never
//! exponential.

/// How deep `*`s may nest before matching gives up, as in Redis.
const MAX_NESTING: u32 = 1000;

/// Whether `string` matches the glob `pattern` (see the module docs).
pub fn matches(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_from(pattern, 0, string, nocase, &mut skip_longer, 0)
}

/// The byte at `i`, or 0 past the end: Redis reads its patterns up to the
/// terminating NUL of their string, and some of its checks look one past.
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

/// C's `tolower` in the C locale, on a `char` promoted to `int`.
fn lower(c: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&c) { c + 32 } else { c }
}

/// A byte as x86-64's signed `char` promotes to `int`.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

fn same(a: u8, b: u8, nocase: bool) -> bool {
    a == b || (nocase && a.eq_ignore_ascii_case(&b))
}

/// `pattern[pi..]` against `s`. `skip_longer` is set once the part after
/// some `*` has failed from every position of the string: every `*` still
/// being tried then gives up at once.
fn match_from(pattern: &[u8], mut pi: usize, mut s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let p = pattern;
    while pi < p.len() && !s.is_empty() {
        match p[pi] {
            b'*' => {
                while pi + 1 < p.len() && p[pi + 1] == b'*' {
                    pi += 1;
                }
                if pi + 1 == p.len() {
                    return true;
                }
                while !s.is_empty() {
                    if match_from(p, pi + 1, s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                pi += 1;
                let not = at(p, pi) == b'^';
                if not {
                    pi += 1;
                }
                let mut matched = false;
                loop {
                    let left = p.len() - pi;
                    if at(p, pi) == b'\\' && left >= 2 {
                        pi += 1;
                        matched |= p[pi] == s[0];
                    } else if at(p, pi) == b']' {
                        break;
                    } else if left == 0 {
                        // An open set ends with the pattern: step back onto
                        // its last byte, which the advance below consumes.
                        pi -= 1;
                        break;
                    } else if left >= 3 && p[pi + 1] == b'-' {
                        let (mut start, mut end) = (signed(p[pi]), signed(p[pi + 2]));
                        let mut c = signed(s[0]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            (start, end, c) = (lower(start), lower(end), lower(c));
                        }
                        pi += 2;
                        matched |= start <= c && c <= end;
                    } else {
                        matched |= same(p[pi], s[0], nocase);
                    }
                    pi += 1;
                }
                if matched == not {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                let c = if c == b'\\' && p.len() - pi >= 2 {
                    pi += 1;
                    p[pi]
                } else {
                    c
                };
                if !same(c, s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        pi += 1;
        if s.is_empty() {
            while at(p, pi) == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi >= p.len() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn yes(p: &str, s: &str) {
        assert!(matches(p.as_bytes(), s.as_bytes(), false), "{p:?} should match {s:?}");
    }

    #[track_caller]
    fn no(p: &str, s: &str) {
        assert!(!matches(p.as_bytes(), s.as_bytes(), false), "{p:?} should not match {s:?}");
    }

    /// The patterns of Redis's documentation (KEYS) and keyspace tests.
    #[test]
    fn the_patterns_redis_documents() {
        for s in ["hello", "hallo", "hxllo"] {
            yes("h?llo", s);
        }
        for s in ["hllo", "heeeello", "hello"] {
            yes("h*llo", s);
        }
        yes("h[ae]llo", "hello");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        yes("h[^e]llo", "hbllo");
        no("h[^e]llo", "hello");
        yes("h[a-b]llo", "hallo");
        yes("h[a-b]llo", "hbllo");
        no("h[a-b]llo", "hcllo");
        // tests/unit/keyspace.tcl: KEYS with pattern, with hashtag.
        for k in ["foo_a", "foo_b", "foo_c"] {
            yes("foo*", k);
        }
        for k in ["key_x", "key_y", "key_z"] {
            no("foo*", k);
        }
        yes("{a}*", "{a}x");
        no("{a}*", "{b}a");
        yes("*{b}*", "{b}c");
        no("*{b}*", "{a}z");
        // tests/unit/scan.tcl: SCAN MATCH "key:1??" over key:0..key:999.
        let hits = (0..1000).filter(|i| matches(b"key:1??", format!("key:{i}").as_bytes(), false)).count();
        assert_eq!(hits, 100);
    }

    #[test]
    fn escapes_outside_and_inside_sets() {
        yes(r"h\*llo", "h*llo");
        no(r"h\*llo", "hello");
        yes(r"\?", "?");
        no(r"\?", "a");
        yes(r"a\", r"a\"); // a trailing backslash is itself
        yes(r"[\]]", "]");
        yes(r"[\-]", "-");
        yes(r"[a\-z]", "-");
        no(r"[a\-z]", "b");
        yes(r"[\^]", "^");
        yes(r"*\*", "ab*");
        no(r"*\*", "ab");
    }

    #[test]
    fn sets_and_ranges_as_redis_reads_them() {
        yes("[z-a]", "m"); // ends in either order
        yes("[a-]", "]"); // the range ']'..='a' (ends in either order)
        yes("[a-]", "_");
        no("[a-]", "b");
        no("[a-]", "-");
        yes("[abc", "b"); // an open set ends with the pattern
        no("[abc", "d");
        no("[", "a"); // `[` alone matches nothing
        yes("[^", "x"); // `[^` matches any one byte
        no("[^", "");
        no("[]", "a"); // `]` first closes an empty set, which matches nothing
        no("[]a]", "a");
        no("[]a]", "]");
        no("a[]]", "a]");
        yes("[-a]", "-"); // `-` first is a plain byte
        yes("[a-c-e]", "b"); // the range a..=c, then `-` and `e` as plain bytes
        yes("[a-c-e]", "-");
        yes("[a-c-e]", "e");
        no("[a-c-e]", "d");
        yes("[^a-c]", "d");
        no("[^a-c]", "b");
    }

    #[test]
    fn empty_strings_and_star_runs() {
        yes("", "");
        no("*", ""); // Redis's loop stops before any `*` when the string is empty
        no("**", "");
        no("a", "");
        yes("a*", "a");
        yes("a**", "a");
        yes("a***", "a");
        yes("***", "x");
        yes("*a*", "xxaxx");
        no("*a*", "xxbxx");
        yes("a*b*c", "aXbYc");
        no("a*b*c", "aXcYb");
        no("", "a");
        yes("?*", "a");
        no("??", "a");
    }

    #[test]
    fn nocase_folds_ascii_letters_only() {
        assert!(matches(b"HeLLo", b"hello", true));
        assert!(!matches(b"HeLLo", b"hello", false));
        assert!(matches(b"h[A-C]llo", b"hbllo", true));
        assert!(!matches(b"h[A-C]llo", b"hbllo", false));
        assert!(matches(b"[ABC]", b"c", true));
        assert!(!matches(b"\xc9", b"\xe9", true)); // no folding beyond ASCII
        // Inside a set an escaped byte is compared exactly, as Redis does.
        assert!(!matches(br"[\A]", b"a", true));
        assert!(matches(br"\A", b"a", true));
    }

    #[test]
    fn ranges_compare_bytes_as_signed_chars() {
        // 0xff is -1 as a signed char: [a-\xff] is the range -1..='a'.
        assert!(!matches(b"[a-\xff]", b"b", false));
        assert!(matches(b"[a-\xff]", b"A", false));
        assert!(matches(b"[a-\xff]", b"\xff", false));
        assert!(!matches(b"[a-\xff]", b"\x80", false));
        assert!(matches(b"[\x80-\xff]", b"\x90", false));
        assert!(!matches(b"[\x80-\xff]", b"a", false));
    }

    #[test]
    fn binary_bytes_are_plain_bytes() {
        assert!(matches(b"a\0b", b"a\0b", false));
        assert!(!matches(b"a\0b", b"a\0c", false));
        assert!(matches(b"*\0", b"xyz\0", false));
        assert!(matches(b"[\0]", b"\0", false));
    }

    /// tests/unit/keyspace.tcl: "Regression for pattern matching long
    /// nested loops" and "... very long nested loops": both must answer
    /// "no match", and at once.
    #[test]
    fn abusive_patterns_end_quickly() {
        let key = "a".repeat(40);
        let pattern = format!("{}b", "a*".repeat(20));
        no(&pattern, &key);
        let key = vec![b'a'; 50_000];
        let pattern = b"*?".repeat(50_000);
        assert!(!matches(&pattern, &key, false));
        // Past 1000 nested stars Redis gives up, even on a match.
        let key = vec![b'a'; 2000];
        assert!(matches(&b"a*".repeat(999), &key, false));
        assert!(!matches(&b"a*".repeat(1002), &key, false));
    }

    /// A small model (plain recursive glob without Redis's quirks) agrees
    /// with the matcher on every pattern it can express, over a fixed seed
    /// so a failure reproduces.
    #[test]
    fn agrees_with_a_naive_model_on_plain_patterns() {
        fn naive(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| naive(rest, &s[i..])),
                Some((b'?', rest)) => !s.is_empty() && naive(rest, &s[1..]),
                Some((&c, rest)) => s.first() == Some(&c) && naive(rest, &s[1..]),
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15; // pinned seed
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as usize
        };
        for _ in 0..20_000 {
            let p: Vec<u8> = (0..next(7)).map(|_| b"ab*?"[next(4)]).collect();
            let s: Vec<u8> = (0..next(7)).map(|_| b"ab"[next(2)]).collect();
            // Redis's one divergence from the model: an empty string only
            // matches an empty pattern.
            let want = naive(&p, &s) && (!s.is_empty() || p.is_empty());
            assert_eq!(
                matches(&p, &s, false),
                want,
                "{:?} vs {:?}",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(&s)
            );
        }
    }
}
