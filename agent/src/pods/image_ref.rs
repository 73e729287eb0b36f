//! Image references checked by the grammar of the distribution `reference` package, which
//! kubelet applies before it asks the runtime for anything: `[domain/]path[:tag][@digest]`,
//! lowercase path components joined by `.`, `_`, `__` or dashes, a tag of at most 128 word
//! characters, a digest whose hex length fits its algorithm, 255 characters of name at most.
//! A reference that fails is kubelet's InvalidImageName, never a pull that cannot succeed.

/// kubelet's reason for a container whose image reference does not parse.
pub const INVALID_REASON: &str = "InvalidImageName";

const FORMAT: &str = "invalid reference format";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Checks `image`; the error is the reference package's message.
pub fn check(image: &str) -> Result<(), String> {
    if image.len() == 64
        && image
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!(
            "invalid repository name ({image}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        check_digest(d)?;
    }
    // A tag is what follows the last ':' after the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err(FORMAT.to_string());
    }
    check_name(name)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(FORMAT.to_string());
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_domain(first) => (Some(first), rest),
        _ => (None, name),
    };
    if let Some(d) = domain
        && !valid_domain(d)
    {
        return Err(FORMAT.to_string());
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        // Docker Hub's short names live under library/, and the message says so.
        let remote = if domain.is_none() && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        return Err(format!(
            "{FORMAT}: repository name ({remote}) must be lowercase"
        ));
    }
    if !path.split('/').all(valid_path_component) {
        return Err(FORMAT.to_string());
    }
    if path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(format!(
            "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        ));
    }
    Ok(())
}

/// Docker's rule for telling a registry from the first path component.
fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, rest)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, rest.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    let host_ok = host.is_none_or(|h| !h.is_empty() && h.split('.').all(valid_domain_component));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    t.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Err(FORMAT.to_string());
    };
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|c| {
        c.chars().next().is_some_and(|x| x.is_ascii_alphabetic())
            && c.chars().all(|x| x.is_ascii_alphanumeric())
    });
    if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FORMAT.to_string());
    }
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm".to_string()),
    };
    if hex.len() != length || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(if hex.len() == length {
            "invalid checksum digest format".to_string()
        } else {
            "invalid checksum digest length".to_string()
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_users_write_are_valid() {
        for ok in [
            "busybox",
            "busybox:1.35",
            "library/busybox:latest",
            "127.0.0.1:5000/busybox:1.35",
            "localhost/pause",
            "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "my-registry.example:443/a/b__c/d.e-f---g:TAG_1.x",
            "[::1]:5000/busybox",
            &format!("127.0.0.1:5000/busybox@{SHA}"),
            &format!("busybox:1.35@{SHA}"),
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn malformed_references_say_why() {
        for bad in [
            "",
            ":",
            "@",
            "busybox:",
            "/busybox",
            "busybox/",
            "a//b",
            "a..b",
            "-a",
            "a-",
            "busy box",
            "a:b:c",
            "a@sha256:abc",
            "127.0.0.1:port/x",
            "x:-tag",
            "registry.example/a!b",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check("127.0.0.1:5000/BusyBox"),
            Err(
                "invalid reference format: repository name (BusyBox) must be lowercase".to_string()
            )
        );
        assert_eq!(
            check("Busybox"),
            Err(
                "invalid reference format: repository name (library/Busybox) must be lowercase"
                    .to_string()
            )
        );
        assert_eq!(
            check("busybox:x@md5:0123456789abcdef0123456789abcdef"),
            Err("unsupported digest algorithm".to_string())
        );
        let long = format!("a/{}", "b".repeat(300));
        assert!(check(&long).unwrap_err().contains("255"));
        let long_path_with_registry = format!("registry.example/{}", "b".repeat(250));
        assert_eq!(
            check(&long_path_with_registry),
            Ok(()),
            "the registry does not count"
        );
        assert!(
            check(&"0123456789abcdef".repeat(4))
                .unwrap_err()
                .contains("64-byte hexadecimal")
        );
        assert_eq!(
            check("busybox@sha256:0123456789abcdef0123456789abcdef"),
            Err("invalid checksum digest length".to_string())
        );
        assert!(check(&format!("a:{}", "t".repeat(129))).is_err());
    }
}
