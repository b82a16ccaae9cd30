//! The Kubernetes manifests of docs/deploy.md are valid YAML, well-formed Kubernetes objects,
//! and agree with famfs-serve: the flags exist, the probed route is served, the ConfigMap's
//! function manifests parse.

use std::path::{Path, PathBuf};

fn docs() -> PathBuf {
    famfs_run_tests::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../docs/k8s")
}

fn documents() -> Vec<(PathBuf, serde_yaml_ng::Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(docs()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: serde_yaml_ng::Value =
                serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.clone(), v));
        }
    }
    out
}

fn str_at<'a>(v: &'a serde_yaml_ng::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(*key)?;
    }
    cur.as_str()
}

#[test]
fn every_object_is_well_formed() {
    let docs = documents();
    assert!(docs.len() >= 4, "{} documents", docs.len());
    let known = [("v1", "ConfigMap"), ("apps/v1", "DaemonSet"), ("v1", "Service"), ("batch/v1", "Job")];
    for (path, d) in &docs {
        let api = str_at(d, &["apiVersion"]).unwrap_or_else(|| panic!("{}: no apiVersion", path.display()));
        let kind = str_at(d, &["kind"]).unwrap_or_else(|| panic!("{}: no kind", path.display()));
        assert!(known.contains(&(api, kind)), "{}: unexpected {api} {kind}", path.display());
        assert!(str_at(d, &["metadata", "name"]).is_some_and(|n| !n.is_empty()), "{}", path.display());
        assert_eq!(str_at(d, &["metadata", "namespace"]), Some("famfs"), "{}", path.display());
    }
}

#[test]
fn the_daemonset_runs_famfs_serve_as_it_is() {
    let docs = documents();
    let ds = &docs.iter().find(|(_, d)| str_at(d, &["kind"]) == Some("DaemonSet")).expect("a DaemonSet").1;
    let spec = &ds["spec"];
    // The selector matches the pod template.
    assert_eq!(spec["selector"]["matchLabels"]["app"], spec["template"]["metadata"]["labels"]["app"]);
    let container = &spec["template"]["spec"]["containers"][0];
    let command: Vec<&str> = container["command"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(command[0].ends_with("famfs-serve"), "{command:?}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-serve")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in command.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(&format!("{flag} ")), "famfs-serve has no {flag}:\n{help}");
    }
    // Every --function names a manifest in the ConfigMap, mounted where the flag says.
    let cm = &docs.iter().find(|(_, d)| str_at(d, &["kind"]) == Some("ConfigMap")).expect("a ConfigMap").1;
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let functions_mount = mounts.iter().find(|m| m["name"] == "functions").unwrap()["mountPath"].as_str().unwrap();
    for pair in command.windows(2).filter(|w| w[0] == "--function") {
        let (_, path) = pair[1].split_once('=').unwrap();
        let file = path.strip_prefix(&format!("{functions_mount}/")).unwrap_or_else(|| panic!("{path}"));
        assert!(cm["data"][file].is_string(), "{file} is not in the ConfigMap");
    }
    // Probes hit /healthz on the named port.
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz");
        assert_eq!(container[probe]["httpGet"]["port"], "http");
    }
    // Every volume mount has a volume.
    let volumes: Vec<&str> = spec["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for m in mounts {
        assert!(volumes.contains(&m["name"].as_str().unwrap()), "{m:?}");
    }
}

#[test]
fn the_configmap_holds_handler_manifests() {
    let docs = documents();
    let cm = &docs.iter().find(|(_, d)| str_at(d, &["kind"]) == Some("ConfigMap")).unwrap().1;
    let data = cm["data"].as_mapping().unwrap();
    assert!(!data.is_empty());
    for (name, text) in data {
        let name = name.as_str().unwrap();
        let m = famfs_runtime::Manifest::from_str_at(
            text.as_str().unwrap(),
            Path::new("/etc/famfs/functions").join(name).as_path(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.module.invoke.as_deref(), Some("handle"), "{name}");
        assert!(m.source.device.is_some() || m.source.mount.is_some(), "{name}");
    }
}
