//! A container whose init cannot get to its process fails `create` or `start` with the
//! cause, never both succeeding with the container already stopped and nothing run.

use super::*;

/// Runs `create` then, if it succeeded, `start`; returns whether both succeeded and the
/// stderr of the two. The container is deleted afterwards, whatever happened.
fn create_and_start(case: &Case, runtime: Runtime) -> (bool, String) {
    let scratch = Scratch::new(&format!("oci-{}-{}", case.name, runtime.name())).unwrap();
    let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
    let root = scratch.path().join("state");
    // Not pipes: a created container's init keeps its stdio.
    let log = scratch.path().join("stderr");
    let step = |args: &[&str]| {
        runtime
            .command(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .status()
            .unwrap()
            .success()
    };
    let bundle = bundle.display().to_string();
    let started = step(&["create", "--bundle", &bundle, &id]) && step(&["start", &id]);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = runtime
        .command(&root)
        .args(["delete", "--force", &id])
        .output();
    (started, stderr)
}

/// `case` fails `create` or `start` under every runtime, with `cause` on stderr.
fn fails_to_start(case: Case, cause: &str) {
    for &runtime in runtimes().iter().filter(|r| Some(**r) != case.except) {
        let (started, stderr) = create_and_start(&case, runtime);
        assert!(
            !started && stderr.contains(cause),
            "{} under {}: expected create or start to fail with {cause:?}; stderr: {stderr}",
            case.name,
            runtime.name()
        );
    }
}

#[test]
fn a_missing_program_fails_create() {
    fails_to_start(
        Case::new("init-noexe", &["/no/such/program"]),
        "/no/such/program",
    );
}

/// crun fails too, but names neither the program nor the cause ("open executable:
/// Operation not permitted").
#[test]
fn a_program_that_is_a_directory_fails_create() {
    fails_to_start(
        Case::new("init-direxe", &["/etc"]).except(Runtime::Crun),
        "/etc",
    );
}

#[test]
fn a_working_directory_that_is_a_file_fails_create() {
    fails_to_start(
        Case::new("init-cwdfile", &["true"]).tweak(|c| c["process"]["cwd"] = json!("/bin/busybox")),
        "/bin/busybox",
    );
}

#[test]
fn a_missing_working_directory_is_made() {
    Case::new("init-cwdmade", &["pwd"])
        .tweak(|c| c["process"]["cwd"] = json!("/made/for/the/process"))
        .expect_stdout("/made/for/the/process");
}

/// A program only root may run, run as another user: only execve itself can tell, after
/// `start`. Berth alone: runc 1.1.5 and crun 1.8.1 both let `start` exit 0 with the
/// container already stopped (runc's lookup reads the mode bits alone; crun reports the
/// exec failure on the container's stderr only), the silence this case guards against.
#[test]
fn a_program_the_user_may_not_run_fails_start() {
    let host = Scratch::new("oci-init-rootonly").unwrap();
    let program = host.path().join("rootonly");
    std::fs::write(&program, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let case = Case::new("init-rootonly", &["/rootonly"]).tweak(move |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/rootonly", "type": "bind", "source": program,
            "options": ["bind", "ro"]
        }));
    });
    let (started, stderr) = create_and_start(&case, Runtime::Berth);
    assert!(!started, "start succeeded: {stderr}");
    assert!(
        stderr.contains("exec /rootonly") && stderr.contains("EACCES"),
        "start did not say why: {stderr}"
    );
}
