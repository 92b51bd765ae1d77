//! Streams to pods — exec (with and without a terminal), cp, attach and port-forward —
//! through an all-in-one `berth server`, with kubectl 1.27 (SPDY) and 1.33 (WebSocket,
//! port-forward tunnelled SPDY) each.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::etcd::free_port;
use berth_testkit::guard::ChildGuard;

use crate::pods::AllInOne;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: busybox:1
    command: ["sh", "-c", "echo from-loopback > /tmp/page && exec httpd -f -p 127.0.0.1:8080 -h /tmp"]
---
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: busybox:1
    stdin: true
    tty: true
    command: ["sh"]
---
apiVersion: v1
kind: Pod
metadata:
  name: talk
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: talk
    image: busybox:1
    command: ["sh", "-c", "while true; do echo tick; sleep 1; done"]
"#;

/// A kubectl release beside the `kubectl` dispatcher on PATH (`kubectl.1.27`, …).
fn kubectl_release(minor: u32) -> PathBuf {
    let dispatcher = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.exists())
        .expect("kubectl on PATH");
    let dir = std::fs::canonicalize(&dispatcher).unwrap();
    let release = dir.parent().unwrap().join(format!("kubectl.1.{minor}"));
    assert!(release.exists(), "no {} beside kubectl", release.display());
    release
}

/// kubectl `release` on the cluster's host, with `args`, as a child with piped stdio.
fn spawn(cluster: &AllInOne, release: &std::path::Path, args: &[&str]) -> ChildGuard {
    let child = cluster
        .host_command(&["timeout", "-k", "5", "60"])
        .arg(release)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

/// Runs kubectl `release` with `input` on its stdin.
fn run(cluster: &AllInOne, release: &std::path::Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = spawn(cluster, release, args);
    child.0.stdin.take().unwrap().write_all(input).unwrap();
    finish(child)
}

fn finish(mut child: ChildGuard) -> Output {
    let mut output = Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut output.stdout)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut output.stderr)
        .unwrap();
    output
}

/// Runs kubectl `release` on a terminal (util-linux `script` gives it one), typing
/// `typed`, until it ends; what the terminal showed, and kubectl's exit status.
fn on_terminal(
    cluster: &AllInOne,
    release: &std::path::Path,
    args: &str,
    typed: &str,
) -> (String, Option<i32>) {
    // A terminal of a known size, which kubectl passes on.
    let command = format!("stty rows 33 cols 101; {} {args}", release.display());
    let mut child = spawn(
        cluster,
        std::path::Path::new("script"),
        &["-qec", &command, "/dev/null"],
    );
    // The input stays open until kubectl has ended: script ends the session at its end.
    let mut input = child.0.stdin.take().unwrap();
    input.write_all(typed.as_bytes()).unwrap();
    let output = finish(child);
    drop(input);
    let shown = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    (shown, output.status.code())
}

/// Reads `child`'s stdout until a line contains `needle` (within a minute).
fn read_until(child: &mut Child, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = BufReader::new(child.stdout.as_mut().unwrap());
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
    panic!("{needle:?} never came; kubectl printed {seen:?}");
}

#[test]
fn exec_cp_attach_and_port_forward_work_with_kubectl_1_27_and_1_33() {
    let cluster = AllInOne::start("streams");
    cluster.apply("pods.yaml", PODS);
    for pod in ["box", "shell", "talk"] {
        cluster.pod_field(pod, ".status.phase", |phase| phase == "Running");
    }
    for minor in [27, 33] {
        let kubectl = kubectl_release(minor);
        let said = |output: &Output| {
            format!(
                "kubectl 1.{minor}: {}{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                cluster.log()
            )
        };

        // exec: stdin in, stdout and stderr apart, the exit code kept.
        let script = "cat; echo to-stderr >&2; exit 3";
        let output = run(
            &cluster,
            &kubectl,
            &["exec", "-i", "box", "--", "sh", "-c", script],
            b"typed\n",
        );
        assert_eq!(output.status.code(), Some(3), "{}", said(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "typed\n",
            "{}",
            said(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("to-stderr"),
            "{}",
            said(&output)
        );

        // exec -it: a terminal, an interactive shell.
        let typed =
            "tty; until [ \"$(stty size)\" = \"33 101\" ]; do :; done; echo $((6*7)); exit 5\n";
        let (shown, code) = on_terminal(&cluster, &kubectl, "exec -it box -- sh", typed);
        assert_eq!(code, Some(5), "kubectl 1.{minor}: {shown}");
        assert!(
            shown.contains("/dev/pts/") && shown.contains("\n42\n"),
            "kubectl 1.{minor}: {shown}"
        );

        // cp, both ways.
        let local = cluster.scratch_path().join(format!("in-{minor}.txt"));
        std::fs::write(&local, format!("copied by 1.{minor}\n")).unwrap();
        let remote = format!("box:/tmp/in-{minor}.txt");
        let output = run(
            &cluster,
            &kubectl,
            &["cp", local.to_str().unwrap(), &remote],
            b"",
        );
        assert!(output.status.success(), "{}", said(&output));
        let back = cluster.scratch_path().join(format!("back-{minor}.txt"));
        let output = run(
            &cluster,
            &kubectl,
            &["cp", &remote, back.to_str().unwrap()],
            b"",
        );
        assert!(output.status.success(), "{}", said(&output));
        assert_eq!(
            std::fs::read_to_string(&back).unwrap(),
            format!("copied by 1.{minor}\n")
        );

        // attach: a running container's output from now on.
        let mut attached = spawn(&cluster, &kubectl, &["attach", "talk"]);
        read_until(&mut attached.0, "tick");
        drop(attached);

        // attach -it: its terminal and its stdin; the shell's exit ends the session.
        let (shown, _) = on_terminal(
            &cluster,
            &kubectl,
            "attach -it shell",
            "echo $((7*6)); exit\n",
        );
        assert!(shown.contains("\n42\n"), "kubectl 1.{minor}: {shown}");

        // port-forward: to a server bound to the pod's loopback only.
        let port = free_port().unwrap().to_string();
        let forwarding = format!("{port}:8080");
        let mut forward = spawn(
            &cluster,
            &kubectl,
            &["port-forward", "pod/box", &forwarding],
        );
        read_until(&mut forward.0, "Forwarding from 127.0.0.1");
        for _ in 0..2 {
            let page = cluster.curl(&format!("http://127.0.0.1:{port}/page"));
            assert_eq!(
                page,
                "from-loopback\n",
                "kubectl 1.{minor}: {}",
                cluster.log()
            );
        }
    }

    // Streams are for those who may create them: the viewer may not.
    let viewer = cluster.scratch_path().join("data/viewer.kubeconfig");
    let output = cluster
        .host_command(&["timeout", "60", "kubectl", "--kubeconfig"])
        .arg(&viewer)
        .args(["exec", "box", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let refusal = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && refusal.contains("Forbidden"),
        "{refusal}"
    );
}
