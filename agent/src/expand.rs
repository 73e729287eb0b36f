//! `$(VAR)` references, as Kubernetes expands them in `env[].value`, `command` and `args`.
//!
//! - `$(NAME)` becomes the value of `NAME` when it is known, and stays as written when not;
//! - `$$` is an escaped `$`, so `$$(NAME)` is the literal text `$(NAME)`;
//! - any other `$` (a trailing one, `$x`, an unclosed `$(`) is kept as written.
//!
//! Expansion is a single pass: a substituted value is never expanded again. Used by the
//! container config (env, command, args) and by volume mounts (`subPathExpr`), so it lives
//! below both.

/// Expands `$(VAR)` references in `input`, looking names up with `vars`.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|r| r.split_once(')')) {
            if let Some(value) = vars(name) {
                out.push_str(&value);
            } else {
                out.push_str("$(");
                out.push_str(name);
                out.push(')');
            }
            rest = tail;
        } else {
            // Not a reference: keep the `$` and go on with what follows it.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A lookup over `(name, value)` pairs where a later pair wins, as kubelet maps a container's
/// final environment when it expands `command` and `args`.
pub fn lookup_in(pairs: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "B" => Some("$(A)".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn x(s: &str) -> String {
        expand(s, &vars)
    }

    #[test]
    fn substitutes_known_references() {
        assert_eq!(x("$(A)"), "alpha");
        assert_eq!(x("pre-$(A)-post"), "pre-alpha-post");
        assert_eq!(x("$(A)$(A)"), "alphaalpha");
        assert_eq!(x("[$(EMPTY)]"), "[]");
    }

    #[test]
    fn leaves_unknown_references_as_written() {
        assert_eq!(x("$(NOPE)"), "$(NOPE)");
        assert_eq!(x("a $(NOPE) $(A)"), "a $(NOPE) alpha");
        assert_eq!(x("$()"), "$()");
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(x("$$(A)"), "$(A)");
        assert_eq!(x("$$$(A)"), "$alpha");
        assert_eq!(x("$$$$(A)"), "$$(A)");
        assert_eq!(x("cost: $$5"), "cost: $5");
    }

    #[test]
    fn keeps_other_dollars() {
        assert_eq!(x("$"), "$");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$A"), "$A");
        assert_eq!(x("${A}"), "${A}");
        assert_eq!(x("$(A"), "$(A", "unclosed reference");
        assert_eq!(x("$($(A)"), "$($(A)", "the name runs to the first `)`");
        assert_eq!(x("$(A $(A)"), "$(A $(A)");
    }

    #[test]
    fn does_not_expand_twice() {
        assert_eq!(x("$(B)"), "$(A)");
    }

    #[test]
    fn handles_non_ascii_text() {
        assert_eq!(x("é$é$(A)ü"), "é$éalphaü");
    }

    #[test]
    fn lookup_in_prefers_later_pairs() {
        let pairs = vec![
            ("A".to_string(), "1".to_string()),
            ("A".to_string(), "2".to_string()),
        ];
        assert_eq!(expand("$(A)", &lookup_in(&pairs)), "2");
    }
}
