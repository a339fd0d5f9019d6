//! Which server a share uses when it names a server object (`spec.serverRef`), or names none and
//! a ClusterOtsServer is the default: the object's URL, API version and credentials, once the
//! object allows the share's namespace. A namespace a ClusterOtsServer does not allow is refused
//! here, before anything is read from its Secrets or sent to its server.

use super::Context;
use crate::error::Error;
use crate::ots::{ApiVersion, Credentials, SecretString};
use crate::resource::server::{
    CredentialsSecretRef, NamespaceCondition, RateLimit, ServerPolicy, ServerSettings,
};
use crate::resource::{ClusterOtsServer, OneTimeShare, OtsServer, ServerKind, ServerSpec, Ttl};
use crate::runtime::throttle::ServerRate;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a share without a server waits for the first list of ClusterOtsServers (to know
/// whether one is the default) before it uses the operator's configured server.
const DEFAULT_LIST_WAIT: Duration = Duration::from_secs(10);

/// The server a share uses.
pub(super) enum ServerChoice<'a> {
    /// The inline `spec.server`, or nothing: the operator's configured server.
    Inline(Option<&'a ServerSpec>),
    /// A server object's URL, API version and credentials (boxed: it is the large one).
    Object(Box<ObjectServer>),
}

/// What a server object says about how to reach its server.
pub struct ObjectServer {
    /// The server's base URL (still checked against the allowlist before any call).
    pub url: String,
    /// The API version to speak.
    pub api: ApiVersion,
    /// The account, read from the object's credentials Secret; `None`: anonymous.
    pub credentials: Option<Credentials>,
    /// The CA certificates it trusts besides the operator's (`caBundleSecretRef`).
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    /// What its shares may ask for.
    pub policy: Option<ServerPolicy>,
    /// The account's custom domain its links are to be on (`shareDomain`).
    pub share_domain: Option<String>,
    /// Kind and name, for messages (`ClusterOtsServer "eu"`).
    pub named: String,
}

impl ObjectServer {
    /// Checks a new share against the server's policy, before anything is sent, and returns
    /// the lifetime to ask for (the share's ttl, else the policy's default, else the default).
    pub fn admit(&self, obj: &OneTimeShare) -> Result<Ttl, Error> {
        let refused = |rule: String| Error::PolicyViolation {
            server: self.named.clone(),
            rule,
        };
        let policy = self.policy.clone().unwrap_or_default();
        let ttl = match (&obj.spec.ttl, &policy.default_ttl) {
            (None, Some(default)) => Ttl::parse(default),
            _ => obj.spec.ttl(),
        }
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
        if let Some(max) = &policy.max_ttl {
            let max = Ttl::parse(max).map_err(|e| Error::InvalidSpec(e.to_string()))?;
            if ttl.0 > max.0 {
                return Err(refused(format!(
                    "ttl {}s is longer than its maxTtl of {}s",
                    ttl.0.as_secs(),
                    max.0.as_secs()
                )));
            }
        }
        if policy.passphrase_required && obj.spec.passphrase_secret_ref.is_none() {
            return Err(refused(
                "it requires a passphrase: set spec.passphraseSecretRef".to_owned(),
            ));
        }
        if let Some(recipient) = &obj.spec.recipient
            && !policy.allowed_recipient_domains.is_empty()
        {
            let domain = recipient
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            if !policy.allowed_recipient_domains.contains(&domain) {
                return Err(refused(format!(
                    "recipients must be at one of its allowed domains ({})",
                    policy.allowed_recipient_domains.join(", ")
                )));
            }
        }
        Ok(ttl)
    }
}

/// The server `obj` uses: its serverRef's object, else its inline server, else the default
/// ClusterOtsServer, else the operator's configured server.
pub(super) async fn choose<'a>(
    ctx: &Context,
    obj: &'a OneTimeShare,
) -> Result<ServerChoice<'a>, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    if let Some(reference) = &obj.spec.server_ref {
        let not_found = || Error::ServerRefNotFound {
            kind: reference.kind.as_str(),
            name: reference.name.clone(),
        };
        return match reference.kind {
            ServerKind::OtsServer => {
                let server = Api::<OtsServer>::namespaced(ctx.client.clone(), &namespace)
                    .get_opt(&reference.name)
                    .await?
                    .ok_or_else(not_found)?;
                let named = format!("OtsServer {:?}", reference.name);
                register_rate(
                    ctx,
                    &server.uid().unwrap_or_default(),
                    Some(&namespace),
                    &server.spec.settings,
                );
                object_server(ctx, &server.spec.settings, &namespace, named).await
            }
            ServerKind::ClusterOtsServer => {
                let server = match cached_cluster_server(ctx, &reference.name) {
                    Some(server) => server,
                    None => Api::<ClusterOtsServer>::all(ctx.client.clone())
                        .get_opt(&reference.name)
                        .await?
                        .ok_or_else(not_found)?,
                };
                cluster_server(ctx, &server, &namespace).await
            }
        }
        .map(|server| ServerChoice::Object(Box::new(server)));
    }
    if obj.spec.server.is_some() {
        return Ok(ServerChoice::Inline(obj.spec.server.as_ref()));
    }
    match default_cluster_server(ctx).await {
        Some(server) => cluster_server(ctx, &server, &namespace)
            .await
            .map(|server| ServerChoice::Object(Box::new(server))),
        None => Ok(ServerChoice::Inline(None)),
    }
}

/// A ClusterOtsServer from the cache, when the cache has listed them and holds it. Never waits:
/// the cache may not list yet (just started, the watch failing or its CRD missing) or may not
/// have seen an object created a moment ago, and a share must not hang on either; the caller
/// then reads the object from the API server.
fn cached_cluster_server(ctx: &Context, name: &str) -> Option<ClusterOtsServer> {
    let store = ctx.cluster_servers.get()?;
    let listed = store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok());
    if !listed {
        return None;
    }
    store
        .get(&kube::runtime::reflector::ObjectRef::new(name))
        .map(|s| (*s).clone())
}

/// The ClusterOtsServer annotated as the default (the oldest, should several be). Before the
/// first list a share waits for it, at most [`DEFAULT_LIST_WAIT`] and only once per process:
/// after a wait in vain, or once the watch failed (no CRD, no rights), shares without a server
/// use the operator's configured server without waiting, until the list arrives.
async fn default_cluster_server(ctx: &Context) -> Option<ClusterOtsServer> {
    let store: &Store<ClusterOtsServer> = ctx.cluster_servers.get()?;
    let listed = store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok());
    if !listed {
        if ctx.cluster_servers_unlisted.load(Ordering::Relaxed) {
            return None;
        }
        let waited = tokio::time::timeout(DEFAULT_LIST_WAIT, store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok());
        if !waited {
            if !ctx.cluster_servers_unlisted.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "ClusterOtsServers are not listed yet (is their CRD installed?): shares without a server use the operator's configured server"
                );
            }
            return None;
        }
    }
    store
        .state()
        .into_iter()
        .filter(|s| s.is_default())
        .min_by_key(|s| {
            (
                s.metadata.creation_timestamp.clone().map(|t| t.0),
                s.name_any(),
            )
        })
        .map(|s| (*s).clone())
}

/// A ClusterOtsServer's server, when it allows `namespace`; its Secrets are in the operator's.
async fn cluster_server(
    ctx: &Context,
    server: &ClusterOtsServer,
    namespace: &str,
) -> Result<ObjectServer, Error> {
    if !allows(ctx, &server.spec.conditions, namespace).await? {
        return Err(Error::ServerRefNotAllowed {
            kind: ServerKind::ClusterOtsServer.as_str(),
            name: server.name_any(),
            namespace: namespace.to_owned(),
        });
    }
    let named = format!("ClusterOtsServer {:?}", server.name_any());
    register_rate(
        ctx,
        &server.uid().unwrap_or_default(),
        None,
        &server.spec.settings,
    );
    object_server(
        ctx,
        &server.spec.settings,
        &ctx.config.state_namespace,
        named,
    )
    .await
}

/// Whether any condition matches the namespace (no conditions: every namespace).
async fn allows(
    ctx: &Context,
    conditions: &[NamespaceCondition],
    namespace: &str,
) -> Result<bool, Error> {
    if conditions.is_empty() {
        return Ok(true);
    }
    let by_name = conditions.iter().any(|c| {
        c.namespaces.iter().any(|n| n == namespace)
            || c.namespace_regexes.iter().any(|r| full_match(r, namespace))
    });
    if by_name {
        return Ok(true);
    }
    let selectors: Vec<&LabelSelector> = conditions
        .iter()
        .filter_map(|c| c.namespace_selector.as_ref())
        .collect();
    if selectors.is_empty() {
        return Ok(false);
    }
    let labels = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(namespace)
        .await?
        .and_then(|n| n.metadata.labels)
        .unwrap_or_default();
    Ok(selectors.into_iter().any(|s| selects(s, &labels)))
}

/// Whether a regular expression matches the whole name; one that does not compile matches
/// nothing.
fn full_match(pattern: &str, name: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(name))
}

/// Whether a label selector selects these labels (matchLabels and matchExpressions, all of them).
pub(super) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// The limit a server object's `rateLimit` sets (burst: requestsPerSecond when not given).
pub(super) fn server_rate(limit: &RateLimit) -> ServerRate {
    ServerRate {
        rate: f64::from(limit.requests_per_second),
        burst: limit.burst.unwrap_or(limit.requests_per_second),
    }
}

/// Tells the throttle the limit a server object (by uid; an OtsServer of `namespace`, or a
/// ClusterOtsServer when `None`) sets for its server, before a share calls it: the server status
/// controller may not have seen the object yet. An OtsServer's limit holds only the calls made
/// for its own namespace.
pub(super) fn register_rate(
    ctx: &Context,
    uid: &str,
    namespace: Option<&str>,
    settings: &ServerSettings,
) {
    if uid.is_empty() {
        return;
    }
    ctx.throttle.set_server_rate(
        uid,
        &settings.url,
        namespace,
        settings.rate_limit.as_ref().map(server_rate),
    );
}

/// A server object's settings, with its credentials read from `namespace`.
async fn object_server(
    ctx: &Context,
    settings: &ServerSettings,
    namespace: &str,
    named: String,
) -> Result<ObjectServer, Error> {
    let secrets = Api::namespaced(ctx.client.clone(), namespace);
    let credentials = match &settings.credentials_secret_ref {
        Some(reference) => Some(read_credentials(&secrets, reference).await?),
        None => None,
    };
    let ca = match &settings.ca_bundle_secret_ref {
        Some(reference) => Some(read_ca(&secrets, reference).await?),
        None => None,
    };
    Ok(ObjectServer {
        url: settings.url.clone(),
        api: settings.api.into(),
        credentials,
        ca,
        policy: settings.policy.clone(),
        share_domain: settings.share_domain.clone(),
        named,
    })
}

/// The PEM certificates of a server object's CA bundle.
async fn read_ca(
    secrets: &Api<Secret>,
    reference: &crate::resource::SecretKeyRef,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let pem = secrets
        .get_opt(&reference.name)
        .await?
        .ok_or_else(|| Error::SecretNotFound {
            name: reference.name.clone(),
        })?
        .data
        .unwrap_or_default()
        .remove(&reference.key)
        .ok_or_else(|| Error::KeyNotFound {
            name: reference.name.clone(),
            key: reference.key.clone(),
        })?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem.0)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(Error::InvalidSpec(format!(
            "key {:?} of the server's CA bundle Secret {:?} holds no PEM certificate",
            reference.key, reference.name
        )));
    }
    Ok(certs)
}

async fn read_credentials(
    secrets: &Api<Secret>,
    reference: &CredentialsSecretRef,
) -> Result<Credentials, Error> {
    let missing = || Error::CredentialsNotFound {
        name: reference.name.clone(),
    };
    let data = secrets
        .get_opt(&reference.name)
        .await?
        .ok_or_else(missing)?
        .data
        .unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| std::str::from_utf8(&v.0).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(missing)
    };
    Ok(Credentials::new(
        text(&reference.username_key)?,
        SecretString::from(text(&reference.api_token_key)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_selector_needs_every_label_and_every_expression() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("tier", "prod")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert!(selects(
            &selector,
            &labels(&[("tier", "prod"), ("team", "a")])
        ));
        assert!(!selects(
            &selector,
            &labels(&[("tier", "prod"), ("team", "c")])
        ));
        assert!(!selects(&selector, &labels(&[("team", "a")])));
        let absent = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "restricted".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        assert!(selects(&absent, &labels(&[])));
        assert!(!selects(&absent, &labels(&[("restricted", "yes")])));
        let unknown = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Gt".into(),
                values: None,
            }]),
        };
        assert!(
            !selects(&unknown, &labels(&[("x", "1")])),
            "an unknown operator selects nothing"
        );
    }

    fn with_policy(policy: serde_json::Value) -> ObjectServer {
        ObjectServer {
            url: "https://eu.onetimesecret.com".into(),
            api: ApiVersion::Auto,
            credentials: None,
            ca: None,
            policy: Some(serde_json::from_value(policy).unwrap()),
            share_domain: None,
            named: "OtsServer \"eu\"".into(),
        }
    }

    fn share(spec: serde_json::Value) -> OneTimeShare {
        OneTimeShare::new("s", serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn a_policy_gives_its_default_ttl_and_refuses_what_it_does_not_allow() {
        let server = with_policy(serde_json::json!({
            "maxTtl": "1h", "defaultTtl": "30m", "passphraseRequired": true,
            "allowedRecipientDomains": ["example.com"]
        }));
        let pass = serde_json::json!({"name": "p", "key": "k"});
        let ok =
            share(serde_json::json!({"secretRef": {"name": "db"}, "passphraseSecretRef": pass}));
        assert_eq!(server.admit(&ok).unwrap(), Ttl(Duration::from_secs(1800)));
        let long = share(
            serde_json::json!({"secretRef": {"name": "db"}, "passphraseSecretRef": pass, "ttl": "2h"}),
        );
        let refused = server.admit(&long).unwrap_err();
        assert_eq!(refused.reason(), crate::error::Reason::PolicyViolation);
        assert!(refused.to_string().contains("maxTtl"), "{refused}");
        let bare = share(serde_json::json!({"secretRef": {"name": "db"}}));
        assert!(
            server
                .admit(&bare)
                .unwrap_err()
                .to_string()
                .contains("passphrase")
        );
        let elsewhere = share(
            serde_json::json!({"secretRef": {"name": "db"}, "passphraseSecretRef": pass, "recipient": "eve@example.org"}),
        );
        assert!(
            server
                .admit(&elsewhere)
                .unwrap_err()
                .to_string()
                .contains("example.com")
        );
        let inside = share(
            serde_json::json!({"secretRef": {"name": "db"}, "passphraseSecretRef": pass, "recipient": "alice@Example.com"}),
        );
        assert!(server.admit(&inside).is_ok());
        // Without a policy: the share's own ttl, else the default.
        let open = ObjectServer {
            policy: None,
            ..with_policy(serde_json::json!({}))
        };
        assert_eq!(
            open.admit(&bare).unwrap(),
            Ttl(Duration::from_secs(7 * 86400))
        );
    }

    #[test]
    fn a_namespace_regex_matches_the_whole_name_and_a_broken_one_nothing() {
        assert!(full_match("team-.*", "team-a"));
        assert!(
            !full_match("team-.*", "old-team-a"),
            "anchored at both ends"
        );
        assert!(!full_match("team", "team-a"));
        assert!(full_match("team-a|team-b", "team-b"));
        assert!(
            !full_match("team-(", "team-("),
            "does not compile: matches nothing"
        );
    }
}
