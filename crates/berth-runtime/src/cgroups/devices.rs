//! Device access: which device nodes the container may create, read and write. v1 has
//! the devices controller's allow/deny files; v2 has no controller for it, only an eBPF
//! program of type CGROUP_DEVICE attached to the group, which we generate from the same
//! rules (as runc does). Without it a v2 container with CAP_MKNOD could read host disks.

use std::path::Path;

use berth_bpf::{Insn, Reg, Size};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use crate::error::IoContext;
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
/// The `bpf_cgroup_dev_ctx` fields' bits.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` and its hook.
const CGROUP_DEVICE_PROGRAM: u32 = 15;
const CGROUP_DEVICE: u32 = 6;

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
/// The program: r2 the device type, r3 the access asked, r4 and r5 major and minor; the
/// rules' blocks last rule first (the last matching rule wins, as v1's files do), and
/// allow when none matches.
fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let (ctx, kind, access) = (Reg(1), Reg(2), Reg(3));
    let mut code = vec![
        Insn::load(Size::Word, kind, ctx, 0),
        Insn::and_imm(kind, 0xffff),
        Insn::load(Size::Word, access, ctx, 0),
        Insn::rsh_imm(access, 16),
        Insn::load(Size::Word, MAJOR, ctx, 4),
        Insn::load(Size::Word, MINOR, ctx, 8),
    ];
    for rule in rules.iter().rev() {
        code.extend(rule_block(rule));
    }
    code.extend(verdict(true));
    code
}

const MAJOR: Reg = Reg(4);
const MINOR: Reg = Reg(5);

/// Returns allow (1) or deny (0).
fn verdict(allow: bool) -> [Insn; 2] {
    [Insn::mov_imm(Reg(0), i32::from(allow)), Insn::exit()]
}

/// One rule's block. Each test jumps past the block's end when it fails; an allow rule
/// needs every requested access in its own, a deny rule any of them.
fn rule_block(rule: &LinuxDeviceCgroup) -> Vec<Insn> {
    let (kind, asked) = (Reg(2), Reg(1));
    let mut tests: Vec<Insn> = Vec::new();
    match rule.typ() {
        Some(LinuxDeviceType::B) => tests.push(Insn::jump_ne_imm(kind, DEV_BLOCK, 0)),
        Some(LinuxDeviceType::C | LinuxDeviceType::U) => {
            tests.push(Insn::jump_ne_imm(kind, DEV_CHAR, 0))
        }
        _ => {}
    }
    let access = access_bits(rule.access().as_deref().unwrap_or("rwm"));
    tests.push(Insn::mov(asked, Reg(3)));
    if rule.allow() {
        tests.push(Insn::and_imm(asked, !access & 0x7));
        tests.push(Insn::jump_ne_imm(asked, 0, 0));
    } else {
        tests.push(Insn::and_imm(asked, access));
        tests.push(Insn::jump_eq_imm(asked, 0, 0));
    }
    if let Some(major) = rule.major() {
        tests.push(Insn::jump_ne_imm(MAJOR, major as i32, 0));
    }
    if let Some(minor) = rule.minor() {
        tests.push(Insn::jump_ne_imm(MINOR, minor as i32, 0));
    }
    // A failed test skips the rest of the block: its remaining tests and the verdict.
    let end = tests.len() + 2;
    for (at, test) in tests.iter_mut().enumerate() {
        test.retarget_forward(end - at - 1);
    }
    tests.extend(verdict(rule.allow()));
    tests
}

/// Loads the program for `rules` and attaches it to the v2 group at `dir`, for as long
/// as the group lives.
pub(crate) fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let as_sys = |error: berth_bpf::Error| Error::Sys {
        what: format!("{} ({})", error.what, dir.display()),
        source: nix::Error::from_raw(error.source.raw_os_error().unwrap_or(0)),
    };
    let program = berth_bpf::Program::load(
        c"berth_devices",
        (CGROUP_DEVICE_PROGRAM, CGROUP_DEVICE),
        &program(rules),
    )
    .map_err(as_sys)?;
    let group = std::fs::File::open(dir).at(dir)?;
    program
        .attach_to_cgroup(&group, CGROUP_DEVICE)
        .map_err(as_sys)
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

    /// A group of the cgroup v2 tree (at /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
    /// hybrid host), removed on drop.
    struct V2Group(std::path::PathBuf);

    impl Drop for V2Group {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// Whether a shell moved into `group` can run `command`.
    fn runs_in(group: &V2Group, command: &str) -> bool {
        let script = format!("echo $$ > {}/cgroup.procs && {command}", group.0.display());
        std::process::Command::new("sh")
            .args(["-c", &script])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn the_program_keeps_a_group_s_processes_to_the_devices_it_allows() {
        let v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|dir| {
                nix::sys::statfs::statfs(*dir)
                    .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            });
        let Some(v2) = v2 else {
            return;
        };
        let group =
            V2Group(Path::new(v2).join(format!("berth-test-devices-{}", std::process::id())));
        std::fs::create_dir(&group.0).unwrap();
        assert!(runs_in(&group, "head -c1 /dev/zero >/dev/null"));
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rwm")
            .build()
            .unwrap();
        attach(&group.0, &[deny_all(), null]).unwrap();
        assert!(runs_in(&group, "echo allowed >/dev/null"));
        assert!(
            !runs_in(&group, "head -c1 /dev/zero"),
            "/dev/zero is denied"
        );
    }

    #[test]
    fn every_jump_lands_on_the_next_rule_block() {
        let rules = effective_rules(&[deny_all()]);
        let code = program(&rules);
        let starts: Vec<usize> = std::iter::successors(Some(6), |start| {
            let block = code[*start..].iter().position(|i| *i == Insn::exit())?;
            Some(start + block + 1)
        })
        .collect();
        for (i, op) in code.iter().enumerate() {
            if let Some(offset) = op.jump_offset() {
                let target = i + 1 + offset as usize;
                // Every jump lands on the start of a block (the default's included).
                assert!(starts.contains(&target), "jump at {i} lands inside a block");
            }
        }
        assert_eq!(code[code.len() - 2..], verdict(true));
    }
}
