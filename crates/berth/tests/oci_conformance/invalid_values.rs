//! Values outside what the runtime spec allows (config.md, "valid values") are refused
//! before anything runs, by berth naming the field, and by runc (and crun where it agrees)
//! as well.

use super::*;

/// `case` fails under every runtime but `except`; berth's error names `field`.
fn refused(case: Case, field: &str) {
    for &runtime in runtimes().iter().filter(|r| Some(**r) != case.except) {
        let output = case.run(runtime).unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{} under {}: accepted; stderr: {stderr}",
            case.name,
            runtime.name()
        );
        if runtime == Runtime::Berth {
            assert!(
                stderr.contains(field),
                "{}: berth did not name {field:?}: {stderr}",
                case.name
            );
        }
    }
}

fn invalid(name: &str, edit: impl Fn(&mut Value) + 'static) -> Case {
    Case::new(&format!("invalid-{name}"), &["true"]).tweak(edit)
}

#[test]
fn unknown_enumerated_values_are_refused() {
    refused(
        invalid("ns", |c| {
            c["linux"]["namespaces"][0]["type"] = json!("bogus")
        }),
        "linux.namespaces[0].type",
    );
    refused(
        invalid("rlimit", |c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
        }),
        "process.rlimits[0].type",
    );
    refused(
        invalid("scaction", |c| {
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"})
        }),
        "linux.seccomp.defaultAction",
    );
    refused(
        invalid("scarch", |c| {
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                                           "architectures": ["SCMP_ARCH_BOGUS"]})
        }),
        "linux.seccomp.architectures[0]",
    );
    refused(
        invalid("scop", |c| {
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]})
        }),
        "linux.seccomp.syscalls[0].args[0].op",
    );
}

/// crun 1.8.1 accepts the three values runc and berth refuse here: an unknown
/// rootfsPropagation, a device of unknown type, a duplicated namespace.
#[test]
fn values_runc_refuses_are_refused() {
    refused(
        invalid("rootprop", |c| {
            c["linux"]["rootfsPropagation"] = json!("bogus")
        })
        .except(Runtime::Crun),
        "linux.rootfsPropagation",
    );
    refused(
        invalid(
            "devtype",
            |c| {
                c["linux"]["devices"] =
                    json!([{"path": "/dev/foo", "type": "x", "major": 1, "minor": 3}])
            },
        )
        .except(Runtime::Crun),
        "linux.devices[0].type",
    );
    refused(
        invalid("nsdup", |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "pid"}))
        })
        .except(Runtime::Crun),
        "Pid namespace listed twice",
    );
    refused(
        invalid("swappiness", |c| {
            c["linux"]["resources"] = json!({"memory": {"swappiness": 200}})
        })
        .except(Runtime::Crun),
        "linux.resources.memory.swappiness",
    );
    refused(
        invalid("shares", |c| {
            c["linux"]["resources"] = json!({"cpu": {"shares": -5}})
        })
        .except(Runtime::Crun),
        "linux.resources.cpu.shares",
    );
    refused(
        invalid("hookpath", |c| {
            c["hooks"] = json!({"prestart": [{"path": "true"}]})
        })
        .except(Runtime::Crun),
        "hooks.prestart[0].path",
    );
}

#[test]
fn out_of_range_and_inconsistent_values_are_refused() {
    refused(
        invalid("mountopt", |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["rbogus"]
            }))
        }),
        "/mnt",
    );
    refused(
        invalid("rlimitorder", |c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2000, "hard": 1000}])
        }),
        "RlimitNofile",
    );
    refused(
        invalid("oomscore", |c| c["process"]["oomScoreAdj"] = json!(5000)),
        "process.oomScoreAdj",
    );
    refused(
        invalid("usernomap", |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}))
        }),
        "linux.uidMappings",
    );
}

/// A sysctl outside the container's namespaces would change the host's kernel.
#[test]
fn sysctls_the_container_does_not_hold_are_refused() {
    refused(
        invalid("sysctlhost", |c| {
            c["linux"]["sysctl"] = json!({"vm.swappiness": "10"})
        }),
        "linux.sysctl.vm.swappiness",
    );
    refused(
        invalid("sysctlbogus", |c| {
            c["linux"]["sysctl"] = json!({"kernel.bogus_thing": "1"})
        }),
        "linux.sysctl.kernel.bogus_thing",
    );
    refused(
        invalid("sysctlnet", |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|ns| ns["type"] != "network");
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"})
        }),
        "linux.sysctl.net.ipv4.ip_forward",
    );
}
