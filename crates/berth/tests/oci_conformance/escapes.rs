//! Known container escapes, each closed and tested: mount targets and cwd resolved inside
//! the rootfs (symlinks, CVE-2024-21626), no descriptor of the runtime leaking in, the
//! runtime binary out of reach (CVE-2019-5736) and masked paths that cannot be swapped
//! for symlinks (CVE-2025-31133).

use std::time::{Duration, Instant};

use super::*;

#[test]
fn a_symlink_cannot_point_a_mount_at_the_host() {
    let victim = Scratch::new("mount-victim").unwrap();
    let victim_dir = victim.path().to_path_buf();
    let target = victim_dir.display().to_string();
    // The image holds /escape -> <host dir>; a tmpfs is mounted at /escape/inside.
    Case::shell(
        "symlinkmount",
        "ls -d /escape/inside >/dev/null && echo mounted",
    )
    .tweak(move |c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/escape/inside", "type": "tmpfs", "source": "tmpfs"}));
        c["annotations"] = json!({"escape-target": target.clone()});
    })
    .expect_with_rootfs(
        |rootfs, config| {
            let target = config["annotations"]["escape-target"]
                .as_str()
                .unwrap()
                .to_string();
            std::os::unix::fs::symlink(target, rootfs.join("escape")).unwrap();
        },
        |_| Ok(()),
    );
    assert!(
        !victim_dir.join("inside").exists(),
        "a mount point was created on the host"
    );
}

impl Case {
    /// Like `expect`, with a hook that edits the unpacked rootfs before the run.
    fn expect_with_rootfs(
        &self,
        prepare: impl Fn(&Path, &Value),
        check: impl Fn(&Output) -> Result<(), String>,
    ) {
        for &runtime in runtimes() {
            let scratch = Scratch::new(&format!("oci-{}-{}", self.name, runtime.name())).unwrap();
            let (bundle, id, _cgroup) = self.bundle(&scratch, runtime);
            let config: Value =
                serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap())
                    .unwrap();
            prepare(&bundle.join("rootfs"), &config);
            let output = runtime
                .command(&scratch.path().join("state"))
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .output()
                .unwrap();
            check(&output)
                .unwrap_or_else(|why| panic!("{} under {}: {why}", self.name, runtime.name()));
        }
    }
}

#[test]
fn no_runtime_descriptor_leaks_into_the_container() {
    // /proc/self/fd of `ls` itself: 0, 1, 2 and the directory ls opened to list it.
    Case::shell("fdleak", "ls /proc/self/fd | wc -l").expect_stdout("4");
}

#[test]
fn a_cwd_through_proc_self_fd_cannot_reach_the_host() {
    // CVE-2024-21626: a leaked directory descriptor as cwd would put the process on the host.
    for fd in 3..8 {
        Case::new(&format!("cwdfd{fd}"), &["sh", "-c", "test -e ./bin/busybox && echo container-root-visible || ls .. >/dev/null && echo host"])
            .tweak(move |c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}")))
            .expect(|o| if o.status.success() { Err("the process started with a descriptor as its cwd".into()) } else { Ok(()) });
    }
}

/// Waits for `condition`, failing with `what` after 20 s.
fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// CVE-2019-5736. A process of the container that can reach the runtime's binary through
/// `/proc/<init>/exe` (here by CAP_SYS_PTRACE, which passes init's non-dumpable guard)
/// keeps it open, waits until no runtime process is left, and reopens it for writing.
/// The binary must stay intact: the runtime runs from a read-only sealed copy. Berth
/// only: the attack needs a private copy of the runtime binary to aim at.
#[test]
fn the_runtime_binary_cannot_be_overwritten_from_inside() {
    let scratch = Scratch::new("escape-exe").unwrap();
    let binary = scratch.path().join("berth");
    std::fs::copy(env!("CARGO_BIN_EXE_berth"), &binary).unwrap();
    let size = std::fs::metadata(&binary).unwrap().len();
    let shared = scratch.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let source = shared.display().to_string();
    let case = Case::new("escape-exe", &["sleep", "300"]).tweak(move |c| {
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/shared", "type": "bind", "source": source, "options": ["rbind", "rw"]}),
        );
    });
    let (bundle, id, _cgroup) = case.bundle(&scratch, Runtime::Berth);
    let root = scratch.path().join("state").display().to_string();
    let berth = |args: &[&str]| {
        let status = Command::new(&binary)
            .args(["oci", "--root", &root])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "berth oci {args:?}: {status}");
    };
    berth(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    let attack = r#"
        exec 3</proc/1/exe || { echo cannot-open > /shared/result; exit; }
        touch /shared/opened
        until [ -e /shared/go ] && [ "$(cat /proc/1/comm)" = sleep ]; do usleep 10000; done
        (echo pwned > /proc/self/fd/3) 2> /shared/result
        echo done >> /shared/result
    "#;
    let caps = json!(["CAP_SYS_PTRACE", "CAP_KILL", "CAP_AUDIT_WRITE"]);
    let process = json!({
        "args": ["sh", "-c", attack], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}
    });
    let process_file = scratch.path().join("attacker.json");
    std::fs::write(&process_file, process.to_string()).unwrap();
    berth(&[
        "exec",
        "--detach",
        "--process",
        process_file.to_str().unwrap(),
        &id,
    ]);
    wait_for("the attacker to hold /proc/1/exe", || {
        shared.join("opened").exists() || shared.join("result").exists()
    });
    berth(&["start", &id]);
    std::fs::write(shared.join("go"), "").unwrap();
    let result = || std::fs::read_to_string(shared.join("result")).unwrap_or_default();
    wait_for("the attacker's write", || {
        result().contains("done") || result().contains("cannot-open")
    });
    let _ = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["oci", "--root", &root, "delete", "--force", &id])
        .status();
    assert_eq!(
        std::fs::metadata(&binary).unwrap().len(),
        size,
        "the runtime binary was overwritten: {}",
        result()
    );
    assert!(
        result().contains("Read-only file system"),
        "attacker saw: {}",
        result()
    );
}

/// CVE-2025-31133. Masking a path bind-mounts the container's /dev/null over it; a
/// container whose /dev/null is a symlink (an image without a /dev tmpfs) would turn the
/// mask into a writable mount of the symlink's target. The runtime refuses instead.
#[test]
fn a_masked_path_cannot_be_swapped_for_a_symlink() {
    refuses(
        "escape-devnull",
        |b| {
            edit_config(b, |c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
            });
            let dev = b.join("rootfs/dev");
            std::fs::create_dir_all(&dev).unwrap();
            let _ = std::fs::remove_file(dev.join("null"));
            std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dev.join("null")).unwrap();
        },
        "/dev/null in the container is not the null device",
    );
}
