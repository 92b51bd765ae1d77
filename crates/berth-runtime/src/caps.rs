//! Linux capabilities by name, and setting all five sets of a process.

use oci_spec::runtime::LinuxCapabilities;

use crate::{Error, Result};

/// Capability names in kernel order: the index is the capability's number.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Every capability name the runtime knows, in kernel order (`--privileged` gets them all).
pub fn capability_names() -> &'static [&'static str] {
    &NAMES
}

/// A set of capabilities as the kernel's 64-bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Parses names such as `CAP_NET_ADMIN` (the `CAP_` prefix is optional, case ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>, field: &str) -> Result<Self> {
        let mut mask = 0u64;
        for name in names {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let index = NAMES
                .iter()
                .position(|n| *n == full)
                .ok_or_else(|| Error::Field {
                    field: field.to_string(),
                    reason: format!("unknown capability {name:?}"),
                })?;
            mask |= 1 << index;
        }
        Ok(CapSet(mask))
    }

    /// Whether capability number `cap` is in the set.
    pub fn has(self, cap: usize) -> bool {
        self.0 & (1 << cap) != 0
    }
}

/// The five sets of a process, parsed from the spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCaps {
    /// Bounding set: everything else above it is dropped from the bounding set.
    pub bounding: CapSet,
    /// Effective set.
    pub effective: CapSet,
    /// Permitted set.
    pub permitted: CapSet,
    /// Inheritable set.
    pub inheritable: CapSet,
    /// Ambient set.
    pub ambient: CapSet,
}

impl ProcessCaps {
    /// Parses the spec's capability lists; an absent list is the empty set.
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self> {
        let Some(caps) = caps else {
            return Ok(Self::default());
        };
        let set = |list: &Option<oci_spec::runtime::Capabilities>, field: &str| -> Result<CapSet> {
            let names: Vec<String> = list.iter().flatten().map(|c| c.to_string()).collect();
            CapSet::from_names(names.iter().map(String::as_str), field)
        };
        Ok(Self {
            bounding: set(caps.bounding(), "process.capabilities.bounding")?,
            effective: set(caps.effective(), "process.capabilities.effective")?,
            permitted: set(caps.permitted(), "process.capabilities.permitted")?,
            inheritable: set(caps.inheritable(), "process.capabilities.inheritable")?,
            ambient: set(caps.ambient(), "process.capabilities.ambient")?,
        })
    }

    /// Drops from the bounding set what the spec does not list. Needs CAP_SETPCAP, so it
    /// runs before the switch to the container's user.
    pub fn apply_bounding(&self) -> nix::Result<()> {
        let last = last_cap();
        for cap in 0..=last {
            if !self.bounding.has(cap) {
                // SAFETY: prctl with integer arguments only.
                let rc =
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
                if rc != 0 && nix::errno::Errno::last() != nix::errno::Errno::EINVAL {
                    return Err(nix::errno::Errno::last());
                }
            }
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable with capset(2), then the ambient set.
    pub fn apply_sets(&self) -> nix::Result<()> {
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let low = |s: CapSet| s.0 as u32;
        let high = |s: CapSet| (s.0 >> 32) as u32;
        let data = [
            CapData {
                effective: low(self.effective),
                permitted: low(self.permitted),
                inheritable: low(self.inheritable),
            },
            CapData {
                effective: high(self.effective),
                permitted: high(self.permitted),
                inheritable: high(self.inheritable),
            },
        ];
        // SAFETY: header and data match the kernel's v3 layout and outlive the call.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        nix::errno::Errno::result(rc)?;
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        for cap in (0..=last_cap()).filter(|c| self.ambient.has(*c)) {
            // SAFETY: as above; a cap not in permitted+inheritable fails, which the spec allows.
            unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
        }
        Ok(())
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The highest capability this kernel knows.
fn last_cap() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_numbers() {
        let set = CapSet::from_names(["CAP_CHOWN", "net_admin", "CAP_SYS_ADMIN"], "f").unwrap();
        assert!(set.has(0) && set.has(12) && set.has(21));
        assert_eq!(set.0.count_ones(), 3);
    }

    #[test]
    fn unknown_names_are_refused_with_the_field() {
        let error = CapSet::from_names(["CAP_FLY"], "process.capabilities.bounding")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("process.capabilities.bounding") && error.contains("CAP_FLY"),
            "{error}"
        );
    }
}
