//! Volumes and mounts through the docker CLI: named volumes outlive their containers,
//! binds show host files (read-only when asked), tmpfs mounts are private, and a volume
//! in use cannot be removed. Volumes keep their labels, and `volume ls` filters on them.

use super::*;

#[test]
fn a_named_volume_outlives_its_container_and_is_refused_removal_while_used() {
    let daemon = containers::daemon_with_busybox("volumes");
    daemon.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/file",
    ]);
    let read = daemon.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox",
        "cat",
        "/data/file",
    ]);
    assert_eq!(read.trim(), "kept");
    let listed = daemon.docker_ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(listed.trim(), "data local");
    daemon.docker_ok(&[
        "create",
        "--name",
        "user",
        "-v",
        "data:/data",
        "busybox",
        "true",
    ]);
    let refused = daemon.docker(&["volume", "rm", "data"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("volume is in use"),
        "{refused:?}"
    );
    daemon.docker_ok(&["rm", "user"]);
    daemon.docker_ok(&["volume", "rm", "data"]);
    assert_eq!(daemon.docker_ok(&["volume", "ls", "-q"]).trim(), "");
}

#[test]
fn volumes_keep_their_labels_and_are_listed_by_them() {
    let daemon = Daemon::start("volume-labels");
    daemon.docker_ok(&[
        "volume", "create", "--label", "team=web", "--label", "tier", "a",
    ]);
    daemon.docker_ok(&["volume", "create", "--label", "team=db", "b"]);
    let labels = daemon.docker_ok(&["volume", "inspect", "-f", "{{json .Labels}}", "a"]);
    assert_eq!(labels.trim(), r#"{"team":"web","tier":""}"#);
    let listed = |filter: &str| {
        daemon
            .docker_ok(&["volume", "ls", "-q", "--filter", filter])
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed("label=team=web"), ["a"]);
    assert_eq!(listed("label=team"), ["a", "b"]);
    assert_eq!(listed("name=b"), ["b"]);
    let refused = daemon.docker(&["volume", "ls", "--filter", "dangling=true"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("dangling"),
        "{refused:?}"
    );
    let driver = daemon.docker(&["volume", "create", "-d", "nfs", "c"]);
    assert!(
        String::from_utf8_lossy(&driver.stderr).contains("local volume driver only"),
        "{driver:?}"
    );
}

#[test]
fn binds_show_host_files_read_only_when_asked_and_tmpfs_is_private() {
    let daemon = containers::daemon_with_busybox("binds");
    let host = daemon.scratch.path().join("host-dir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("greeting"), "from the host\n").unwrap();
    let spec = format!("{}:/host:ro", host.display());
    let out = daemon.docker_ok(&[
        "run", "--rm", "-v", &spec, "--tmpfs", "/scratch", "busybox", "sh", "-c",
        "cat /host/greeting; touch /host/new 2>/dev/null || echo read-only; touch /scratch/x && echo tmpfs-ok",
    ]);
    assert_eq!(out, "from the host\nread-only\ntmpfs-ok\n");
    assert!(!host.join("new").exists());
    let missing = daemon.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        "busybox",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("bind source path does not exist"),
        "{missing:?}"
    );
}

#[test]
fn inspect_lists_mounts_and_cp_archives_the_whole_root_with_them() {
    let daemon = containers::daemon_with_busybox("mounts");
    let host = daemon.scratch.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("greeting"), "hello\n").unwrap();
    let bind = format!("{}:/host:ro", host.display());
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "mounted",
        "-v",
        "cache:/cache",
        "-v",
        &bind,
        "--mount",
        "type=tmpfs,target=/scratch",
        "busybox",
        "sleep",
        "1000",
    ]);
    let mounts = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}} {{.Mode}};{{end}}",
        "mounted",
    ]);
    assert_eq!(
        mounts.trim(),
        "volume cache /cache true ;bind  /host false ro;tmpfs  /scratch true ;"
    );
    let source = daemon.docker_ok(&["inspect", "-f", "{{(index .Mounts 1).Source}}", "mounted"]);
    assert_eq!(source.trim(), host.display().to_string());
    let listed = daemon.docker_ok(&["ps", "--format", "{{.Mounts}}"]);
    assert!(listed.contains("cache"), "{listed}");
    let archive = daemon
        .docker_command(&["cp", "mounted:/", "-"])
        .output()
        .unwrap();
    assert!(archive.status.success(), "{archive:?}");
    let names = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut tar| {
            use std::io::Write;
            tar.stdin.take().unwrap().write_all(&archive.stdout)?;
            tar.wait_with_output()
        })
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout);
    let names: Vec<&str> = names.lines().map(|n| n.trim_end_matches('/')).collect();
    for expected in ["bin/busybox", "host/greeting", "proc"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("proc/self")),
        "{names:?}"
    );
    daemon.docker_ok(&["rm", "-f", "mounted"]);
}
