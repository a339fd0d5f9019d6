//! `kubectl ots servers`: the OtsServers of the namespace (or of every namespace) and the
//! ClusterOtsServers, with what the operator found out about each (never a Secret: the server
//! objects hold only Secret names, and no Secret is read).

use super::Target;
use super::error::{PluginError, is_not_found};
use super::table::print_table;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use ots_operator::resource::{ClusterOtsServer, OtsServer, OtsServerStatus};

/// Which namespaces' OtsServers to list.
pub enum Scope {
    /// The namespace of `-n` (or the context's).
    Namespace,
    /// Every namespace (`-A`).
    AllNamespaces,
}

/// Whether the API server serves both server kinds (discovery is open to every user).
async fn server_crds_installed(target: &Target) -> bool {
    match target
        .client
        .list_api_group_resources("ots.dev/v1alpha1")
        .await
    {
        Ok(list) => ["otsservers", "clusterotsservers"]
            .iter()
            .all(|name| list.resources.iter().any(|r| r.name == *name)),
        Err(_) => false,
    }
}

/// A 404 on a list: the kind is not served (the CRD is missing), or some other failure.
async fn list_error(target: &Target, action: String, e: kube::Error) -> PluginError {
    if is_not_found(&e) && !server_crds_installed(target).await {
        return PluginError::ServerCrdMissing;
    }
    PluginError::from_kube(action, e)
}

/// `kubectl ots servers [-A]`.
pub async fn servers(target: &Target, scope: Scope) -> Result<(), PluginError> {
    let (api, action): (Api<OtsServer>, String) = match scope {
        Scope::Namespace => (
            Api::namespaced(target.client.clone(), &target.namespace),
            format!("list OtsServers in {}", target.namespace),
        ),
        Scope::AllNamespaces => (
            Api::all(target.client.clone()),
            "list OtsServers in all namespaces".to_owned(),
        ),
    };
    let namespaced = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return Err(list_error(target, action, e).await),
    };
    let cluster_api: Api<ClusterOtsServer> = Api::all(target.client.clone());
    let action = "list ClusterOtsServers".to_owned();
    let cluster = match cluster_api.list(&ListParams::default()).await {
        Ok(list) => Some(list.items),
        // ClusterOtsServers are the cluster administrators': a namespace user may not list them,
        // and still sees the namespace's own servers.
        Err(kube::Error::Api(status)) if status.is_forbidden() => {
            eprintln!(
                "ClusterOtsServers are not shown: not allowed to list them ({})",
                status.message
            );
            None
        }
        Err(e) => return Err(list_error(target, action, e).await),
    };
    let now = Timestamp::now();
    let all_namespaces = matches!(scope, Scope::AllNamespaces);
    let mut rows: Vec<Vec<String>> = namespaced
        .iter()
        .map(|server| {
            let mut row = vec!["OtsServer".to_owned()];
            if all_namespaces {
                row.push(server.namespace().unwrap_or_default());
            }
            row.extend(columns(
                server.name_any(),
                &server.spec.settings.url,
                server.status.as_ref(),
                "-".to_owned(),
                server.metadata.creation_timestamp.as_ref(),
                now,
            ));
            row
        })
        .collect();
    let cluster = cluster.unwrap_or_default();
    let effective_default = effective_default(&cluster);
    rows.extend(cluster.iter().map(|server| {
        let default = match (server.is_default(), effective_default.as_deref()) {
            (false, _) => "-",
            (true, Some(name)) if name == server.name_any() => "yes",
            // The operator takes the oldest of several annotated servers.
            (true, _) => "ignored",
        };
        let mut row = vec!["ClusterOtsServer".to_owned()];
        if all_namespaces {
            row.push("-".to_owned());
        }
        row.extend(columns(
            server.name_any(),
            &server.spec.settings.url,
            server.status.as_ref(),
            default.to_owned(),
            server.metadata.creation_timestamp.as_ref(),
            now,
        ));
        row
    }));
    if rows.is_empty() {
        let here = if all_namespaces {
            "any namespace".to_owned()
        } else {
            format!("namespace {}", target.namespace)
        };
        eprintln!("No OtsServers in {here} and no ClusterOtsServers.");
        return Ok(());
    }
    let mut header = vec!["KIND"];
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME", "URL", "API", "READY", "REASON", "SHARES", "DEFAULT", "AGE",
    ]);
    print_table(&header, &rows)
}

/// The name of the ClusterOtsServer the operator uses for shares that name no server: the
/// oldest of those annotated as the default (as `controller::server_ref` picks it).
fn effective_default(servers: &[ClusterOtsServer]) -> Option<String> {
    servers
        .iter()
        .filter(|s| s.is_default())
        .min_by_key(|s| {
            (
                s.metadata.creation_timestamp.clone().map(|t| t.0),
                s.name_any(),
            )
        })
        .map(|s| s.name_any())
}

/// NAME URL API READY REASON SHARES DEFAULT AGE of one server ("-" where the operator has not
/// said yet).
fn columns(
    name: String,
    url: &str,
    status: Option<&OtsServerStatus>,
    default: String,
    created: Option<&Time>,
    now: Timestamp,
) -> [String; 8] {
    let dash = || "-".to_owned();
    let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    [
        name,
        url.to_owned(),
        status.and_then(|s| s.api.clone()).unwrap_or_else(dash),
        ready.map(|c| c.status.clone()).unwrap_or_else(dash),
        ready
            .map(|c| c.reason.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(dash),
        status
            .and_then(|s| s.live_shares)
            .map(|n| n.to_string())
            .unwrap_or_else(dash),
        default,
        created.map(|t| age(t.0, now)).unwrap_or_else(dash),
    ]
}

/// An age as kubectl prints it, coarsely: 45s, 12m, 5h, 3d.
fn age(created: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second().saturating_sub(created.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use ots_operator::resource::server::DEFAULT_SERVER_ANNOTATION;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        assert_eq!(age(at(1000), at(1045)), "45s");
        assert_eq!(age(at(0), at(12 * 60)), "12m");
        assert_eq!(age(at(0), at(5 * 3600)), "5h");
        assert_eq!(age(at(0), at(3 * 86400)), "3d");
        assert_eq!(age(at(10), at(0)), "0s");
    }

    #[test]
    fn a_server_row_shows_status_or_dashes_until_the_operator_wrote_one() {
        let row = columns(
            "eu".into(),
            "https://eu.onetimesecret.com",
            None,
            "-".into(),
            None,
            at(0),
        );
        assert_eq!(
            row,
            [
                "eu",
                "https://eu.onetimesecret.com",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-"
            ]
        );
        let status = OtsServerStatus {
            api: Some("v2".into()),
            live_shares: Some(3),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "Unauthorized".into(),
                message: "the server refused the credentials".into(),
                last_transition_time: Time(at(0)),
                observed_generation: None,
            }],
            ..Default::default()
        };
        let row = columns(
            "eu".into(),
            "https://eu.onetimesecret.com",
            Some(&status),
            "yes".into(),
            Some(&Time(at(0))),
            at(90),
        );
        assert_eq!(
            row,
            [
                "eu",
                "https://eu.onetimesecret.com",
                "v2",
                "False",
                "Unauthorized",
                "3",
                "yes",
                "90s"
            ]
        );
    }

    #[test]
    fn the_oldest_annotated_cluster_server_is_the_default() {
        let server = |name: &str, created: i64, default: bool| {
            let mut s = ClusterOtsServer::new(
                name,
                serde_json::from_value(serde_json::json!({"url": "https://ots.example.com"}))
                    .unwrap(),
            );
            s.metadata.creation_timestamp = Some(Time(at(created)));
            if default {
                s.metadata.annotations = Some(
                    [(DEFAULT_SERVER_ANNOTATION.to_owned(), "true".to_owned())]
                        .into_iter()
                        .collect(),
                );
            }
            s
        };
        assert_eq!(effective_default(&[server("a", 0, false)]), None);
        assert_eq!(
            effective_default(&[
                server("a", 0, false),
                server("b", 20, true),
                server("c", 10, true)
            ])
            .as_deref(),
            Some("c")
        );
    }
}
