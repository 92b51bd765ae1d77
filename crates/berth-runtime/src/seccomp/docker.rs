//! Docker's seccomp profile format (`docker run --security-opt seccomp=FILE`, and the
//! default profile Docker and Podman ship) turned into the runtime spec's
//! `linux.seccomp`, the way the Docker daemon does it: the native architecture and its
//! sub-architectures from `archMap`, and each rule kept only when its `includes` hold and
//! its `excludes` do not for the container's bounding capabilities, architecture and kernel.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;

use crate::{Error, Result};

/// Profiles in the wild write `null` for an empty list or condition.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_as_default")]
    architectures: Vec<Arch>,
    #[serde(default, deserialize_with = "null_as_default")]
    arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "null_as_default")]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default, deserialize_with = "null_as_default")]
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default, deserialize_with = "null_as_default")]
    sub_architectures: Vec<Arch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default, deserialize_with = "null_as_default")]
    names: Vec<String>,
    /// The older single-name form.
    name: Option<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_as_default")]
    args: Vec<LinuxSeccompArg>,
    #[serde(default, deserialize_with = "null_as_default")]
    includes: Condition,
    #[serde(default, deserialize_with = "null_as_default")]
    excludes: Condition,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default, deserialize_with = "null_as_default")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// What a rule's conditions are checked against.
struct Target<'a> {
    capabilities: &'a [String],
    /// Go's name of the architecture, as profiles spell it (`amd64`, `arm64`).
    arch: &'static str,
    kernel: (u32, u32),
}

impl Target<'_> {
    fn includes(&self, condition: &Condition) -> bool {
        condition.caps.iter().all(|c| self.capabilities.contains(c))
            && (condition.arches.is_empty() || condition.arches.iter().any(|a| a == self.arch))
            && condition
                .min_kernel
                .as_deref()
                .is_none_or(|v| parse_kernel(v) <= self.kernel)
    }

    fn excludes(&self, condition: &Condition) -> bool {
        condition.caps.iter().any(|c| self.capabilities.contains(c))
            || condition.arches.iter().any(|a| a == self.arch)
            || condition
                .min_kernel
                .as_deref()
                .is_some_and(|v| parse_kernel(v) <= self.kernel)
    }
}

/// Converts a Docker seccomp profile (JSON text) for a container whose bounding set is
/// `capabilities` (names like `CAP_SYS_ADMIN`).
pub fn from_docker_profile(json: &str, capabilities: &[String]) -> Result<LinuxSeccomp> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let profile: Profile =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| Error::Field {
            field: format!("seccomp profile {}", e.path()),
            reason: e.inner().to_string(),
        })?;
    let target = Target {
        capabilities,
        arch: go_arch(),
        kernel: running_kernel(),
    };
    let syscalls = profile
        .syscalls
        .into_iter()
        .filter(|rule| target.includes(&rule.includes) && !target.excludes(&rule.excludes))
        .map(to_spec_rule)
        .collect::<Result<Vec<_>>>()?;
    let mut builder = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .architectures(architectures(profile.architectures, &profile.arch_map))
        .flags(profile.flags)
        .syscalls(syscalls);
    if let Some(errno) = profile.default_errno_ret {
        builder = builder.default_errno_ret(errno);
    }
    builder.build().map_err(|e| Error::Field {
        field: "seccomp profile".into(),
        reason: e.to_string(),
    })
}

fn to_spec_rule(rule: Rule) -> Result<LinuxSyscall> {
    let mut names = rule.names;
    names.extend(rule.name);
    let mut builder = LinuxSyscallBuilder::default()
        .names(names)
        .action(rule.action)
        .args(rule.args);
    if let Some(errno) = rule.errno_ret {
        builder = builder.errno_ret(errno);
    }
    builder.build().map_err(|e| Error::Field {
        field: "seccomp profile syscalls".into(),
        reason: e.to_string(),
    })
}

/// The profile's own list, or else the native architecture and its sub-architectures.
fn architectures(listed: Vec<Arch>, map: &[ArchMap]) -> Vec<Arch> {
    if !listed.is_empty() {
        return listed;
    }
    map.iter()
        .filter(|m| m.architecture == native_arch())
        .flat_map(|m| std::iter::once(m.architecture).chain(m.sub_architectures.iter().copied()))
        .collect()
}

fn native_arch() -> Arch {
    match std::env::consts::ARCH {
        "aarch64" => Arch::ScmpArchAarch64,
        "x86" => Arch::ScmpArchX86,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390x" => Arch::ScmpArchS390x,
        "powerpc64" => Arch::ScmpArchPpc64le,
        _ => Arch::ScmpArchX86_64,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "x86_64" => "amd64",
        other => other,
    }
}

fn running_kernel() -> (u32, u32) {
    nix::sys::utsname::uname()
        .map(|u| parse_kernel(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// `major.minor` of a kernel release such as `6.1.0-13-amd64`.
fn parse_kernel(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["chroot"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["amd64"]}},
            {"names": ["future"], "action": "SCMP_ACT_ALLOW",
             "includes": {"minKernel": "99.0"}}
        ]}"#;

    fn names(seccomp: &LinuxSeccomp) -> Vec<(String, LinuxSeccompAction)> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .map(|s| (s.names().join(","), s.action()))
            .collect()
    }

    #[test]
    fn rules_follow_the_bounding_capabilities() {
        let with = from_docker_profile(PROFILE, &["CAP_SYS_CHROOT".into()]).unwrap();
        let without = from_docker_profile(PROFILE, &[]).unwrap();
        assert!(names(&with).contains(&("chroot".into(), LinuxSeccompAction::ScmpActAllow)));
        assert!(names(&without).contains(&("chroot".into(), LinuxSeccompAction::ScmpActErrno)));
        assert!(!names(&without).contains(&("chroot".into(), LinuxSeccompAction::ScmpActAllow)));
        assert_eq!(without.default_errno_ret(), Some(38));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn architecture_and_kernel_conditions_apply() {
        let seccomp = from_docker_profile(PROFILE, &[]).unwrap();
        let rules = names(&seccomp);
        assert!(rules.iter().any(|(n, _)| n == "arch_prctl"));
        assert!(!rules.iter().any(|(n, _)| n == "future"));
        assert_eq!(
            seccomp.architectures().clone().unwrap(),
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
    }

    #[test]
    fn a_bad_profile_names_the_field() {
        let error = from_docker_profile(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#, &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("defaultAction"), "{error}");
    }

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(parse_kernel("6.1.0-13-amd64"), (6, 1));
        assert_eq!(parse_kernel("4.8"), (4, 8));
    }
}
