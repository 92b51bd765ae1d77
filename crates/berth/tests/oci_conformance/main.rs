//! Conformance of `berth oci` to the OCI runtime spec, proven on the reference runtimes:
//! every case runs the same bundle under `berth oci`, runc and (where it starts on this
//! machine) crun, and holds each to the same expectation.
//!
//! crun 1.8.1 refuses a v1 host that also mounts an empty cgroup2 at
//! /sys/fs/cgroup/unified: it runs here in a private mount namespace with that unmounted.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use berth_testkit::bundle::bundle_from_image;
use berth_testkit::guard::{CgroupGuard, Scratch};
use berth_testkit::images::{busybox_image, webapp_image};
use berth_testkit::layout::LayoutImage;
use serde_json::{Value, json};

mod cgroup_v2;
mod escapes;
mod hooks;
mod init_failures;
mod invalid_values;
mod seccomp;
mod stats;
mod terminal;

/// A runtime under test: how to invoke it with a given state root.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    Berth,
    Runc,
    Crun,
}

impl Runtime {
    fn command(self, root: &Path) -> Command {
        let root = root.display().to_string();
        match self {
            Runtime::Berth => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
                c.args(["oci", "--root", &root]);
                c
            }
            Runtime::Runc => {
                let mut c = Command::new("runc");
                c.args(["--root", &root]);
                c
            }
            Runtime::Crun => {
                let mut c = Command::new("unshare");
                c.args([
                    "-m",
                    "sh",
                    "-c",
                    "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"",
                    "crun",
                    "--root",
                    &root,
                ]);
                c
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Runtime::Berth => "berth",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

/// Berth always; runc and crun when installed and able to run a container here.
fn runtimes() -> &'static [Runtime] {
    static FOUND: OnceLock<Vec<Runtime>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut found = vec![Runtime::Berth];
        for peer in [Runtime::Runc, Runtime::Crun] {
            let case = Case::new("probe", &["true"]);
            match case.run(peer) {
                Ok(output) if output.status.success() => found.push(peer),
                other => eprintln!(
                    "{} cannot run containers here; its reference checks are skipped: {other:?}",
                    peer.name()
                ),
            }
        }
        found
    })
}

/// An edit of a bundle's config.json.
type Tweak = Box<dyn Fn(&mut Value)>;

/// One bundle, made fresh per runtime, with a config to adjust.
struct Case {
    name: String,
    args: Vec<String>,
    tweaks: Vec<Tweak>,
    image: fn(&Path) -> berth_testkit::Result<LayoutImage>,
    /// A reference runtime whose known deviation from the spec the case documents.
    except: Option<Runtime>,
}

impl Case {
    fn new(name: &str, args: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            tweaks: Vec::new(),
            image: busybox_image,
            except: None,
        }
    }

    /// Leaves out `runtime`, whose deviation from the spec the test's comment names.
    fn except(mut self, runtime: Runtime) -> Self {
        self.except = Some(runtime);
        self
    }

    /// The same, on the webapp image, which adds `/bin/testapp` to busybox.
    fn testapp(name: &str, args: &[&str]) -> Self {
        Self {
            image: webapp_image,
            ..Self::new(name, args)
        }
    }

    fn tweak(mut self, f: impl Fn(&mut Value) + 'static) -> Self {
        self.tweaks.push(Box::new(f));
        self
    }

    fn shell(name: &str, script: &str) -> Self {
        Self::new(name, &["sh", "-c", script])
    }

    /// Runs the case under `runtime` in the foreground (`run`) and returns its output.
    fn run(&self, runtime: Runtime) -> Result<Output, String> {
        let scratch = Scratch::new(&format!("oci-{}-{}", self.name, runtime.name()))
            .map_err(|e| e.to_string())?;
        let (bundle, id, _cgroup) = self.bundle(&scratch, runtime);
        runtime
            .command(&scratch.path().join("state"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())
    }

    fn bundle(&self, scratch: &Scratch, runtime: Runtime) -> (PathBuf, String, CgroupGuard) {
        let image = (self.image)(&scratch.path().join("image")).unwrap();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let bundle = bundle_from_image(&image, &scratch.path().join("bundle"), &args).unwrap();
        let id = format!("{}-{}-{}", self.name, runtime.name(), std::process::id());
        // A group of its own at the top, not under a shared `berth-test/`: another test's
        // guard removes that parent once it is empty, which can fall between runc's or
        // crun's making it and making the group inside (ENOENT).
        let cgroup = format!("berth-test-{id}");
        let config_path = bundle.join("config.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["linux"]["cgroupsPath"] = json!(format!("/{cgroup}"));
        for tweak in &self.tweaks {
            tweak(&mut config);
        }
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        (bundle, id, CgroupGuard::new(cgroup))
    }

    /// Runs under every runtime and applies `check` to each output.
    fn expect(&self, check: impl Fn(&Output) -> Result<(), String>) {
        for &runtime in runtimes().iter().filter(|r| Some(**r) != self.except) {
            let output = self.run(runtime).unwrap();
            if let Err(why) = check(&output) {
                panic!(
                    "{} under {}: {why}\nstatus: {}\nstdout: {}\nstderr: {}",
                    self.name,
                    runtime.name(),
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }

    fn expect_stdout(&self, expected: &str) {
        self.expect(|o| {
            let stdout = String::from_utf8_lossy(&o.stdout);
            if o.status.success() && stdout.trim() == expected {
                Ok(())
            } else {
                Err(format!("expected stdout {expected:?}"))
            }
        });
    }
}

#[test]
fn hostname_comes_from_the_spec() {
    Case::new("hostname", &["hostname"])
        .tweak(|c| c["hostname"] = json!("conformance"))
        .expect_stdout("conformance");
}

#[test]
fn init_is_pid_1_in_its_own_pid_namespace() {
    Case::shell("pidns", "echo $$ $(cat /proc/1/comm)").expect_stdout("1 sh");
}

#[test]
fn exit_status_is_passed_through() {
    Case::shell("exit", "exit 42").expect(|o| {
        if o.status.code() == Some(42) {
            Ok(())
        } else {
            Err("expected 42".into())
        }
    });
}

#[test]
fn network_namespace_has_only_loopback() {
    Case::new("netns", &["ls", "/sys/class/net"]).expect_stdout("lo");
}

#[test]
fn root_is_read_only_when_asked() {
    Case::shell(
        "readonly",
        "touch /x 2>/dev/null && echo writable || echo readonly",
    )
    .tweak(|c| c["root"]["readonly"] = json!(true))
    .expect_stdout("readonly");
    Case::shell(
        "writable",
        "touch /x 2>/dev/null && echo writable || echo readonly",
    )
    .tweak(|c| c["root"]["readonly"] = json!(false))
    .expect_stdout("writable");
}

#[test]
fn default_devices_and_mounts_are_there() {
    let script = "test -c /dev/null && test -c /dev/zero && test -c /dev/urandom && test -d /dev/pts && \
                  test -d /dev/shm && test -L /dev/fd && test -r /proc/self/status && echo ok";
    Case::shell("devices", script).expect_stdout("ok");
}

#[test]
fn masked_paths_are_empty_and_readonly_paths_refuse_writes() {
    let script = "wc -c < /proc/keys; ls /proc/acpi | wc -l; \
                  echo x > /proc/sys/kernel/domainname 2>/dev/null && echo wrote || echo refused";
    Case::shell("masks", script).expect_stdout("0\n0\nrefused");
}

#[test]
fn capabilities_are_exactly_the_spec_ones() {
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]);
    Case::shell(
        "caps",
        "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status | awk '{print $2}'",
    )
    .tweak(move |c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["process"]["capabilities"]["inheritable"] = json!([]);
        c["process"]["capabilities"]["ambient"] = json!([]);
    })
    .expect_stdout("0000000020000420\n0000000020000420\n0000000020000420");
}

#[test]
fn user_groups_cwd_env_and_umask_are_applied() {
    Case::shell("user", "id -u; id -g; id -G; pwd; echo $GREETING; umask")
        .tweak(|c| {
            c["process"]["user"] =
                json!({"uid": 1000, "gid": 1001, "additionalGids": [1002], "umask": 23});
            c["process"]["cwd"] = json!("/tmp");
            c["process"]["env"]
                .as_array_mut()
                .unwrap()
                .push(json!("GREETING=hello"));
        })
        .expect_stdout("1000\n1001\n1001 1002\n/tmp\nhello\n0027");
}

#[test]
fn no_new_privileges_is_set() {
    Case::shell(
        "nnp",
        "grep NoNewPrivs /proc/self/status | awk '{print $2}'",
    )
    .tweak(|c| c["process"]["noNewPrivileges"] = json!(true))
    .expect_stdout("1");
}

#[test]
fn rlimits_are_applied() {
    Case::shell("rlimit", "ulimit -n; ulimit -Hn")
        .tweak(|c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}])
        })
        .expect_stdout("512\n1000");
}

#[test]
fn sysctls_are_written_in_the_container() {
    Case::new("sysctl", &["cat", "/proc/sys/net/ipv4/ip_forward"])
        .tweak(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}))
        .expect_stdout("1");
}

#[test]
fn memory_and_pids_limits_reach_the_cgroup() {
    if berth_runtime_unified() {
        return eprintln!("cgroup v2 host: the v1 file names below do not apply");
    }
    Case::shell(
        "limits",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
    )
    .tweak(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}})
    })
    .expect_stdout("67108864\n50");
}

#[test]
fn memory_swappiness_and_the_oom_killer_switch_reach_the_cgroup() {
    if berth_runtime_unified() {
        return eprintln!(
            "cgroup v2 host: v1's memory.swappiness and memory.oom_control do not apply"
        );
    }
    Case::shell(
        "swappiness",
        "cd /sys/fs/cgroup/memory && cat memory.swappiness && grep oom_kill_disable memory.oom_control",
    )
    .tweak(|c| {
        c["linux"]["resources"] = json!({"memory": {"swappiness": 10, "disableOOMKiller": true}})
    })
    .expect_stdout("10\noom_kill_disable 1");
}

/// Kernels since 5.16 have no separate kernel memory limit: runc 1.1 and crun run the
/// container and leave the settings out (runc with a warning), and so does berth.
#[test]
fn kernel_memory_limits_are_left_out_as_runc_does() {
    Case::new("kmem", &["echo", "ran"])
        .tweak(|c| {
            c["linux"]["resources"] = json!({"memory": {"kernel": 67108864, "kernelTCP": 67108864}})
        })
        .expect_stdout("ran");
}

#[test]
fn the_pids_limit_is_enforced() {
    // Ten background sleeps cannot start under a limit of 5 processes.
    Case::shell(
        "pidsmax",
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>/dev/null; echo done",
    )
    .tweak(|c| c["linux"]["resources"] = json!({"pids": {"limit": 5}}))
    .expect(|o| {
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        if stdout.contains("done") && !stderr.is_empty() || !o.status.success() {
            Ok(())
        } else {
            Err("ten processes started under a limit of five".into())
        }
    });
}

fn berth_runtime_unified() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains("cgroup2"))
}

#[test]
fn a_user_namespace_maps_root_to_an_unprivileged_host_id() {
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    Case::shell(
        "userns",
        "id -u; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //'; \
         touch /tmp/made && stat -c %u:%g /tmp/made; echo x > /dev/null && echo null-ok",
    )
    .tweak(move |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map.clone();
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    })
    .expect_stdout("0\n0 100000 65536\n0 100000 65536\n0:0\nnull-ok");
}

#[test]
fn no_pivot_moves_the_root_into_place() {
    for &runtime in runtimes() {
        let scratch = Scratch::new(&format!("nopivot-{}", runtime.name())).unwrap();
        let case = Case::shell(
            "nopivot",
            "ls /bin/busybox && grep -c . /proc/self/mountinfo >/dev/null && echo inside",
        );
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let output = runtime
            .command(&scratch.path().join("state"))
            .args([
                "run",
                "--no-pivot",
                "--bundle",
                bundle.to_str().unwrap(),
                &id,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "/bin/busybox\ninside",
            "{}: {output:?}",
            runtime.name()
        );
    }
}

/// runc refuses a private root without pivot_root; crun 1.8.1 runs it.
#[test]
fn no_pivot_refuses_a_private_root() {
    for &runtime in runtimes().iter().filter(|r| **r != Runtime::Crun) {
        let scratch = Scratch::new(&format!("nopivot-private-{}", runtime.name())).unwrap();
        let case = Case::new("nopivot-private", &["true"])
            .tweak(|c| c["linux"]["rootfsPropagation"] = json!("rprivate"));
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let output = runtime
            .command(&scratch.path().join("state"))
            .args([
                "run",
                "--no-pivot",
                "--bundle",
                bundle.to_str().unwrap(),
                &id,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("private"),
            "{}: {output:?}",
            runtime.name()
        );
    }
}

/// Deny every device, then let the runtime add the ones every container needs (as runc
/// does), with CAP_MKNOD so that only the device rules stand between the process and a
/// node it makes itself: /dev/fuse (10:229), which root opens without any capability and
/// which is not among the defaults.
fn device_case(name: &str) -> Case {
    assert!(
        Path::new("/sys/dev/char/10:229").exists(),
        "this machine has no /dev/fuse to test device rules with"
    );
    Case::shell(
        name,
        "echo x > /dev/null && echo null-ok; head -c1 /dev/urandom >/dev/null && echo urandom-ok; \
         mknod /tmp/fuse c 10 229 && head -c0 /tmp/fuse && echo fuse-opened",
    )
    .tweak(|c| {
        c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    })
}

/// What `device_case` prints when the rules hold.
const DEVICES_HELD: &str = "null-ok\nurandom-ok";

#[test]
fn device_rules_allow_the_standard_devices_and_nothing_else() {
    device_case("devices").expect(|o| {
        match String::from_utf8_lossy(&o.stdout).trim() == DEVICES_HELD {
            true => Ok(()),
            false => Err("device rules did not hold".into()),
        }
    });
}

#[test]
fn installed_reference_runtimes_are_really_exercised() {
    let runc_installed = Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runc_installed {
        assert!(
            runtimes().contains(&Runtime::Runc),
            "runc is installed but could not run the probe container"
        );
    }
}

fn state_of(runtime: Runtime, root: &Path, id: &str) -> Option<Value> {
    let output = runtime.command(root).args(["state", id]).output().unwrap();
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).unwrap())
}

fn assert_status(runtime: Runtime, root: &Path, id: &str, expected: &str) {
    let state = state_of(runtime, root, id).unwrap();
    assert_eq!(state["status"], expected, "{}", runtime.name());
}

fn ok(runtime: Runtime, root: &Path, args: &[&str]) {
    let output = runtime
        .command(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        runtime.name(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    for &runtime in runtimes() {
        let case = Case::new("lifecycle", &["sleep", "300"]);
        let scratch = Scratch::new(&format!("oci-lifecycle-{}", runtime.name())).unwrap();
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let root = scratch.path().join("state");
        let bundle = bundle.display().to_string();
        let pid_file = scratch.path().join("pid").display().to_string();
        ok_detached(
            runtime,
            &root,
            &["create", "--bundle", &bundle, "--pid-file", &pid_file, &id],
        );
        let state = state_of(runtime, &root, &id).unwrap();
        assert_eq!(state["status"], "created", "{}", runtime.name());
        assert_eq!(state["id"], id.as_str());
        let pid: i64 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            state["pid"],
            pid,
            "{}: pid file and state disagree",
            runtime.name()
        );
        ok(runtime, &root, &["start", &id]);
        assert_status(runtime, &root, &id, "running");
        let refused = runtime
            .command(&root)
            .args(["delete", &id])
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "{}: deleted a running container without --force",
            runtime.name()
        );
        ok(runtime, &root, &["kill", &id, "KILL"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state_of(runtime, &root, &id).unwrap()["status"] != "stopped" {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: never stopped",
                runtime.name()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ok(runtime, &root, &["delete", &id]);
        assert!(
            state_of(runtime, &root, &id).is_none(),
            "{}: state remains after delete",
            runtime.name()
        );
    }
}

/// `run --detach`.
fn run_detached(runtime: Runtime, root: &Path, bundle: &Path, id: &str) {
    let bundle = bundle.display().to_string();
    ok_detached(runtime, root, &["run", "--detach", "--bundle", &bundle, id]);
}

/// Like `ok`, for commands that leave a container running: its stdio goes nowhere, so the
/// container cannot hold the test's pipes open.
fn ok_detached(runtime: Runtime, root: &Path, args: &[&str]) {
    // Not a pipe: a detached container inherits it and would hold it open.
    let log_path = root.with_extension("stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let status = runtime
        .command(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.success(),
        "{} {args:?}: {status}: {stderr}",
        runtime.name()
    );
}

#[test]
fn pause_and_resume_freeze_the_container() {
    for &runtime in runtimes().iter().filter(|r| **r != Runtime::Crun) {
        let case = Case::new("pause", &["sleep", "300"]);
        let scratch = Scratch::new(&format!("oci-pause-{}", runtime.name())).unwrap();
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let root = scratch.path().join("state");
        run_detached(runtime, &root, &bundle, &id);
        ok(runtime, &root, &["pause", &id]);
        assert_status(runtime, &root, &id, "paused");
        ok(runtime, &root, &["resume", &id]);
        assert_status(runtime, &root, &id, "running");
        ok(runtime, &root, &["delete", "--force", &id]);
    }
}

/// Bad input: a clear error naming the cause, non-zero exit, nothing left behind.
fn refuses(name: &str, prepare: impl Fn(&Path), expected: &str) {
    let scratch = Scratch::new(&format!("oci-bad-{name}")).unwrap();
    let (bundle, id, _cgroup) = Case::new(name, &["true"]).bundle(&scratch, Runtime::Berth);
    prepare(&bundle);
    let root = scratch.path().join("state");
    let output = Runtime::Berth
        .command(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{name}: expected {expected:?} in {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert!(
        state_of(Runtime::Berth, &root, &id).is_none(),
        "{name}: state left behind"
    );
    let cgroup_dir = Path::new("/sys/fs/cgroup/memory").join(format!("berth-test-{id}"));
    assert!(!cgroup_dir.exists(), "{name}: cgroup left behind");
}

fn edit_config(bundle: &Path, f: impl Fn(&mut Value)) {
    let path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut config);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
}

#[test]
fn bad_bundles_are_refused_with_the_cause_and_leave_nothing() {
    refuses(
        "norootfs",
        |b| std::fs::remove_dir_all(b.join("rootfs")).unwrap(),
        "root.path",
    );
    refuses(
        "notjson",
        |b| std::fs::write(b.join("config.json"), "{not json").unwrap(),
        "config.json",
    );
    refuses(
        "badns",
        |b| edit_config(b, |c| c["linux"]["namespaces"][0]["type"] = json!("bogus")),
        "linux.namespaces[0].type",
    );
    refuses(
        "noargs",
        |b| edit_config(b, |c| c["process"]["args"] = json!([])),
        "process.args",
    );
    refuses(
        "noprogram",
        |b| edit_config(b, |c| c["process"]["args"] = json!(["no-such-program"])),
        "executable file not found",
    );
    refuses(
        "badcap",
        |b| {
            edit_config(b, |c| {
                c["process"]["capabilities"]["bounding"] = json!(["CAP_FLY"])
            })
        },
        "CAP_FLY",
    );
    refuses(
        "badlimit",
        |b| {
            edit_config(b, |c| {
                c["linux"]["resources"] = json!({"cpu": {"cpus": "4096-5000"}})
            })
        },
        "cpuset.cpus",
    );
}

#[test]
fn a_taken_id_is_refused() {
    let scratch = Scratch::new("oci-dup").unwrap();
    let (bundle, id, _cgroup) =
        Case::new("dup", &["sleep", "300"]).bundle(&scratch, Runtime::Berth);
    let root = scratch.path().join("state");
    let log = scratch.path().join("stderr");
    let create = |expect_ok: bool| {
        // The created container's init keeps its stdio: point it at files, not pipes.
        let status = Runtime::Berth
            .command(&root)
            .args(["create", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.success(), expect_ok, "{stderr}");
        stderr
    };
    create(true);
    assert!(create(false).contains("already exists"));
    ok(Runtime::Berth, &root, &["delete", "--force", &id]);
}

#[test]
fn exec_joins_the_running_container() {
    for &runtime in runtimes().iter().filter(|r| **r != Runtime::Crun) {
        let case =
            Case::new("exec", &["sleep", "300"]).tweak(|c| c["hostname"] = json!("exec-target"));
        let scratch = Scratch::new(&format!("oci-exec-{}", runtime.name())).unwrap();
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let root = scratch.path().join("state");
        run_detached(runtime, &root, &bundle, &id);
        let exec = |args: &[&str]| {
            runtime
                .command(&root)
                .arg("exec")
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let output = exec(&[
            &id,
            "sh",
            "-c",
            "echo $(hostname) $(cat /proc/1/comm); exit 7",
        ]);
        assert_eq!(
            output.status.code(),
            Some(7),
            "{}: {}",
            runtime.name(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "exec-target sleep",
            "{}",
            runtime.name()
        );
        let output = exec(&[
            "--user",
            "1000:1000",
            "--env",
            "GREETING=hi",
            "--cwd",
            "/tmp",
            &id,
            "sh",
            "-c",
            "id -u; echo $GREETING; pwd",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "1000\nhi\n/tmp",
            "{}",
            runtime.name()
        );
        let output = exec(&[&id, "no-such-program"]);
        assert!(
            !output.status.success(),
            "{}: exec of a missing program succeeded",
            runtime.name()
        );
        ok(runtime, &root, &["delete", "--force", &id]);
    }
}

#[test]
fn spec_writes_a_config_the_runtimes_accept_and_refuses_to_overwrite() {
    let scratch = Scratch::new("oci-spec").unwrap();
    let root = scratch.path().join("state");
    let bundle = scratch.path().display().to_string();
    ok(Runtime::Berth, &root, &["spec", "--bundle", &bundle]);
    let again = Runtime::Berth
        .command(&root)
        .args(["spec", "--bundle", &bundle])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let config: Value =
        serde_json::from_slice(&std::fs::read(scratch.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    assert_eq!(config["process"]["args"], json!(["sh"]));
    // The same file, run non-interactively, works under every runtime.
    let image = busybox_image(&scratch.path().join("image")).unwrap();
    let unpacked = bundle_from_image(&image, &scratch.path().join("unpacked"), &["true"]).unwrap();
    std::fs::rename(unpacked.join("rootfs"), scratch.path().join("rootfs")).unwrap();
    edit_config(scratch.path(), |c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["echo", "from-spec"]);
        c["linux"]["cgroupsPath"] = json!(format!("/berth-test-spec-{}", std::process::id()));
    });
    let _cgroup = CgroupGuard::new(format!("berth-test-spec-{}", std::process::id()));
    for &runtime in runtimes() {
        let output = runtime
            .command(&root)
            .args([
                "run",
                "--bundle",
                &bundle,
                &format!("spec-{}", runtime.name()),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "from-spec",
            "{}: {}",
            runtime.name(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// What /proc/self/mountinfo says of the container's root's propagation (its optional
/// fields: `shared:N`, `master:N`, `unbindable`; none when private).
fn root_propagation_case(value: &'static str) -> Case {
    Case::new(
        &format!("rootprop-{value}"),
        &[
            "awk",
            r#"$5 == "/" { for (i = 7; $i != "-"; i++) printf "%s ", $i; print "end" }"#,
            "/proc/self/mountinfo",
        ],
    )
    .tweak(move |c| c["linux"]["rootfsPropagation"] = json!(value))
}

/// Expects the root's optional fields to satisfy `holds`.
fn expect_root_propagation(case: Case, holds: fn(&str) -> bool) {
    case.expect(|o| {
        let fields = String::from_utf8_lossy(&o.stdout);
        match o.status.success() && holds(fields.trim()) {
            true => Ok(()),
            false => Err("the root's propagation is not the one asked for".into()),
        }
    });
}

/// runc 1.1.5 leaves the root private whatever rootfsPropagation says (and cannot bind an
/// unbindable rootfs at all): crun applies it to `/` after the pivot, and so does berth.
#[test]
fn rootfs_propagation_is_applied_to_the_root() {
    expect_root_propagation(root_propagation_case("shared").except(Runtime::Runc), |f| {
        f.starts_with("shared:")
    });
    expect_root_propagation(
        root_propagation_case("rshared").except(Runtime::Runc),
        |f| f.starts_with("shared:"),
    );
    expect_root_propagation(
        root_propagation_case("unbindable").except(Runtime::Runc),
        |f| f == "unbindable end",
    );
    expect_root_propagation(root_propagation_case("rprivate"), |f| f == "end");
    expect_root_propagation(root_propagation_case("private"), |f| f == "end");
}
