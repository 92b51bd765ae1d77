//! Device access: which device nodes the container may create, read and write. v1 has
//! the devices controller's allow/deny files; v2 has no controller for it, only an eBPF
//! program of type CGROUP_DEVICE attached to the group, which we generate from the same
//! rules (as runc does). Without it a v2 container with CAP_MKNOD could read host disks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use crate::error::{IoContext, SysContext};
use crate::{Error, Result};

/// The spec's rules followed by the devices every container may use, as runc appends
/// them: mknod of any device, the standard character devices, terminals and tun. An empty
/// list stays empty: no rules means no restriction.
pub(crate) fn effective_rules(spec: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    if spec.is_empty() {
        return Vec::new();
    }
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut builder = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            builder = builder.major(major);
        }
        if let Some(minor) = minor {
            builder = builder.minor(minor);
        }
        builder.build().unwrap_or_default()
    };
    let mut rules = spec.to_vec();
    rules.extend([
        rule(LinuxDeviceType::C, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(8), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(7), "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(0), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(9), "rwm"),
        rule(LinuxDeviceType::C, Some(136), None, "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(2), "rwm"),
        rule(LinuxDeviceType::C, Some(10), Some(200), "rwm"),
    ]);
    rules
}

/// A rule as v1's devices.allow and devices.deny take it: `c 1:3 rwm`, `a *:* rwm`.
pub(crate) fn v1_rule(rule: &LinuxDeviceCgroup) -> String {
    let kind = rule
        .typ()
        .map_or_else(|| "a".to_string(), |t| t.as_str().to_string());
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let access = rule.access().clone().unwrap_or_else(|| "rwm".to_string());
    if kind == "a" {
        return format!("a *:* {access}");
    }
    format!(
        "{kind} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    )
}

// eBPF encoding (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;
/// bpf_cgroup_dev_ctx access bits, and its device types.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// One eBPF instruction: opcode, registers (dst low nibble, src high), offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The program: registers r2 = device type, r3 = requested access, r4 = major,
/// r5 = minor; then one block per rule, last rule first, each returning its verdict when
/// it matches (the last matching rule wins, as in v1); allow when none matches.
fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut code = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        code.extend(rule_block(rule));
    }
    code.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
    code.push(insn(JMP_EXIT, 0, 0, 0, 0));
    code
}

/// One rule's block. Each test jumps past the block's end when it fails; an allow rule
/// needs every requested access in its own, a deny rule any of them.
fn rule_block(rule: &LinuxDeviceCgroup) -> Vec<Insn> {
    let mut tests: Vec<Insn> = Vec::new();
    match rule.typ() {
        Some(LinuxDeviceType::B) => tests.push(insn(JMP_JNE_K, 2, 0, 0, DEV_BLOCK)),
        Some(LinuxDeviceType::C | LinuxDeviceType::U) => {
            tests.push(insn(JMP_JNE_K, 2, 0, 0, DEV_CHAR))
        }
        _ => {}
    }
    let access = access_bits(rule.access().as_deref().unwrap_or("rwm"));
    tests.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
    if rule.allow() {
        tests.push(insn(ALU64_AND_K, 1, 0, 0, !access & 0x7));
        tests.push(insn(JMP_JNE_K, 1, 0, 0, 0));
    } else {
        tests.push(insn(ALU64_AND_K, 1, 0, 0, access));
        tests.push(insn(JMP_JEQ_K, 1, 0, 0, 0));
    }
    if let Some(major) = rule.major() {
        tests.push(insn(JMP_JNE_K, 4, 0, 0, major as i32));
    }
    if let Some(minor) = rule.minor() {
        tests.push(insn(JMP_JNE_K, 5, 0, 0, minor as i32));
    }
    let verdict = [
        insn(ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow())),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ];
    let count = tests.len();
    // Jumps are relative to the next instruction: skip the remaining tests and the verdict.
    for (i, test) in tests.iter_mut().enumerate() {
        if matches!(test.code, JMP_JNE_K | JMP_JEQ_K) {
            test.off = (count - i - 1 + verdict.len()) as i16;
        }
    }
    tests.extend(verdict);
    tests
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to the fields we set.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads the program for `rules` and attaches it to the v2 group at `dir`.
pub(crate) fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let code = program(rules);
    let license = c"Apache";
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: bpf(2) with an attr struct that outlives the call and its exact size; the
    // instructions and license it points to are alive too.
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &load as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    let prog = nix::errno::Errno::result(prog).or_sys(|| "load the device eBPF program".into())?;
    // SAFETY: a fresh descriptor from bpf(2).
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let group = std::fs::File::open(dir).at(dir)?;
    let attach = ProgAttachAttr {
        target_fd: group.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: as above, for BPF_PROG_ATTACH.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    nix::errno::Errno::result(rc)
        .map(|_| ())
        .map_err(|source| Error::Sys {
            what: format!("attach the device eBPF program to {}", dir.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny_all() -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap()
    }

    #[test]
    fn runc_s_default_devices_follow_the_spec_s_rules() {
        let rules = effective_rules(&[deny_all()]);
        assert_eq!(v1_rule(&rules[0]), "a *:* rwm");
        assert_eq!(v1_rule(&rules[1]), "c *:* m");
        assert!(rules.iter().any(|r| v1_rule(r) == "c 1:3 rwm"));
        assert!(effective_rules(&[]).is_empty());
    }

    #[test]
    fn every_jump_lands_on_the_next_rule_block() {
        let rules = effective_rules(&[deny_all()]);
        let code = program(&rules);
        for (i, op) in code.iter().enumerate() {
            if matches!(op.code, JMP_JNE_K | JMP_JEQ_K) {
                let target = i + 1 + op.off as usize;
                assert!(target < code.len(), "jump at {i} leaves the program");
                // Every jump lands on the start of a block: a register move or the default.
                assert!(
                    matches!(code[target].code, JMP_JNE_K | ALU64_MOV_X | ALU64_MOV_K),
                    "jump at {i} lands inside a block"
                );
            }
        }
        assert_eq!(code[code.len() - 2], insn(ALU64_MOV_K, 0, 0, 0, 1));
    }
}
