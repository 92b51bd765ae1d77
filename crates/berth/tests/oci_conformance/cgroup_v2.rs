//! cgroup v2, which most users run. This machine is v1 with every controller bound there,
//! but the unified hierarchy still places processes, freezes them and counts their CPU:
//! each command here runs in a private mount namespace with cgroup2 mounted at
//! /sys/fs/cgroup, which is how a pure-v2 host looks to the runtime. Berth only: crun and
//! runc would need the same wrapper around every call.

use super::*;

/// `berth oci` seeing a pure cgroup v2 host. Its stdout is captured, so a detached
/// container's must not be: `run --detach` gets the container's stdio from us.
fn berth_on_v2(root: &Path, args: &[&str]) -> Output {
    let detached = args.first() == Some(&"run") && args.contains(&"--detach");
    Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"",
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(["oci", "--root", root.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(if detached {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stderr(if detached {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .output()
        .unwrap()
}

fn ok_on_v2(root: &Path, args: &[&str]) -> String {
    let output = berth_on_v2(root, args);
    assert!(
        output.status.success(),
        "berth oci {args:?} on v2: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn on_cgroup_v2_a_container_is_placed_frozen_counted_and_removed() {
    let scratch = Scratch::new("cgroup-v2").unwrap();
    let (bundle, id, _cgroup) =
        Case::new("cgroup-v2", &["sleep", "300"]).bundle(&scratch, Runtime::Berth);
    let root = scratch.path().join("state");
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let group = Path::new("/sys/fs/cgroup/unified").join(
        config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
    );
    ok_on_v2(
        &root,
        &["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id],
    );
    let state: Value = serde_json::from_str(&ok_on_v2(&root, &["state", &id])).unwrap();
    let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
    assert_eq!(
        procs.trim(),
        state["pid"].to_string(),
        "init is not in {}",
        group.display()
    );

    ok_on_v2(&root, &["pause", &id]);
    let frozen = std::fs::read_to_string(group.join("cgroup.freeze")).unwrap_or_default();
    let paused: Value = serde_json::from_str(&ok_on_v2(&root, &["state", &id])).unwrap();
    ok_on_v2(&root, &["resume", &id]);
    let stats: Value =
        serde_json::from_str(ok_on_v2(&root, &["events", "--stats", &id]).trim()).unwrap();
    ok_on_v2(&root, &["delete", "--force", &id]);

    assert_eq!(frozen.trim(), "1");
    assert_eq!(paused["status"], "paused");
    assert!(
        stats["data"]["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(!group.exists(), "{} left behind", group.display());
}

/// v2 has no devices controller: the rules become an eBPF program on the group.
#[test]
fn on_cgroup_v2_device_rules_are_an_ebpf_program() {
    let scratch = Scratch::new("cgroup-v2-devices").unwrap();
    let (bundle, id, _cgroup) = device_case("cgroup-v2-devices").bundle(&scratch, Runtime::Berth);
    let output = berth_on_v2(
        &scratch.path().join("state"),
        &["run", "--bundle", bundle.to_str().unwrap(), &id],
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        DEVICES_HELD,
        "{output:?}"
    );
}

/// v1's memory.swappiness and memory.oom_control have no v2 counterpart: refused there,
/// naming the field, not dropped.
#[test]
fn on_cgroup_v2_v1_only_memory_settings_are_refused() {
    for (name, memory) in [
        ("swappiness", json!({"swappiness": 10})),
        ("disableOOMKiller", json!({"disableOOMKiller": true})),
    ] {
        let scratch = Scratch::new(&format!("cgroup-v2-{name}")).unwrap();
        let case = Case::new(&format!("cgroup-v2-{name}"), &["true"])
            .tweak(move |c| c["linux"]["resources"] = json!({"memory": memory.clone()}));
        let (bundle, id, _cgroup) = case.bundle(&scratch, Runtime::Berth);
        let output = berth_on_v2(
            &scratch.path().join("state"),
            &["run", "--bundle", bundle.to_str().unwrap(), &id],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(&format!("linux.resources.memory.{name}")),
            "{name}: {output:?}"
        );
    }
}
