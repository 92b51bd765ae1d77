//! Seccomp: Docker's default profile loads and blocks what it should, and the spec's
//! actions, errno values and argument conditions mean what they mean under runc and crun.

use super::*;

/// Docker's default profile as Debian ships it for Podman (golang-github-containers-common).
const DOCKER_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// `personality` takes one integer: a syscall whose arguments the profiles filter on.
const PERSONALITY: i64 = libc::SYS_personality;

fn personality(persona: &str) -> String {
    format!("/bin/testapp syscall {PERSONALITY} {persona}")
}

#[test]
fn docker_default_profile_loads_and_blocks_what_it_should() {
    let profile = std::fs::read_to_string(DOCKER_PROFILE)
        .unwrap_or_else(|e| panic!("{DOCKER_PROFILE}: {e} (scripts/install-deps installs it)"));
    // The profile keeps personality(2) to a few personas; ADDR_NO_RANDOMIZE (0x0040000)
    // falls to the default action, ENOSYS (38). 0xffffffff only queries: allowed.
    let script = format!(
        "{}; {}; echo still running",
        personality("0x0040000"),
        personality("0xffffffff")
    );
    Case::testapp("seccomp-docker", &["sh", "-c", &script])
        .tweak(move |c| {
            let bounding: Vec<String> =
                serde_json::from_value(c["process"]["capabilities"]["bounding"].clone()).unwrap();
            let seccomp = berth_runtime::from_docker_profile(&profile, &bounding).unwrap();
            c["linux"]["seccomp"] = serde_json::to_value(seccomp).unwrap();
        })
        .expect_stdout("errno 38\nok\nstill running");
}

#[test]
fn errno_and_masked_argument_conditions_apply() {
    // Personas whose low byte is PER_LINUX32 (8) are refused with EACCES (13); others pass.
    let script = format!("{}; {}", personality("0x0008"), personality("0x0000"));
    Case::testapp("seccomp-args", &["sh", "-c", &script])
        .tweak(|c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{
                    "names": ["personality"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 13,
                    "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]
                }]
            })
        })
        .expect_stdout("errno 13\nok");
}

#[test]
fn an_errno_rule_without_errno_ret_returns_eperm_and_unknown_names_are_skipped() {
    Case::testapp("seccomp-eperm", &["/bin/testapp", "syscall", "135", "0"])
        .tweak(|c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{
                    "names": ["no_such_syscall_anywhere", "personality"],
                    "action": "SCMP_ACT_ERRNO"
                }]
            })
        })
        .expect_stdout("errno 1");
}

#[test]
fn a_profile_the_runtime_cannot_honour_is_refused() {
    refuses(
        "seccomp-notify",
        |b| {
            edit_config(b, |c| {
                c["linux"]["seccomp"] = json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": "/run/agent.sock",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
                })
            })
        },
        "linux.seccomp.listenerPath",
    );
    refuses(
        "seccomp-index",
        |b| {
            edit_config(b, |c| {
                c["linux"]["seccomp"] = json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]
                })
            })
        },
        "linux.seccomp.syscalls[0].args[0].index",
    );
}

/// Docker's default profile as older tools still ship it: every syscall it does not list
/// fails with EPERM, and close_range (Linux 5.9) is not listed. What init does once the
/// filter is loaded must not need it.
#[test]
fn a_profile_without_close_range_still_runs_the_container() {
    let profile = std::fs::read_to_string(DOCKER_PROFILE)
        .unwrap_or_else(|e| panic!("{DOCKER_PROFILE}: {e} (scripts/install-deps installs it)"));
    Case::shell("seccomp-noclose", "echo started")
        .tweak(move |c| {
            let bounding: Vec<String> =
                serde_json::from_value(c["process"]["capabilities"]["bounding"].clone()).unwrap();
            let seccomp = berth_runtime::from_docker_profile(&profile, &bounding).unwrap();
            let mut seccomp = serde_json::to_value(seccomp).unwrap();
            assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
            seccomp.as_object_mut().unwrap().remove("defaultErrnoRet");
            for rule in seccomp["syscalls"].as_array_mut().unwrap() {
                let names = rule["names"].as_array_mut().unwrap();
                names.retain(|name| name != "close_range");
                if names.is_empty() {
                    names.push(json!("no_such_syscall_anywhere"));
                }
            }
            c["linux"]["seccomp"] = seccomp;
        })
        .expect_stdout("started");
}
