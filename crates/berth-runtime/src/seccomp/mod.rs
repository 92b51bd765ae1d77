//! Seccomp: compiles the spec's `linux.seccomp` into a kernel filter with libseccomp, the
//! library runc and crun use, so that a profile means the same here as there (decision
//! 0003), and converts Docker's profile format into that spec section for the engine.
//!
//! The runtime compiles the filter before it clones init, so that a bad profile fails
//! `create` with nothing made; init loads it at the last moment it still may.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use std::path::Path;

use crate::error::IoContext;
use crate::{Error, Result};

mod docker;

pub use docker::from_docker_profile;

/// A compiled filter: classic BPF as the kernel takes it, and the flags to load it with.
pub(crate) struct Program {
    bpf: Vec<u8>,
    flags: libc::c_ulong,
}

impl Program {
    /// Installs the filter on the calling thread; it then holds for every descendant.
    pub(crate) fn load(&self) -> Result<()> {
        // One sock_filter is 8 bytes: u16 code, u8 jt, u8 jf, u32 k.
        let program = libc::sock_fprog {
            len: (self.bpf.len() / 8) as u16,
            filter: self.bpf.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the program points into `self.bpf`, which outlives the call; the kernel
        // copies and verifies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &program as *const libc::sock_fprog,
            )
        };
        nix::errno::Errno::result(rc)
            .map(|_| ())
            .map_err(|e| Error::Init(format!("load seccomp filter: {e}")))
    }
}

/// The program for `profile`, compiled once and then read from `cache` (a directory of
/// the state root): libseccomp takes about 13 ms for Docker's default profile, longer than
/// the rest of a container start, and the same profile always gives the same program.
pub(crate) fn program(profile: &LinuxSeccomp, cache: &Path) -> Result<Program> {
    let flags = load_flags(profile)?;
    let key = cache_key(profile);
    let path = cache.join(format!("{key}.bpf"));
    if let Ok(bpf) = std::fs::read(&path) {
        return Ok(Program { bpf, flags });
    }
    let filter = compile(profile)?;
    std::fs::create_dir_all(cache).at(cache)?;
    let partial = cache.join(format!("{key}.{}.partial", std::process::id()));
    let file = std::fs::File::create(&partial).at(&partial)?;
    filter.export_bpf(&file).map_err(seccomp_error)?;
    std::fs::rename(&partial, &path).at(&path)?;
    let bpf = std::fs::read(&path).at(&path)?;
    Ok(Program { bpf, flags })
}

/// The profile's JSON, with the library's and our version: what the program depends on.
fn cache_key(profile: &LinuxSeccomp) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(serde_json::to_vec(profile).unwrap_or_default());
    if let Ok(version) = libseccomp::ScmpVersion::current() {
        hasher.update(format!(
            "{}.{}.{}",
            version.major, version.minor, version.micro
        ));
    }
    hasher.update(env!("CARGO_PKG_VERSION"));
    hex::encode(hasher.finalize())
}

/// Compiles `profile` as runc does: syscall names this libseccomp does not know are
/// skipped (profiles list syscalls of newer kernels), rules whose action is the default
/// are skipped, and argument conditions on one index are alternatives, on distinct
/// indices all required.
fn compile(profile: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    if profile.listener_path().is_some() {
        return Err(field(
            "linux.seccomp.listenerPath",
            "seccomp notify is not supported",
        ));
    }
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut filter = ScmpFilterContext::new(default).map_err(seccomp_error)?;
    for arch in profile.architectures().iter().flatten() {
        add_arch(&mut filter, *arch)?;
    }
    for (index, rule) in profile.syscalls().iter().flatten().enumerate() {
        let path = format!("linux.seccomp.syscalls[{index}]");
        let rule_action = action(rule.action(), rule.errno_ret(), &format!("{path}.action"))?;
        if rule_action == default {
            continue;
        }
        add_rule(&mut filter, rule, rule_action, &path)?;
    }
    Ok(filter)
}

fn add_rule(
    filter: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    action: ScmpAction,
    path: &str,
) -> Result<()> {
    let conditions = conditions(rule.args().as_deref().unwrap_or_default(), path)?;
    for name in rule.names() {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            tracing::debug!(syscall = %name, "seccomp: unknown syscall skipped");
            continue;
        };
        for group in &conditions {
            filter
                .add_rule_conditional(action, syscall, group)
                .map_err(|e| field(&format!("{path}.names"), &format!("{name}: {e}")))?;
        }
    }
    Ok(())
}

/// The condition sets of one rule, each one libseccomp rule: a single set holding every
/// condition when all indices differ, otherwise one set per condition (runc's reading).
fn conditions(args: &[LinuxSeccompArg], path: &str) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let compares = args
        .iter()
        .enumerate()
        .map(|(i, arg)| compare(arg, &format!("{path}.args[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let mut indices: Vec<usize> = args.iter().map(|a| a.index()).collect();
    indices.sort_unstable();
    indices.dedup();
    Ok(if indices.len() == args.len() {
        vec![compares]
    } else {
        compares.into_iter().map(|c| vec![c]).collect()
    })
}

fn compare(arg: &LinuxSeccompArg, path: &str) -> Result<ScmpArgCompare> {
    let index = u32::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| field(&format!("{path}.index"), "a syscall has arguments 0 to 5"))?;
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// The spec's action; an errno action without errnoRet returns EPERM, as in runc.
fn action(kind: LinuxSeccompAction, errno: Option<u32>, path: &str) -> Result<ScmpAction> {
    let errno = i32::try_from(errno.unwrap_or(libc::EPERM as u32))
        .map_err(|_| field(path, "errnoRet is out of range"))?;
    Ok(match kind {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(field(path, "SCMP_ACT_NOTIFY is not supported"));
        }
    })
}

fn add_arch(filter: &mut ScmpFilterContext, arch: Arch) -> Result<()> {
    let scmp = match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        // Architectures this libseccomp cannot filter are left out, as runc does.
        #[allow(unreachable_patterns)]
        _ => return Ok(()),
    };
    if filter.is_arch_present(scmp).unwrap_or(false) {
        return Ok(());
    }
    filter
        .add_arch(scmp)
        .map(|_| ())
        .map_err(|e| field("linux.seccomp.architectures", &format!("{arch:?}: {e}")))
}

/// The seccomp(2) flags the profile asks for.
fn load_flags(profile: &LinuxSeccomp) -> Result<libc::c_ulong> {
    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Init is single-threaded: there are no other threads to synchronise.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(field(
                    "linux.seccomp.flags",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs seccomp notify, which is not supported",
                ));
            }
        };
    }
    Ok(flags)
}

fn field(path: &str, reason: &str) -> Error {
    Error::Field {
        field: path.to_string(),
        reason: reason.to_string(),
    }
}

fn seccomp_error(e: libseccomp::error::SeccompError) -> Error {
    Error::Init(format!("seccomp: {e}"))
}
