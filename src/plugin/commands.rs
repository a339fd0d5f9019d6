//! What each `kubectl ots` subcommand does against the cluster.

use super::error::{PluginError, is_not_found};
use super::{CharsetArg, GenerateArgs, LinkArgs, ShareArgs, Target};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use ots_operator::resource::BURN_ANNOTATION;
use ots_operator::resource::{
    Charset, DeletionPolicy, GenerateSpec, GeneratedSecretPolicy, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, OneTimeShare, OneTimeShareSpec, OneTimeShareStatus, Phase,
    RESHARE_ANNOTATION, SecretKeyRef, SecretSourceRef, Ttl,
};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

/// How often waits look again.
const POLL: Duration = Duration::from_millis(500);

fn shares(target: &Target) -> Api<OneTimeShare> {
    Api::namespaced(target.client.clone(), &target.namespace)
}

/// Whether `name` is a valid object name (an RFC 1123 subdomain), so no odd name reaches a URL.
fn check_name(what: &str, name: &str) -> Result<(), PluginError> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(PluginError::Usage(format!(
            "{what} {name:?} is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        )))
    }
}

/// Whether `key` is a valid Secret key.
fn check_key(key: &str) -> Result<(), PluginError> {
    if !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(())
    } else {
        Err(PluginError::Usage(format!(
            "key {key:?} is not a valid Secret key: letters, digits, '-', '_' and '.'"
        )))
    }
}

/// Checks that a Secret exists by reading its metadata only (its values never reach this tool).
async fn secret_exists(target: &Target, name: &str) -> Result<(), PluginError> {
    let secrets: Api<Secret> = Api::namespaced(target.client.clone(), &target.namespace);
    let action = format!("get Secret {}/{name}", target.namespace);
    match secrets.get_metadata(name).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Err(PluginError::SecretNotFound {
            namespace: target.namespace.clone(),
            name: name.to_owned(),
        }),
        Err(e) => Err(PluginError::from_kube(action, e)),
    }
}

/// Turns a 404 about the share API into "not installed" or "no such share".
async fn share_error(target: &Target, name: &str, action: String, e: kube::Error) -> PluginError {
    if is_not_found(&e) {
        if !crd_installed(target).await {
            return PluginError::CrdMissing;
        }
        return PluginError::ShareNotFound {
            namespace: target.namespace.clone(),
            name: name.to_owned(),
        };
    }
    PluginError::from_kube(action, e)
}

/// Whether the API server serves onetimeshares.ots.dev (discovery is open to every user).
async fn crd_installed(target: &Target) -> bool {
    match target
        .client
        .list_api_group_resources("ots.dev/v1alpha1")
        .await
    {
        Ok(list) => list.resources.iter().any(|r| r.name == "onetimeshares"),
        Err(_) => false,
    }
}

/// Reads one share.
async fn get_share(target: &Target, name: &str) -> Result<OneTimeShare, PluginError> {
    check_name("OneTimeShare", name)?;
    let action = format!("get OneTimeShare {}/{name}", target.namespace);
    match shares(target).get(name).await {
        Ok(share) => Ok(share),
        Err(e) => Err(share_error(target, name, action, e).await),
    }
}

/// `kubectl ots share`.
pub async fn share(target: &Target, args: ShareArgs) -> Result<(), PluginError> {
    check_name("Secret", &args.secret)?;
    if let Some(key) = &args.key {
        check_key(key)?;
    }
    if let Some(ttl) = &args.ttl {
        Ttl::parse(ttl).map_err(|e| PluginError::Usage(e.to_string()))?;
    }
    if let Some(name) = &args.link.name {
        check_name("OneTimeShare", name)?;
    }
    let passphrase = match &args.passphrase_from {
        Some(from) => {
            let Some((name, key)) = from.split_once('/') else {
                return Err(PluginError::Usage(format!(
                    "--passphrase-from {from:?} must be SECRET/KEY, e.g. share-passphrases/db"
                )));
            };
            check_name("Secret", name)?;
            check_key(key)?;
            Some(SecretKeyRef {
                name: name.to_owned(),
                key: key.to_owned(),
            })
        }
        None => None,
    };
    if let Some(recipient) = &args.recipient {
        let valid = recipient
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
        if !valid || recipient.chars().any(char::is_whitespace) {
            return Err(PluginError::Usage(format!(
                "--recipient {recipient:?} must be an email address such as alice@example.com"
            )));
        }
    }
    if !crd_installed(target).await {
        return Err(PluginError::CrdMissing);
    }
    secret_exists(target, &args.secret).await?;
    if let Some(passphrase) = &passphrase {
        secret_exists(target, &passphrase.name).await?;
    }

    let spec = OneTimeShareSpec {
        secret_ref: SecretSourceRef {
            name: args.secret.clone(),
            key: args.key.clone(),
        },
        ttl: args.ttl.clone(),
        passphrase_secret_ref: passphrase,
        recipient: args.recipient.clone(),
        server: None,
        server_ref: None,
        deletion_policy: DeletionPolicy::Burn,
        on_secret_change: Default::default(),
        generate: None,
        on_expiry: Default::default(),
        max_shares: None,
        link_secret_ref: None,
        notifications: None,
    };
    create_and_print_link(target, &args.secret, &args.link, spec).await
}

/// Creates a OneTimeShare (named `name`, else after `secret` with a random suffix); with `wait`,
/// waits for its link and prints it once, on stdout.
async fn create_and_print_link(
    target: &Target,
    secret: &str,
    link: &LinkArgs,
    spec: OneTimeShareSpec,
) -> Result<(), PluginError> {
    let LinkArgs {
        name,
        wait,
        timeout,
    } = link;
    let (name, wait, timeout) = (name.as_deref(), *wait, *timeout);
    let metadata = match name {
        Some(name) => ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        None => ObjectMeta {
            generate_name: Some(format!("{}-", truncate(secret, 200))),
            ..Default::default()
        },
    };
    let share = OneTimeShare {
        metadata,
        spec,
        status: None,
    };
    let shown = name.unwrap_or(secret).to_owned();
    let action = format!("create a OneTimeShare in {}", target.namespace);
    let created = match shares(target).create(&PostParams::default(), &share).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            return Err(PluginError::AlreadyExists {
                namespace: target.namespace.clone(),
                name: shown,
            });
        }
        Err(e) => return Err(share_error(target, &shown, action, e).await),
    };
    let name = created.name_any();
    if !wait {
        println!("onetimeshare.ots.dev/{name} created");
        eprintln!("the link will be in status.link; `kubectl ots get {name}` shows its state");
        return Ok(());
    }
    eprintln!("onetimeshare.ots.dev/{name} created; waiting for the link");
    let shared = wait_for(target, &name, "the link", timeout, |status| {
        status.phase == Phase::Shared
    })
    .await?;
    let Some(link) = shared.status.and_then(|s| s.link) else {
        return Err(PluginError::Api {
            action: format!("read the link of OneTimeShare {}/{name}", target.namespace),
            message: "status.link is empty".into(),
        });
    };
    // The only place the link is printed: once, on stdout.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{link}")?;
    out.flush()?;
    Ok(())
}

/// `kubectl ots generate`: a OneTimeShare with spec.generate. The value never reaches this tool:
/// the operator writes it into the Secret and shares it; only the link is printed.
pub async fn generate(target: &Target, args: GenerateArgs) -> Result<(), PluginError> {
    check_name("Secret", &args.secret)?;
    check_key(&args.key)?;
    if let Some(ttl) = &args.ttl {
        Ttl::parse(ttl).map_err(|e| PluginError::Usage(e.to_string()))?;
    }
    if let Some(name) = &args.link.name {
        check_name("OneTimeShare", name)?;
    }
    if !crd_installed(target).await {
        return Err(PluginError::CrdMissing);
    }
    // Metadata only: whether the Secret exists and whether the operator made it.
    let secrets: Api<Secret> = Api::namespaced(target.client.clone(), &target.namespace);
    let action = format!("get Secret {}/{}", target.namespace, args.secret);
    match secrets.get_metadata(&args.secret).await {
        Ok(existing)
            if existing.labels().get(MANAGED_BY_LABEL).map(String::as_str)
                != Some(MANAGED_BY_VALUE) =>
        {
            return Err(PluginError::SecretNotOwned {
                namespace: target.namespace.clone(),
                name: args.secret.clone(),
            });
        }
        Ok(_) => eprintln!(
            "Secret {}/{} was made by the ots-operator: a value it holds under {:?} is shared as it is, else one is generated into it",
            target.namespace, args.secret, args.key
        ),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(PluginError::from_kube(action, e)),
    }
    let spec = OneTimeShareSpec {
        secret_ref: SecretSourceRef {
            name: args.secret.clone(),
            key: Some(args.key.clone()),
        },
        ttl: args.ttl.clone(),
        passphrase_secret_ref: None,
        recipient: None,
        server: None,
        server_ref: None,
        deletion_policy: DeletionPolicy::Burn,
        on_secret_change: Default::default(),
        generate: Some(GenerateSpec {
            length: args.length,
            charset: match args.charset {
                CharsetArg::Alphanumeric => Charset::Alphanumeric,
                CharsetArg::AlphanumericSymbols => Charset::AlphanumericSymbols,
                CharsetArg::Hex => Charset::Hex,
                CharsetArg::Numeric => Charset::Numeric,
            },
            secret_policy: if args.delete_with_share {
                GeneratedSecretPolicy::Delete
            } else {
                GeneratedSecretPolicy::Retain
            },
        }),
        on_expiry: Default::default(),
        max_shares: None,
        link_secret_ref: None,
        notifications: None,
    };
    create_and_print_link(target, &args.secret, &args.link, spec).await
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// Polls a share until `done` holds for its status; a Failed phase ends the wait with its reason.
async fn wait_for(
    target: &Target,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&OneTimeShareStatus) -> bool,
) -> Result<OneTimeShare, PluginError> {
    let deadline = Instant::now() + timeout;
    loop {
        let share = get_share(target, name).await?;
        let status = share.status.clone().unwrap_or_default();
        if done(&status) {
            return Ok(share);
        }
        let (reason, message) = ready(&status);
        if status.phase == Phase::Failed {
            return Err(PluginError::ShareFailed {
                namespace: target.namespace.clone(),
                name: name.to_owned(),
                reason,
                message,
            });
        }
        if Instant::now() >= deadline {
            let last = if reason.is_empty() {
                format!(
                    "; phase {} (is the ots-operator running and watching {}?)",
                    status.phase.as_str(),
                    target.namespace
                )
            } else {
                format!("; phase {}, {reason}: {message}", status.phase.as_str())
            };
            return Err(PluginError::Timeout {
                what: format!("{what} of OneTimeShare {}/{name}", target.namespace),
                after: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The Ready condition's reason and message (empty when there is none).
fn ready(status: &OneTimeShareStatus) -> (String, String) {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// One table row: NAME PHASE SECRET EXPIRES OPENED REASON (never the link).
fn row(share: &OneTimeShare) -> [String; 6] {
    let status = share.status.clone().unwrap_or_default();
    let secret = match &share.spec.secret_ref.key {
        Some(key) => format!("{}/{key}", share.spec.secret_ref.name),
        None => share.spec.secret_ref.name.clone(),
    };
    let expires = status
        .expires_at
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| "-".into());
    let opened = match (&status.received_at, &status.opened_at, status.phase) {
        (Some(at), _, _) => format!("yes ({})", at.0),
        (None, _, Phase::Received) => "yes".into(),
        (None, Some(at), _) => format!("opened, not revealed ({})", at.0),
        _ => "no".into(),
    };
    let phase = status.phase.as_str().to_owned();
    let (reason, _) = ready(&status);
    [
        share.name_any(),
        phase,
        secret,
        expires,
        opened,
        if reason.is_empty() {
            "-".into()
        } else {
            reason
        },
    ]
}

/// Prints share rows as an aligned table with a header.
fn print_table(rows: &[[String; 6]]) -> Result<(), PluginError> {
    super::table::print_table(
        &["NAME", "PHASE", "SECRET", "EXPIRES", "OPENED", "REASON"],
        rows,
    )
}

/// The ended links of a share as lines of a table, oldest first: when each was shared, how it
/// ended and when (never the link). `None` when no link has ended yet.
fn history_lines(status: &OneTimeShareStatus) -> Option<Vec<String>> {
    if status.history.is_empty() {
        return None;
    }
    let header = ["SHARED", "ENDED", "AT"].map(String::from);
    let rows: Vec<[String; 3]> = status
        .history
        .iter()
        .map(|past| {
            [
                past.shared_at.0.to_string(),
                past.ended.as_str().to_owned(),
                past.ended_at.0.to_string(),
            ]
        })
        .collect();
    let mut widths = [0usize; 3];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut lines = vec![format!(
        "History (ended links, oldest first; at most {}):",
        ots_operator::resource::MAX_HISTORY
    )];
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        lines.push(format!("  {}", cells.join("   ").trim_end()));
    }
    Some(lines)
}

/// `kubectl ots get NAME`: the share's row, then its history of ended links.
pub async fn get(target: &Target, name: &str) -> Result<(), PluginError> {
    let share = get_share(target, name).await?;
    print_table(&[row(&share)])?;
    let status = share.status.unwrap_or_default();
    if let Some(lines) = history_lines(&status) {
        let mut out = std::io::stdout().lock();
        writeln!(out)?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    let (reason, message) = ready(&status);
    if !reason.is_empty() {
        eprintln!("Ready: {reason}: {message}");
    }
    Ok(())
}

/// `kubectl ots list`.
pub async fn list(target: &Target) -> Result<(), PluginError> {
    let action = format!("list OneTimeShares in {}", target.namespace);
    let all = match shares(target).list(&ListParams::default()).await {
        Ok(all) => all,
        Err(e) if is_not_found(&e) => return Err(PluginError::CrdMissing),
        Err(e) => return Err(PluginError::from_kube(action, e)),
    };
    if all.items.is_empty() {
        eprintln!("No OneTimeShares in namespace {}.", target.namespace);
        return Ok(());
    }
    let rows: Vec<[String; 6]> = all.items.iter().map(row).collect();
    print_table(&rows)
}

/// `kubectl ots reissue NAME`: a new `ots.dev/reshare` value (the current time).
pub async fn reissue(
    target: &Target,
    name: &str,
    wait: Option<Duration>,
) -> Result<(), PluginError> {
    get_share(target, name).await?;
    let token = Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {RESHARE_ANNOTATION: token}}});
    let action = format!("patch OneTimeShare {}/{name}", target.namespace);
    if let Err(e) = shares(target)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        return Err(share_error(target, name, action, e).await);
    }
    eprintln!("onetimeshare.ots.dev/{name} reissue requested ({RESHARE_ANNOTATION}={token})");
    if let Some(timeout) = wait {
        let reissued = wait_for(target, name, "the reissued link", timeout, |status| {
            status.phase == Phase::Shared && status.reshare_token.as_deref() == Some(&token)
        })
        .await?;
        // With spec.linkSecretRef the link is in that Secret, never in status.
        let whereabouts = match reissued.status.and_then(|s| s.link_secret_name) {
            Some(secret) => format!("in Secret {secret}"),
            None => "status.link".to_owned(),
        };
        eprintln!(
            "onetimeshare.ots.dev/{name} has a new link ({whereabouts}; the old one no longer works)"
        );
    }
    Ok(())
}

/// `kubectl ots burn NAME --keep`: a new `ots.dev/burn` value (the current time), then a wait
/// until the operator has acted on it; says `burned` (the link was live) or `nothing to burn`.
pub async fn burn_and_keep(
    target: &Target,
    name: &str,
    timeout: Duration,
) -> Result<(), PluginError> {
    let share = get_share(target, name).await?;
    let phase = share.status.map(|s| s.phase).unwrap_or_default();
    if !phase.has_link() {
        // The operator acts on the annotation only once a link exists; none does yet.
        println!(
            "nothing to burn: no link was made yet (phase {}); delete the OneTimeShare to stop it sharing",
            phase.as_str()
        );
        return Ok(());
    }
    let token = Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {BURN_ANNOTATION: token}}});
    let action = format!("patch OneTimeShare {}/{name}", target.namespace);
    if let Err(e) = shares(target)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        return Err(share_error(target, name, action, e).await);
    }
    eprintln!("onetimeshare.ots.dev/{name} burn requested ({BURN_ANNOTATION}={token})");
    let acted_on = wait_for(target, name, "the burn", timeout, |status| {
        status.burn_token.as_deref() == Some(&token)
    })
    .await?;
    let phase = acted_on.status.map(|s| s.phase).unwrap_or_default();
    if phase == Phase::Burned {
        println!(
            "burned: the link no longer works; the OneTimeShare stays (kubectl ots reissue {name} shares it again)"
        );
    } else {
        println!(
            "nothing to burn: the link was no longer live (phase {})",
            phase.as_str()
        );
    }
    Ok(())
}

/// `kubectl ots burn NAME`: deletion with the Burn policy, then a wait until the resource is gone.
pub async fn burn(target: &Target, name: &str, timeout: Duration) -> Result<(), PluginError> {
    let share = get_share(target, name).await?;
    let uid = share.uid().unwrap_or_default();
    let api = shares(target);
    if share.spec.deletion_policy != DeletionPolicy::Burn {
        let patch = json!({"spec": {"deletionPolicy": "Burn"}});
        let action = format!("patch OneTimeShare {}/{name}", target.namespace);
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            return Err(share_error(target, name, action, e).await);
        }
        // The operator adds its finalizer for Burn: deleting before that would skip the burn.
        let deadline = Instant::now() + timeout;
        loop {
            let current = get_share(target, name).await?;
            if current
                .finalizers()
                .iter()
                .any(|f| f == ots_operator::resource::FINALIZER)
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(PluginError::Timeout {
                    what: format!(
                        "the ots-operator to take charge of burning OneTimeShare {}/{name}",
                        target.namespace
                    ),
                    after: timeout,
                    last: "; it was not deleted (is the ots-operator running?)".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
    let action = format!("delete OneTimeShare {}/{name}", target.namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(share_error(target, name, action, e).await),
    }
    let deadline = Instant::now() + timeout;
    loop {
        let action = format!("get OneTimeShare {}/{name}", target.namespace);
        match api.get_opt(name).await {
            Ok(None) => break,
            Ok(Some(current)) if current.uid().unwrap_or_default() != uid => break,
            Ok(Some(_)) => {}
            Err(e) => return Err(PluginError::from_kube(action, e)),
        }
        if Instant::now() >= deadline {
            return Err(PluginError::Timeout {
                what: format!("OneTimeShare {}/{name} to be burned and deleted", target.namespace),
                after: timeout,
                last: "; it is being deleted, but the ots-operator has not finished the burn (is it running? `kubectl ots get` and its Events say more)".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    eprintln!("onetimeshare.ots.dev/{name} deleted");
    println!("{}", burn_outcome(target, &uid).await);
    Ok(())
}

/// What the operator's Events say became of the link of a deleted share.
async fn burn_outcome(target: &Target, uid: &str) -> String {
    let events: Api<Event> = Api::namespaced(target.client.clone(), &target.namespace);
    let Ok(list) = events.list(&ListParams::default()).await else {
        return "deleted; whether the link was burned is unknown (Events cannot be read)".into();
    };
    let about: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid))
        .collect();
    if about.iter().any(|e| e.reason.as_deref() == Some("Burned")) {
        return "burned: the link no longer works".into();
    }
    if let Some(failed) = about
        .iter()
        .find(|e| e.reason.as_deref() == Some("BurnFailed"))
    {
        return format!(
            "not burned: {}",
            failed.note.as_deref().unwrap_or("the burn failed")
        );
    }
    "nothing to burn: the link had already been opened, burned or had expired".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use ots_operator::resource::{LinkEnd, PastLink};

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn the_history_reads_as_a_table_of_ended_links_without_the_link() {
        assert_eq!(history_lines(&OneTimeShareStatus::default()), None);
        let status = OneTimeShareStatus {
            link: Some("https://ots.example/secret/linkKEY123".into()),
            history: vec![
                PastLink {
                    shared_at: at(1_764_900_000),
                    ended: LinkEnd::Reshared,
                    ended_at: at(1_764_900_060),
                },
                PastLink {
                    shared_at: at(1_764_900_060),
                    ended: LinkEnd::Expired,
                    ended_at: at(1_764_903_660),
                },
            ],
            ..Default::default()
        };
        let lines = history_lines(&status).unwrap();
        assert_eq!(
            lines,
            [
                "History (ended links, oldest first; at most 10):",
                "  SHARED                 ENDED      AT",
                "  2025-12-05T02:00:00Z   Reshared   2025-12-05T02:01:00Z",
                "  2025-12-05T02:01:00Z   Expired    2025-12-05T03:01:00Z",
            ]
        );
        assert!(!lines.concat().contains("linkKEY123"));
    }
}
