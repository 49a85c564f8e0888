//! Every manifest in `deploy/k8s/` parses into the Kubernetes API types, and the deployment
//! keeps the invariants the engine relies on:
//! - the StatefulSet's replicas equal the process count the engine is given (TIMELY_PROCESSES);
//! - its serviceName is the headless Service the entrypoint names hosts after;
//! - its probes hit paths the engine serves, on the port it serves them on;
//! - every pod runs as non-root without privilege escalation;
//! - timely's port (unauthenticated: it feeds records into the dataflow) admits the engine's
//!   own pods only, through a NetworkPolicy;
//! - no credential appears in plain text (they come from Secret references only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodSpec, Service};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPort};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

#[derive(Default)]
struct Manifests {
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    stateful_sets: Vec<StatefulSet>,
    deployments: Vec<Deployment>,
    budgets: Vec<PodDisruptionBudget>,
    namespaces: Vec<Namespace>,
    network_policies: Vec<NetworkPolicy>,
}

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    let mut files: Vec<_> = std::fs::read_dir(k8s_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc).unwrap();
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_else(|| panic!("{}: a document without kind", file.display()))
                .to_owned();
            let parse = |v: serde_yaml_ng::Value| v;
            let v = parse(value);
            let ctx = || format!("{}: {kind}", file.display());
            match kind.as_str() {
                "ConfigMap" => {
                    m.config_maps.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx())))
                }
                "Service" => m.services.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx()))),
                "StatefulSet" => {
                    m.stateful_sets.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx())))
                }
                "Deployment" => {
                    m.deployments.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx())))
                }
                "PodDisruptionBudget" => {
                    m.budgets.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx())))
                }
                "Namespace" => {
                    m.namespaces.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx())))
                }
                "NetworkPolicy" => {
                    m.network_policies.push(serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", ctx())))
                }
                "Secret" => panic!("{}: Secrets are created out of band, never committed", file.display()),
                other => panic!("{}: unexpected kind {other}", file.display()),
            }
        }
    }
    m
}

fn config(m: &Manifests) -> BTreeMap<String, String> {
    assert_eq!(m.config_maps.len(), 1);
    m.config_maps[0].data.clone().unwrap_or_default()
}

fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "ACCESS_KEY", "TOKEN", "CREDENTIAL"].iter().any(|w| n.contains(w))
}

fn check_pod(name: &str, pod: &PodSpec) {
    let sc = pod.security_context.as_ref().unwrap_or_else(|| panic!("{name}: no pod securityContext"));
    assert_eq!(sc.run_as_non_root, Some(true), "{name}: runAsNonRoot");
    assert!(sc.run_as_user.is_some_and(|u| u != 0), "{name}: runAsUser must be a non-root uid");
    for c in &pod.containers {
        let csc = c.security_context.as_ref().unwrap_or_else(|| panic!("{name}/{}: no securityContext", c.name));
        assert_eq!(csc.allow_privilege_escalation, Some(false), "{name}/{}", c.name);
        for env in c.env.iter().flatten() {
            if looks_secret(&env.name) {
                assert!(env.value.is_none(), "{name}/{}: {} is in plain text", c.name, env.name);
                let from = env.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref());
                assert!(from.is_some(), "{name}/{}: {} must come from a secretKeyRef", c.name, env.name);
            }
        }
        assert!(
            c.resources.as_ref().and_then(|r| r.requests.as_ref()).is_some(),
            "{name}/{}: resource requests",
            c.name
        );
    }
}

#[test]
fn manifests_parse_and_keep_the_engine_invariants() {
    let m = load();
    let cfg = config(&m);
    for key in cfg.keys() {
        assert!(!looks_secret(key), "ConfigMap holds {key}: credentials belong in a Secret");
    }
    assert_eq!(m.namespaces.len(), 1);

    assert_eq!(m.stateful_sets.len(), 1);
    let sts = &m.stateful_sets[0];
    let spec = sts.spec.as_ref().unwrap();
    let processes: i32 = cfg["TIMELY_PROCESSES"].parse().unwrap();
    assert_eq!(spec.replicas, Some(processes), "replicas must equal TIMELY_PROCESSES");
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"), "timely processes must start together");

    let headless = m
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(spec.service_name.as_deref().unwrap()))
        .expect("the StatefulSet's Service exists");
    assert_eq!(headless.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"), "the Service is headless");
    assert_eq!(cfg["HEADLESS_SERVICE"], spec.service_name.clone().unwrap());

    let pod = spec.template.spec.as_ref().unwrap();
    check_pod("engine", pod);
    let engine = &pod.containers[0];
    let args = engine.args.clone().unwrap();
    assert_eq!(args[0], "dataflow", "the entrypoint turns `dataflow` into a cluster member");
    let env: Vec<&str> = engine.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert!(
        env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"),
        "the entrypoint needs the pod name and namespace"
    );
    let metrics_port =
        engine.ports.iter().flatten().find(|p| p.name.as_deref() == Some("metrics")).unwrap().container_port;
    assert!(cfg["METRICS_ADDR"].ends_with(&format!(":{metrics_port}")));
    let timely_port =
        engine.ports.iter().flatten().find(|p| p.name.as_deref() == Some("timely")).unwrap().container_port;
    assert_eq!(cfg["TIMELY_PORT"], timely_port.to_string());
    for (kind, probe) in [("liveness", &engine.liveness_probe), ("readiness", &engine.readiness_probe)] {
        let get =
            probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("{kind} probe is an HTTP GET"));
        let path = get.path.clone().unwrap();
        assert!(
            dataflow::metrics::HTTP_PATHS.contains(&path.as_str()),
            "{kind} probe path {path} is not served by the engine"
        );
        assert_eq!(
            format!("{:?}", get.port),
            format!("{:?}", k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("metrics".into()))
        );
    }
    assert_eq!(engine.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(engine.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/readyz"));

    // Every rule of the policy that selects the engine's pods and admits the timely port
    // admits the engine's pods only (no other pod, namespace or address block).
    let labels = spec.template.metadata.as_ref().and_then(|meta| meta.labels.clone()).unwrap();
    let selects_engine = |s: &LabelSelector| {
        s.match_expressions.is_none()
            && s.match_labels.as_ref().is_some_and(|l| !l.is_empty() && l.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    let policy = m
        .network_policies
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .find(|p| p.pod_selector.as_ref().is_some_and(selects_engine))
        .expect("a NetworkPolicy selects the engine's pods");
    assert!(policy.policy_types.iter().flatten().any(|t| t == "Ingress"), "the engine's NetworkPolicy governs ingress");
    let admits_timely = |p: &NetworkPolicyPort| match &p.port {
        None => true,
        Some(IntOrString::String(name)) => name == "timely",
        Some(IntOrString::Int(port)) => {
            *port == timely_port || p.end_port.is_some_and(|end| (*port..=end).contains(&timely_port))
        }
    };
    let timely_rules: Vec<_> = policy
        .ingress
        .iter()
        .flatten()
        .filter(|r| r.ports.as_ref().is_none_or(|ports| ports.is_empty() || ports.iter().any(admits_timely)))
        .collect();
    assert!(!timely_rules.is_empty(), "the engine's pods must reach each other on the timely port");
    for rule in timely_rules {
        let peers =
            rule.from.as_ref().filter(|f| !f.is_empty()).expect("a rule admitting the timely port names its peers");
        for peer in peers {
            assert!(
                peer.ip_block.is_none()
                    && peer.namespace_selector.is_none()
                    && peer.pod_selector.as_ref().is_some_and(selects_engine),
                "the timely port admits only the engine's pods: {peer:?}"
            );
        }
    }

    assert_eq!(m.budgets.len(), 1);
    assert_eq!(m.budgets[0].spec.as_ref().unwrap().selector, Some(spec.selector.clone()));

    assert_eq!(m.deployments.len(), 1);
    let producer = m.deployments[0].spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    check_pod("producer", producer);
}

#[test]
fn no_manifest_holds_a_plain_text_credential() {
    for e in std::fs::read_dir(k8s_dir()).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(!line.contains("stringData") && !line.contains("AKIA"), "suspicious line: {line}");
        }
    }
}
