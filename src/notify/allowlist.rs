//! Which notification URLs the operator sends to (`--allow-notification-url`): origins or host
//! patterns such as `https://hooks.slack.com` or `https://*.webhook.office.com`. Nothing is
//! allowed unless listed; `https` only, unless an entry says `http://`.

use std::str::FromStr;

use url::Url;

use super::endpoint::EndpointError;

/// An allowlist entry could not be read; it names the entry (an operator's flag, not a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed notification URL {entry:?}: {problem}")]
pub struct AllowlistError {
    entry: String,
    problem: &'static str,
}

/// How a host is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This host only.
    Exact(String),
    /// Any host under this domain (`*.webhook.office.com`), not the domain itself.
    Subdomains(String),
}

/// One allowed origin: scheme, host pattern and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: String,
    host: HostPattern,
    port: u16,
}

/// A placeholder for the `*` label, which `Url` would otherwise have to accept as a host.
const WILDCARD_LABEL: &str = "wildcard-label-placeholder";

impl FromStr for AllowedOrigin {
    type Err = AllowlistError;

    fn from_str(entry: &str) -> Result<AllowedOrigin, AllowlistError> {
        let fail = |problem| AllowlistError {
            entry: entry.to_owned(),
            problem,
        };
        let with_scheme = if entry.contains("://") {
            entry.to_owned()
        } else {
            format!("https://{entry}")
        };
        let (wildcard, text) = match with_scheme.split_once("://*.") {
            Some((scheme, rest)) => (true, format!("{scheme}://{WILDCARD_LABEL}.{rest}")),
            None => (false, with_scheme),
        };
        let url = Url::parse(&text).map_err(|_| fail("not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(fail("the scheme must be https or http"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(fail("an origin has no path, query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(fail("an origin has no credentials"));
        }
        let host = url.host_str().ok_or_else(|| fail("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| fail("no port"))?;
        let host = if wildcard {
            let domain = host
                .strip_prefix(WILDCARD_LABEL)
                .and_then(|rest| rest.strip_prefix('.'))
                .ok_or_else(|| fail("a wildcard is only allowed as the first label"))?;
            if !domain.contains('.') {
                return Err(fail("a wildcard needs a domain of two labels or more"));
            }
            HostPattern::Subdomains(domain.to_owned())
        } else {
            if host.contains(WILDCARD_LABEL) || host.contains('*') {
                return Err(fail("a wildcard is only allowed as the first label"));
            }
            HostPattern::Exact(host.to_owned())
        };
        Ok(AllowedOrigin {
            scheme: url.scheme().to_owned(),
            host,
            port,
        })
    }
}

impl AllowedOrigin {
    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_matches = match &self.host {
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        };
        host_matches && scheme == self.scheme && port == self.port
    }
}

/// The allowed origins; empty allows nothing.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(Vec<AllowedOrigin>);

impl Allowlist {
    /// Reads every entry; the first unreadable one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Allowlist, AllowlistError> {
        entries
            .iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(Allowlist)
    }

    /// Whether `url` may be sent to. The error names the host, never the path or query.
    pub fn check(&self, url: &Url) -> Result<(), EndpointError> {
        let host = url.host_str().ok_or(EndpointError::Malformed)?;
        let port = url
            .port_or_known_default()
            .ok_or(EndpointError::Malformed)?;
        let allowed = self
            .0
            .iter()
            .any(|origin| origin.matches(url.scheme(), host, port));
        if allowed {
            Ok(())
        } else {
            Err(EndpointError::NotAllowed {
                host: host.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowlist(entries: &[&str]) -> Allowlist {
        Allowlist::parse(entries).unwrap()
    }

    fn allowed(list: &Allowlist, url: &str) -> bool {
        list.check(&Url::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn an_origin_allows_its_host_on_https_and_its_port_only() {
        let list = allowlist(&["https://hooks.slack.com"]);
        assert!(allowed(&list, "https://hooks.slack.com/services/T0/B0/x"));
        assert!(allowed(&list, "https://HOOKS.slack.com:443/x"));
        assert!(!allowed(&list, "http://hooks.slack.com/x"));
        assert!(!allowed(&list, "https://hooks.slack.com:8443/x"));
        assert!(!allowed(&list, "https://hooks.slack.com.evil.example/x"));
        assert!(!allowed(&list, "https://evil.example/hooks.slack.com"));
        assert!(!allowed(&list, "https://x.hooks.slack.com/x"));
    }

    #[test]
    fn a_wildcard_allows_subdomains_only() {
        let list = allowlist(&["https://*.webhook.office.com"]);
        assert!(allowed(
            &list,
            "https://contoso.webhook.office.com/webhookb2/x"
        ));
        assert!(allowed(&list, "https://a.b.webhook.office.com/x"));
        assert!(!allowed(&list, "https://webhook.office.com/x"));
        assert!(!allowed(&list, "https://evilwebhook.office.com/x"));
        assert!(!allowed(
            &list,
            "https://contoso.webhook.office.com.evil.example/x"
        ));
    }

    #[test]
    fn http_only_when_an_entry_says_so_and_a_bare_host_means_https() {
        let list = allowlist(&["http://events.internal.example:8080", "events.example.com"]);
        assert!(allowed(&list, "http://events.internal.example:8080/in"));
        assert!(!allowed(&list, "https://events.internal.example:8080/in"));
        assert!(allowed(&list, "https://events.example.com/in"));
        assert!(!allowed(&list, "http://events.example.com/in"));
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allowed(&Allowlist::default(), "https://hooks.slack.com/x"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for entry in [
            "ftp://hooks.slack.com",
            "https://hooks.slack.com/services",
            "https://hooks.slack.com?x=1",
            "https://user:pw@hooks.slack.com",
            "https://*.com",
            "https://a.*.example.com",
            "https://",
        ] {
            assert!(Allowlist::parse(&[entry]).is_err(), "{entry}");
        }
    }

    #[test]
    fn a_refusal_names_the_host_but_not_the_path_or_query() {
        let list = allowlist(&["https://hooks.slack.com"]);
        let url = Url::parse("https://other.example/services/T000/B000/SECRETTOKEN?k=QUERYTOKEN")
            .unwrap();
        let err = list.check(&url).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(text.contains("other.example"), "{text}");
            assert!(
                !text.contains("SECRETTOKEN") && !text.contains("QUERYTOKEN"),
                "{text}"
            );
        }
    }
}
