//! Expiry: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME,
//! PEXPIRETIME, PERSIST; and the parsing of the expiry options of SET and
//! GETEX (their handlers are in [`super::strings`]), as pure functions.
//!
//! A deadline is an absolute time in milliseconds since the epoch; relative
//! ones (EX, PX, EXPIRE, PEXPIRE) are counted from the node's time for the
//! loop iteration ([`crate::storage::store::Store::now_ms`]), as Redis counts
//! them from its command time snapshot. Changing a key's deadline is a write
//! of its value with the new deadline ([`crate::node::Node::set_deadline`]);
//! a deadline that is not in the future deletes the key, as in Redis. The
//! replies, the order of the checks and the error texts are Redis 7.2's.

use super::{Ctx, Flow, refused};
use crate::node::write::Refused;
use crate::proto::resp;

/// Why expiry options were refused; [`OptError::reply`] words it as Redis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptError<'a> {
    /// `ERR syntax error`.
    Syntax,
    /// `ERR value is not an integer or out of range`.
    NotInteger,
    /// `ERR invalid expire time in '<command>' command`: not positive, or
    /// out of range once in milliseconds and made absolute.
    InvalidTime,
    /// `ERR Unsupported option <opt>` (EXPIRE and co.).
    Unsupported(&'a [u8]),
    /// NX with XX, GT or LT (EXPIRE and co.).
    NxAndOthers,
    /// GT with LT (EXPIRE and co.).
    GtAndLt,
}

impl OptError<'_> {
    /// Appends the error reply; `command` is the command's name in lower case.
    pub fn reply(self, out: &mut Vec<u8>, command: &str) {
        match self {
            OptError::Syntax => resp::error(out, b"ERR syntax error"),
            OptError::NotInteger => resp::error(out, b"ERR value is not an integer or out of range"),
            OptError::InvalidTime => {
                resp::error(out, format!("ERR invalid expire time in '{command}' command").as_bytes())
            }
            OptError::Unsupported(opt) => {
                let msg = format!("ERR Unsupported option {}", String::from_utf8_lossy(opt));
                resp::error(out, msg.as_bytes());
            }
            OptError::NxAndOthers => {
                resp::error(out, b"ERR NX and XX, GT or LT options at the same time are not compatible")
            }
            OptError::GtAndLt => resp::error(out, b"ERR GT and LT options at the same time are not compatible"),
        }
    }
}

/// An integer as Redis reads one (`string2ll`): [`resp::parse_int`], less
/// the leading zeros and the `-0` that it accepts and Redis does not.
pub fn strict_int(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.first() == Some(&b'0') && (digits.len() > 1 || digits.len() < b.len()) {
        return None;
    }
    resp::parse_int(b)
}

/// The unit and the origin of a time argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// `EX`, `SETEX`: seconds from now.
    Ex,
    /// `PX`, `PSETEX`: milliseconds from now.
    Px,
    /// `EXAT`: seconds since the epoch.
    ExAt,
    /// `PXAT`: milliseconds since the epoch.
    PxAt,
}

impl TimeArg {
    fn in_seconds(self) -> bool {
        matches!(self, TimeArg::Ex | TimeArg::ExAt)
    }
    fn relative(self) -> bool {
        matches!(self, TimeArg::Ex | TimeArg::Px)
    }
}

/// The deadline a SET/SETEX/GETEX time argument names, in milliseconds
/// since the epoch, `now` being the node's time: Redis's checks, in its
/// order (an integer, positive, no overflow into milliseconds or when made
/// absolute). It may be past (EXAT/PXAT).
pub fn deadline_of_arg(kind: TimeArg, arg: &[u8], now: u64) -> Result<u64, OptError<'static>> {
    let n = strict_int(arg).ok_or(OptError::NotInteger)?;
    if n <= 0 {
        return Err(OptError::InvalidTime);
    }
    let ms = if kind.in_seconds() { n.checked_mul(1000).ok_or(OptError::InvalidTime)? } else { n };
    let ms = if kind.relative() {
        ms.checked_add(i64::try_from(now).unwrap_or(i64::MAX)).ok_or(OptError::InvalidTime)?
    } else {
        ms
    };
    u64::try_from(ms).map_err(|_| OptError::InvalidTime)
}

/// What a SET or GETEX does with the key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlOpt<'a> {
    /// SET without an option: the new value has no deadline. GETEX without
    /// one: the deadline stays.
    Unset,
    /// `KEEPTTL` (SET): the deadline stays.
    Keep,
    /// `PERSIST` (GETEX): the deadline goes.
    Persist,
    /// `EX`/`PX`/`EXAT`/`PXAT` and the argument, not yet checked (Redis
    /// refuses a bad combination of options before a bad number).
    At(TimeArg, &'a [u8]),
}

/// The options of a SET (`NX`, `XX`, `GET`, `KEEPTTL`, `EX`, `PX`, `EXAT`,
/// `PXAT`) or a GETEX (`EX`, `PX`, `EXAT`, `PXAT`, `PERSIST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringOpts<'a> {
    /// Only if the key does not exist.
    pub nx: bool,
    /// Only if it exists.
    pub xx: bool,
    /// Reply with the old value.
    pub get: bool,
    /// The deadline.
    pub ttl: TtlOpt<'a>,
}

/// Parses SET's options (`getex` false) or GETEX's (`getex` true) with
/// Redis's rules (`parseExtendedStringArgumentsOrReply`): NX and XX exclude
/// each other, KEEPTTL and PERSIST exclude every time option, two different
/// time options exclude each other, the same one twice is allowed (the last
/// wins), so is any flag twice; a time option needs an argument; anything
/// else is a syntax error.
pub fn parse_string_opts<'a>(
    mut opts: impl Iterator<Item = &'a [u8]>,
    getex: bool,
) -> Result<StringOpts<'a>, OptError<'a>> {
    let mut o = StringOpts { nx: false, xx: false, get: false, ttl: TtlOpt::Unset };
    let set = !getex;
    while let Some(opt) = opts.next() {
        let mut ob = [0u8; 24];
        let name = super::upper(opt, &mut ob);
        let time = match name {
            b"EX" => Some(TimeArg::Ex),
            b"PX" => Some(TimeArg::Px),
            b"EXAT" => Some(TimeArg::ExAt),
            b"PXAT" => Some(TimeArg::PxAt),
            _ => None,
        };
        match (name, time) {
            (b"NX", _) if set && !o.xx => o.nx = true,
            (b"XX", _) if set && !o.nx => o.xx = true,
            (b"GET", _) if set => o.get = true,
            (b"KEEPTTL", _) if set && matches!(o.ttl, TtlOpt::Unset | TtlOpt::Keep) => o.ttl = TtlOpt::Keep,
            (b"PERSIST", _) if getex && matches!(o.ttl, TtlOpt::Unset | TtlOpt::Persist) => o.ttl = TtlOpt::Persist,
            (_, Some(kind)) if matches!(o.ttl, TtlOpt::Unset) || matches!(o.ttl, TtlOpt::At(k, _) if k == kind) => {
                let arg = opts.next().ok_or(OptError::Syntax)?;
                o.ttl = TtlOpt::At(kind, arg);
            }
            _ => return Err(OptError::Syntax),
        }
    }
    Ok(o)
}

/// The condition of an EXPIRE: `NX`, `XX`, `GT`, `LT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireCond {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireCond {
    /// Parses the options after EXPIRE's time (Redis's
    /// `parseExtendedExpireArgumentsOrReply`): any of NX, XX, GT, LT, in
    /// any case, any number of times, but NX with none of the others and
    /// not GT with LT.
    pub fn parse<'a>(opts: impl Iterator<Item = &'a [u8]>) -> Result<ExpireCond, OptError<'a>> {
        let mut c = ExpireCond::default();
        for opt in opts {
            let mut ob = [0u8; 24];
            match super::upper(opt, &mut ob) {
                b"NX" => c.nx = true,
                b"XX" => c.xx = true,
                b"GT" => c.gt = true,
                b"LT" => c.lt = true,
                _ => return Err(OptError::Unsupported(opt)),
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(OptError::NxAndOthers);
        }
        if c.gt && c.lt {
            return Err(OptError::GtAndLt);
        }
        Ok(c)
    }

    /// Whether a key whose deadline is `current` (`None`: none, an infinite
    /// TTL) takes the deadline `when` (ms since the epoch, maybe negative).
    pub fn allows(self, current: Option<u64>, when: i64) -> bool {
        let current = current.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|c| when <= c)
            || self.lt && current.is_some_and(|c| when >= c))
    }
}

/// The deadline an EXPIRE-family time argument names, in milliseconds since
/// the epoch (maybe negative: the key is then deleted): an integer, in range
/// once in milliseconds and made absolute (`base`: now for EXPIRE/PEXPIRE,
/// 0 for the -AT forms), as Redis checks it.
pub fn expire_when(arg: &[u8], seconds: bool, base: i64) -> Result<i64, OptError<'static>> {
    let n = strict_int(arg).ok_or(OptError::NotInteger)?;
    let ms = if seconds { n.checked_mul(1000).ok_or(OptError::InvalidTime)? } else { n };
    ms.checked_add(base).ok_or(OptError::InvalidTime)
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`.
pub fn expire(cx: &mut Ctx<'_>) -> Flow {
    expire_generic(cx, true, true, "expire")
}

/// `PEXPIRE key milliseconds [NX|XX|GT|LT]`.
pub fn pexpire(cx: &mut Ctx<'_>) -> Flow {
    expire_generic(cx, false, true, "pexpire")
}

/// `EXPIREAT key unix-time-seconds [NX|XX|GT|LT]`.
pub fn expireat(cx: &mut Ctx<'_>) -> Flow {
    expire_generic(cx, true, false, "expireat")
}

/// `PEXPIREAT key unix-time-milliseconds [NX|XX|GT|LT]`.
pub fn pexpireat(cx: &mut Ctx<'_>) -> Flow {
    expire_generic(cx, false, false, "pexpireat")
}

/// Redis's `expireGenericCommand`: options, then the time, then the key.
fn expire_generic(cx: &mut Ctx<'_>, seconds: bool, relative: bool, name: &str) -> Flow {
    let (a, out, node) = (cx.args, &mut *cx.out, &mut *cx.node);
    let cond = match ExpireCond::parse(a.iter(3)) {
        Ok(c) => c,
        Err(e) => {
            e.reply(out, name);
            return Flow::Continue;
        }
    };
    let now = node.store.now_ms();
    let base = if relative { i64::try_from(now).unwrap_or(i64::MAX) } else { 0 };
    let when = match expire_when(a.get(2), seconds, base) {
        Ok(w) => w,
        Err(e) => {
            e.reply(out, name);
            return Flow::Continue;
        }
    };
    let key = a.get(1);
    let Some((_, current)) = node.store.get_with_deadline(key) else {
        resp::int(out, 0);
        return Flow::Continue;
    };
    if !cond.allows(current, when) {
        resp::int(out, 0);
        return Flow::Continue;
    }
    // Not in the future (negative included): the key is deleted.
    let deadline = u64::try_from(when).unwrap_or(0);
    match node.set_deadline(key, Some(deadline)) {
        Ok(changed) => resp::int(out, i64::from(changed)),
        Err(Refused(why)) => refused(out, &why),
    }
    Flow::Continue
}

/// What a TTL-family command reports of `key`: `-2` no such key, `-1` no
/// deadline, else the time left (or, `absolute`, the deadline), never
/// negative, in milliseconds or (rounded to the nearest) seconds.
pub fn ttl_of(deadline: Option<Option<u64>>, now: u64, ms: bool, absolute: bool) -> i64 {
    match deadline {
        None => -2,
        Some(None) => -1,
        Some(Some(d)) => {
            let t = if absolute { d } else { d.saturating_sub(now) };
            let t = if ms { t } else { t.saturating_add(500) / 1000 };
            i64::try_from(t).unwrap_or(i64::MAX)
        }
    }
}

fn ttl_generic(cx: &mut Ctx<'_>, ms: bool, absolute: bool) -> Flow {
    let store = &cx.node.store;
    let state = store.get_with_deadline(cx.args.get(1)).map(|(_, d)| d);
    resp::int(cx.out, ttl_of(state, store.now_ms(), ms, absolute));
    Flow::Continue
}

/// `TTL key`: seconds left.
pub fn ttl(cx: &mut Ctx<'_>) -> Flow {
    ttl_generic(cx, false, false)
}

/// `PTTL key`: milliseconds left.
pub fn pttl(cx: &mut Ctx<'_>) -> Flow {
    ttl_generic(cx, true, false)
}

/// `EXPIRETIME key`: the deadline in seconds since the epoch.
pub fn expiretime(cx: &mut Ctx<'_>) -> Flow {
    ttl_generic(cx, false, true)
}

/// `PEXPIRETIME key`: the deadline in milliseconds since the epoch.
pub fn pexpiretime(cx: &mut Ctx<'_>) -> Flow {
    ttl_generic(cx, true, true)
}

/// `PERSIST key`: 1 if the key had a deadline and has none now, else 0.
pub fn persist(cx: &mut Ctx<'_>) -> Flow {
    let key = cx.args.get(1);
    let had = cx.node.store.deadline_of(key).is_some();
    match if had { cx.node.set_deadline(key, None) } else { Ok(false) } {
        Ok(changed) => resp::int(cx.out, i64::from(changed)),
        Err(Refused(why)) => refused(cx.out, &why),
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&[u8]> {
        s.split_whitespace().map(str::as_bytes).collect()
    }

    fn set_opts(s: &str) -> Result<StringOpts<'_>, OptError<'_>> {
        parse_string_opts(s.split_whitespace().map(str::as_bytes), false)
    }

    fn getex_opts(s: &str) -> Result<StringOpts<'_>, OptError<'_>> {
        parse_string_opts(s.split_whitespace().map(str::as_bytes), true)
    }

    #[test]
    fn strict_int_is_redis_string2ll() {
        for (s, want) in [("5", Some(5)), ("-5", Some(-5)), ("0", Some(0)), ("9223372036854775807", Some(i64::MAX))] {
            assert_eq!(strict_int(s.as_bytes()), want, "{s}");
        }
        for s in ["010", "-0", "-05", "+5", " 5", "5 ", "", "-", "1.5", "9223372036854775808"] {
            assert_eq!(strict_int(s.as_bytes()), None, "{s:?}");
        }
    }

    /// Every combination of SET's flags, as Redis 7.2 takes or refuses it
    /// (checked against redis-server with redis-cli).
    #[test]
    fn set_options_accepted_and_refused_as_redis_does() {
        let ok = |s, nx, xx, get, ttl| {
            assert_eq!(set_opts(s), Ok(StringOpts { nx, xx, get, ttl }), "SET k v {s}");
        };
        ok("", false, false, false, TtlOpt::Unset);
        ok("nx", true, false, false, TtlOpt::Unset);
        ok("XX", false, true, false, TtlOpt::Unset);
        ok("NX NX", true, false, false, TtlOpt::Unset);
        ok("GET", false, false, true, TtlOpt::Unset);
        ok("GET GET", false, false, true, TtlOpt::Unset);
        ok("NX GET", true, false, true, TtlOpt::Unset);
        ok("GET XX", false, true, true, TtlOpt::Unset);
        ok("KEEPTTL", false, false, false, TtlOpt::Keep);
        ok("KEEPTTL KEEPTTL", false, false, false, TtlOpt::Keep);
        ok("XX KEEPTTL GET", false, true, true, TtlOpt::Keep);
        ok("EX 10", false, false, false, TtlOpt::At(TimeArg::Ex, b"10"));
        ok("px 10 nx", true, false, false, TtlOpt::At(TimeArg::Px, b"10"));
        ok("EXAT 10 XX GET", false, true, true, TtlOpt::At(TimeArg::ExAt, b"10"));
        ok("GET PXAT 10", false, false, true, TtlOpt::At(TimeArg::PxAt, b"10"));
        ok("EX 10 EX 20", false, false, false, TtlOpt::At(TimeArg::Ex, b"20"));
        // The argument is taken as it is, checked later: a bad number is not a syntax error.
        ok("EX abc", false, false, false, TtlOpt::At(TimeArg::Ex, b"abc"));
        ok("EX NX", false, false, false, TtlOpt::At(TimeArg::Ex, b"NX"));
        for bad in [
            "NX XX",
            "XX NX",
            "KEEPTTL EX 1",
            "EX 1 KEEPTTL",
            "EX 10 PX 10",
            "PX 1 EXAT 1",
            "EXAT 1 PXAT 1",
            "PXAT 1 EX 1",
            "EX",
            "NX EX",
            "PERSIST",
            "FOO",
            "NX FOO",
            "GETEX",
        ] {
            assert_eq!(set_opts(bad), Err(OptError::Syntax), "SET k v {bad}");
        }
    }

    #[test]
    fn getex_options_accepted_and_refused_as_redis_does() {
        let ok = |s, ttl| assert_eq!(getex_opts(s), Ok(StringOpts { nx: false, xx: false, get: false, ttl }), "{s}");
        ok("", TtlOpt::Unset);
        ok("PERSIST", TtlOpt::Persist);
        ok("persist PERSIST", TtlOpt::Persist);
        ok("EX 5", TtlOpt::At(TimeArg::Ex, b"5"));
        ok("PXAT 5 PXAT 6", TtlOpt::At(TimeArg::PxAt, b"6"));
        for bad in ["PERSIST EX 10", "EX 10 PERSIST", "NX", "XX", "GET", "KEEPTTL", "EX 1 PX 1", "PX"] {
            assert_eq!(getex_opts(bad), Err(OptError::Syntax), "GETEX k {bad}");
        }
    }

    #[test]
    fn set_time_arguments_are_checked_as_redis_does() {
        let now = 1_700_000_000_000u64;
        assert_eq!(deadline_of_arg(TimeArg::Ex, b"10", now), Ok(now + 10_000));
        assert_eq!(deadline_of_arg(TimeArg::Px, b"10", now), Ok(now + 10));
        assert_eq!(deadline_of_arg(TimeArg::ExAt, b"10", now), Ok(10_000), "past, but valid");
        assert_eq!(deadline_of_arg(TimeArg::PxAt, b"9223372036854775807", now), Ok(i64::MAX as u64));
        assert_eq!(deadline_of_arg(TimeArg::Ex, b"9223372036854", now), Ok(9_223_372_036_854_000 + now));
        for (kind, arg) in [
            (TimeArg::Ex, "0"),
            (TimeArg::Px, "-1"),
            (TimeArg::PxAt, "0"),
            (TimeArg::Ex, "9223372036854775"), // fits in ms, overflows when made absolute
            (TimeArg::Ex, "9223372036854775807"), // overflows in ms
            (TimeArg::Px, "9223372036854775807"),
        ] {
            assert_eq!(deadline_of_arg(kind, arg.as_bytes(), now), Err(OptError::InvalidTime), "{kind:?} {arg}");
        }
        for arg in ["abc", "1.5", "010", ""] {
            assert_eq!(deadline_of_arg(TimeArg::Ex, arg.as_bytes(), now), Err(OptError::NotInteger), "{arg}");
        }
    }

    /// Every combination of EXPIRE's flags, as Redis 7.2 takes or refuses it.
    #[test]
    fn expire_options_accepted_and_refused_as_redis_does() {
        let flags = ["NX", "XX", "GT", "LT"];
        for a in 0..5 {
            for b in 0..5 {
                let set: Vec<&str> = [a, b].iter().filter(|&&i| i < 4).map(|&i| flags[i]).collect();
                let has = |f: &str| set.contains(&f);
                let want = if has("NX") && (has("XX") || has("GT") || has("LT")) {
                    Err(OptError::NxAndOthers)
                } else if has("GT") && has("LT") {
                    Err(OptError::GtAndLt)
                } else {
                    Ok(ExpireCond { nx: has("NX"), xx: has("XX"), gt: has("GT"), lt: has("LT") })
                };
                assert_eq!(ExpireCond::parse(set.iter().map(|s| s.as_bytes())), want, "{set:?}");
            }
        }
        assert_eq!(
            ExpireCond::parse(words("xx gt").into_iter()),
            Ok(ExpireCond { xx: true, gt: true, ..Default::default() })
        );
        assert_eq!(ExpireCond::parse(words("NX Foo").into_iter()), Err(OptError::Unsupported(b"Foo")));
        // The first bad option is reported, before incompatible ones.
        assert_eq!(ExpireCond::parse(words("NX XX bar").into_iter()), Err(OptError::Unsupported(b"bar")));
        let mut out = Vec::new();
        OptError::Unsupported(b"Foo").reply(&mut out, "expire");
        assert_eq!(out, b"-ERR Unsupported option Foo\r\n");
    }

    #[test]
    fn expire_conditions_compare_as_redis_does() {
        let c = |s| ExpireCond::parse(words(s).into_iter()).unwrap();
        // (options, current deadline, new deadline, allowed)
        for (opts, current, when, want) in [
            ("", None, 5, true),
            ("", Some(10), 5, true),
            ("NX", None, 5, true),
            ("NX", Some(10), 5, false),
            ("XX", None, 5, false),
            ("XX", Some(10), 5, true),
            ("GT", None, 5, false),
            ("GT", Some(10), 10, false),
            ("GT", Some(10), 11, true),
            ("LT", None, 5, true),
            ("LT", Some(10), 10, false),
            ("LT", Some(10), 9, true),
            ("XX GT", None, 50, false),
            ("XX LT", Some(10), 9, true),
            ("LT", Some(10), -5, true),
        ] {
            assert_eq!(c(opts).allows(current, when), want, "{opts} {current:?} {when}");
        }
    }

    #[test]
    fn expire_times_are_checked_as_redis_does() {
        let now = 1_700_000_000_000i64;
        assert_eq!(expire_when(b"10", true, now), Ok(now + 10_000));
        assert_eq!(expire_when(b"-10", true, now), Ok(now - 10_000));
        assert_eq!(expire_when(b"10", false, 0), Ok(10));
        assert_eq!(expire_when(b"9223372036854775807", false, 0), Ok(i64::MAX));
        assert_eq!(expire_when(b"-9223372036854775808", false, 0), Ok(i64::MIN));
        assert_eq!(expire_when(b"9223372036854775", true, 0), Ok(9_223_372_036_854_775_000));
        for (arg, seconds, base) in [
            ("9223372036854775", true, now),
            ("9223372036854775807", true, 0),
            ("-9223372036854775808", true, 0),
            ("9223372036854775807", false, now),
        ] {
            assert_eq!(expire_when(arg.as_bytes(), seconds, base), Err(OptError::InvalidTime), "{arg}");
        }
        assert_eq!(expire_when(b"ten", true, now), Err(OptError::NotInteger));
    }

    #[test]
    fn ttls_round_and_clamp_as_redis_does() {
        let now = 10_000;
        assert_eq!(ttl_of(None, now, false, false), -2);
        assert_eq!(ttl_of(Some(None), now, true, true), -1);
        assert_eq!(ttl_of(Some(Some(11_499)), now, false, false), 1);
        assert_eq!(ttl_of(Some(Some(11_500)), now, false, false), 2);
        assert_eq!(ttl_of(Some(Some(11_500)), now, true, false), 1_500);
        assert_eq!(ttl_of(Some(Some(9_000)), now, true, false), 0, "never negative");
        assert_eq!(ttl_of(Some(Some(11_500)), now, false, true), 12);
        assert_eq!(ttl_of(Some(Some(u64::MAX)), now, true, true), i64::MAX);
    }

    #[test]
    fn invalid_time_names_the_command() {
        let mut out = Vec::new();
        OptError::InvalidTime.reply(&mut out, "set");
        assert_eq!(out, b"-ERR invalid expire time in 'set' command\r\n");
    }
}
