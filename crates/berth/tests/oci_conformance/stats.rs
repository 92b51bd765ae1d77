//! Usage read back for `events --stats` (runc's JSON shape), and OOM kills detected.

use super::*;

fn stats_of(runtime: Runtime, root: &Path, id: &str) -> Value {
    let output = runtime
        .command(root)
        .args(["events", "--stats", id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}: {output:?}", runtime.name());
    let line = String::from_utf8_lossy(&output.stdout);
    let event: Value = serde_json::from_str(line.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(event["type"], "stats", "{}: {event}", runtime.name());
    event["data"].clone()
}

#[test]
fn events_stats_reports_cpu_memory_and_pids() {
    // crun 1.8.1 has no `events`.
    for &runtime in runtimes().iter().filter(|r| **r != Runtime::Crun) {
        let case = Case::shell(
            "stats",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 300",
        )
        .tweak(|c| {
            c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}})
        });
        let scratch = Scratch::new(&format!("stats-{}", runtime.name())).unwrap();
        let (bundle, id, _cgroup) = case.bundle(&scratch, runtime);
        let root = scratch.path().join("state");
        run_detached(runtime, &root, &bundle, &id);
        let data = stats_of(runtime, &root, &id);
        ok(runtime, &root, &["delete", "--force", &id]);
        let number = |pointer: &str| data.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
        assert!(number("/cpu/usage/total") > 0, "{}: {data}", runtime.name());
        assert!(
            number("/memory/usage/usage") > 0,
            "{}: {data}",
            runtime.name()
        );
        assert_eq!(
            number("/memory/usage/limit"),
            67108864,
            "{}: {data}",
            runtime.name()
        );
        assert!(number("/pids/current") >= 1, "{}: {data}", runtime.name());
        assert_eq!(number("/pids/limit"), 50, "{}: {data}", runtime.name());
    }
}

#[test]
fn an_oom_kill_shows_in_the_state_and_the_stats() {
    let case = Case::shell(
        "oom",
        "dd if=/dev/zero of=/dev/null bs=100M count=1; echo dd-exit $?",
    )
    .tweak(|c| c["linux"]["resources"] = json!({"memory": {"limit": 33554432}}));
    let scratch = Scratch::new("oom").unwrap();
    let (bundle, id, _cgroup) = case.bundle(&scratch, Runtime::Berth);
    let root = scratch.path().join("state");
    let output = Runtime::Berth
        .command(&root)
        .args(["run", "--keep", "--bundle", bundle.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "dd-exit 137",
        "{output:?}"
    );
    let state = state_of(Runtime::Berth, &root, &id).unwrap();
    let data = stats_of(Runtime::Berth, &root, &id);
    ok(Runtime::Berth, &root, &["delete", &id]);
    assert_eq!(state["oomKilled"], json!(true), "{state}");
    assert!(
        data["memory"]["oom_kill"].as_u64().unwrap_or(0) >= 1,
        "{data}"
    );
}
