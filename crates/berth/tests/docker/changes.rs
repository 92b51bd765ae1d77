//! `docker diff`, `docker commit` and `docker export`: a container's filesystem as a
//! whole, with the stock CLI.

use std::process::Command;

use crate::containers::daemon_with_busybox;

/// What the container of [`edited`] does to busybox's files.
const EDITS: &str = "echo guest:x:100:100::/home/guest:/bin/sh >> /etc/passwd \
                     && rm /etc/group && mkdir /srv && echo kept > /srv/note";

/// A daemon with a stopped container `edited` that made [`EDITS`].
fn edited(name: &str) -> crate::Daemon {
    let daemon = daemon_with_busybox(name);
    daemon.docker_ok(&["run", "--name", "edited", "busybox", "sh", "-c", EDITS]);
    daemon
}

#[test]
fn docker_diff_lists_what_a_container_changed_and_nothing_the_engine_made() {
    let daemon = edited("diff");
    let diff = daemon.docker_ok(&["diff", "edited"]);
    assert_eq!(
        diff.lines().collect::<Vec<_>>(),
        [
            "C /etc",
            "D /etc/group",
            "C /etc/passwd",
            "A /srv",
            "A /srv/note"
        ],
        "{diff}"
    );
    let fresh = daemon.docker_ok(&["create", "busybox", "true"]);
    assert_eq!(daemon.docker_ok(&["diff", fresh.trim()]), "");
    let missing = daemon.docker(&["diff", "nonesuch"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such container: nonesuch"),
        "{missing:?}"
    );
}

#[test]
fn docker_commit_makes_an_image_of_the_changes_that_runs_and_reads_back() {
    let daemon = edited("commit");
    let id = daemon.docker_ok(&[
        "commit",
        "-a",
        "Ada <ada@example.com>",
        "-m",
        "add a guest",
        "--change",
        "ENV ROLE=guest",
        "--change",
        r#"CMD ["sh", "-c", "echo $ROLE; grep -c guest /etc/passwd; cat /srv/note; ls /etc/group"]"#,
        "edited",
        "guests:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let output = daemon.docker(&["run", "--rm", "guests:v1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["guest", "1", "kept"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("/etc/group"));
    let inspect = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}",
        "guests:v1",
    ]);
    assert_eq!(inspect.trim(), "Ada <ada@example.com>|add a guest|2");
    let history = daemon.docker_ok(&["history", "--format", "{{.Comment}}", "guests:v1"]);
    assert_eq!(history.lines().next(), Some("add a guest"));
    let bad = daemon.docker(&["commit", "--change", "RUN make", "edited"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("RUN is not a valid change command"),
        "{bad:?}"
    );
}

#[test]
fn docker_commit_of_a_running_container_keeps_it_running() {
    let daemon = daemon_with_busybox("commit-running");
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "echo ready > /ready && exec sleep 1000",
    ]);
    let exec = |args: &[&str]| daemon.docker(&[&["exec", "busy"][..], args].concat());
    while !exec(&["test", "-f", "/ready"]).status.success() {
        std::thread::yield_now();
    }
    daemon.docker_ok(&["commit", "busy", "busy:snapshot"]);
    let state = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Paused}}",
        "busy",
    ]);
    assert_eq!(state.trim(), "running false");
    let ready = daemon.docker_ok(&["run", "--rm", "busy:snapshot", "cat", "/ready"]);
    assert_eq!(ready.trim(), "ready");
    daemon.docker_ok(&["rm", "-f", "busy"]);
}

#[test]
fn docker_export_writes_the_root_filesystem_that_docker_import_reads_back() {
    let daemon = edited("export");
    let tarball = daemon.scratch.path().join("edited.tar");
    daemon.docker_ok(&["export", "-o", tarball.to_str().unwrap(), "edited"]);
    let listing = Command::new("tar")
        .args(["-tf", tarball.to_str().unwrap()])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    let names: Vec<&str> = names.lines().map(|n| n.trim_end_matches('/')).collect();
    assert!(names.contains(&"bin/busybox"), "{names:?}");
    assert!(names.contains(&"srv/note"), "{names:?}");
    assert!(!names.contains(&"etc/group"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".wh.")), "{names:?}");
    daemon.docker_ok(&["import", tarball.to_str().unwrap(), "flat:1"]);
    let note = daemon.docker_ok(&["run", "--rm", "flat:1", "cat", "/srv/note"]);
    assert_eq!(note.trim(), "kept");
    let layers = daemon.docker_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", "flat:1"]);
    assert_eq!(layers.trim(), "1");
}
