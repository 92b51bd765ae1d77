//! Just enough of the kernel's BPF interface for the small programs Berth writes: typed
//! instruction constructors, and the `bpf(2)` commands to create a hash map, update and
//! delete its elements, load a program, and attach it to a cgroup (for good, or linked
//! for as long as a descriptor lives).
//!
//! Our own rather than a crate's: aya and libbpf load programs from ELF objects, which
//! need a BPF compiler (clang, or nightly Rust and bpf-linker) at build time; Berth's
//! programs — the runtime's device rules, the agent's connect-time Service balancing —
//! are tens of instructions, written as data (docs/decisions/0020).
//!
//! Depends on nothing of ours; berth-runtime and berth-net use it.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A `bpf(2)` command that failed, named, with the kernel's answer (and, for a program
/// the verifier refused, its words).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    /// What was being done.
    pub what: String,
    /// The kernel's answer.
    pub source: std::io::Error,
}

/// The result of a BPF operation.
pub type Result<T> = std::result::Result<T, Error>;

/// One BPF instruction, as the kernel's `struct bpf_insn` lays it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    registers: u8,
    offset: i16,
    immediate: i32,
}

/// A BPF register: r0 holds results, r1–r5 arguments (clobbered by calls), r6–r9 survive
/// calls, r10 is the read-only frame pointer.
#[derive(Debug, Clone, Copy)]
pub struct Reg(pub u8);

/// The frame pointer: the program's 512-byte stack lies below it.
pub const FP: Reg = Reg(10);

/// The size of a memory access.
#[derive(Debug, Clone, Copy)]
pub enum Size {
    /// Four bytes.
    Word = 0x00,
    /// Two bytes.
    Half = 0x08,
}

/// Kernel helper functions the program calls, by their numbers in `enum bpf_func_id`.
#[derive(Debug, Clone, Copy)]
pub enum Helper {
    /// `bpf_map_lookup_elem(map, key)`: a pointer to the value, or null.
    MapLookup = 1,
    /// `bpf_get_prandom_u32()`.
    RandomU32 = 7,
    /// `bpf_get_netns_cookie(ctx)`: the socket's network namespace.
    NetnsCookie = 122,
}

const ALU64: u8 = 0x07;
const JMP: u8 = 0x05;
const BY_REGISTER: u8 = 0x08;

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, offset: i16, immediate: i32) -> Self {
        Self {
            code,
            registers: (src.0 << 4) | (dst.0 & 0x0f),
            offset,
            immediate,
        }
    }

    /// `dst = src`.
    pub fn mov(dst: Reg, src: Reg) -> Self {
        Self::new(ALU64 | 0xb0 | BY_REGISTER, dst, src, 0, 0)
    }

    /// `dst = immediate`.
    pub fn mov_imm(dst: Reg, immediate: i32) -> Self {
        Self::new(ALU64 | 0xb0, dst, Reg(0), 0, immediate)
    }

    /// `dst &= immediate`.
    pub fn and_imm(dst: Reg, immediate: i32) -> Self {
        Self::new(ALU64 | 0x50, dst, Reg(0), 0, immediate)
    }

    /// `dst >>= immediate` (logical).
    pub fn rsh_imm(dst: Reg, immediate: i32) -> Self {
        Self::new(ALU64 | 0x70, dst, Reg(0), 0, immediate)
    }

    /// `dst += immediate`.
    pub fn add_imm(dst: Reg, immediate: i32) -> Self {
        // BPF_ADD is operation 0.
        Self::new(ALU64, dst, Reg(0), 0, immediate)
    }

    /// `dst = (u32) dst % (u32) src` (zero when src is).
    pub fn mod32(dst: Reg, src: Reg) -> Self {
        Self::new(0x04 | 0x90 | BY_REGISTER, dst, src, 0, 0)
    }

    /// `dst = *(size *)(src + offset)`.
    pub fn load(size: Size, dst: Reg, src: Reg, offset: i16) -> Self {
        Self::new(0x61 | size as u8, dst, src, offset, 0)
    }

    /// `*(size *)(dst + offset) = src`.
    pub fn store(size: Size, dst: Reg, offset: i16, src: Reg) -> Self {
        Self::new(0x63 | size as u8, dst, src, offset, 0)
    }

    /// `*(size *)(dst + offset) = immediate`.
    pub fn store_imm(size: Size, dst: Reg, offset: i16, immediate: i32) -> Self {
        Self::new(0x62 | size as u8, dst, Reg(0), offset, immediate)
    }

    /// `dst = value`: two instruction slots.
    pub fn load_u64(dst: Reg, value: u64) -> [Self; 2] {
        Self::wide(dst, Reg(0), value)
    }

    /// `dst = the map open as fd`: two instruction slots, which the kernel rewrites to
    /// the map's address.
    pub fn load_map(dst: Reg, map: &Map) -> [Self; 2] {
        const PSEUDO_MAP_FD: u8 = 1;
        Self::wide(dst, Reg(PSEUDO_MAP_FD), map.fd.as_raw_fd() as u64)
    }

    fn wide(dst: Reg, src: Reg, value: u64) -> [Self; 2] {
        // The 64-bit immediate is split over two slots, its low half first.
        [
            Self::new(0x18, dst, src, 0, value as u32 as i32),
            Self::new(0, Reg(0), Reg(0), 0, (value >> 32) as u32 as i32),
        ]
    }

    /// `if dst == immediate goto +offset`.
    pub fn jump_eq_imm(dst: Reg, immediate: i32, offset: i16) -> Self {
        Self::new(JMP | 0x10, dst, Reg(0), offset, immediate)
    }

    /// `if dst != src goto +offset`.
    pub fn jump_ne(dst: Reg, src: Reg, offset: i16) -> Self {
        Self::new(JMP | 0x50 | BY_REGISTER, dst, src, offset, 0)
    }

    /// `if dst != immediate goto +offset`.
    pub fn jump_ne_imm(dst: Reg, immediate: i32, offset: i16) -> Self {
        Self::new(JMP | 0x50, dst, Reg(0), offset, immediate)
    }

    /// Calls `helper` with r1–r5; its result lands in r0.
    pub fn call(helper: Helper) -> Self {
        Self::new(JMP | 0x80, Reg(0), Reg(0), 0, helper as i32)
    }

    /// Returns r0.
    pub fn exit() -> Self {
        Self::new(JMP | 0x90, Reg(0), Reg(0), 0, 0)
    }

    /// Where a conditional jump goes, relative to the next instruction; None for any
    /// other instruction.
    pub fn jump_offset(&self) -> Option<i16> {
        let (class, operation) = (self.code & 0x07, self.code & 0xf0);
        (class == JMP && !matches!(operation, 0x00 | 0x80 | 0x90)).then_some(self.offset)
    }

    /// Points a conditional jump made with offset 0 (a jump not yet placed) at the
    /// instruction `distance` past the next one; leaves any other instruction alone.
    pub fn retarget_forward(&mut self, distance: usize) {
        if self.jump_offset() == Some(0) {
            self.offset = i16::try_from(distance).expect("a BPF program of under 32k instructions");
        }
    }
}

/// A BPF hash map whose keys and values are plain `repr(C)` structs.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

/// `bpf(2)` command numbers, from `enum bpf_cmd`.
const MAP_CREATE: i32 = 0;
const MAP_UPDATE_ELEM: i32 = 2;
const MAP_DELETE_ELEM: i32 = 3;
const PROG_LOAD: i32 = 5;
const PROG_ATTACH: i32 = 8;
const LINK_CREATE: i32 = 28;

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapElement {
    map_fd: u32,
    padding: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// Calls `bpf(command, attr)`; a new descriptor when the command makes one.
fn bpf<T>(command: i32, attr: &T, what: impl FnOnce() -> String) -> Result<i64> {
    // SAFETY: attr is a live repr(C) value of the layout the kernel reads for this
    // command, and its size is passed with it; pointers inside it point at live buffers.
    let answer = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_ref(attr),
            size_of::<T>(),
        )
    };
    if answer < 0 {
        return Err(Error {
            what: what(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(answer)
}

/// Takes ownership of a descriptor `bpf(2)` returned (made close-on-exec by the kernel).
fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel has just made this descriptor and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

impl Map {
    /// A hash map of `K` to `V` holding up to `capacity` entries, allocated as they are
    /// added rather than up front.
    pub fn hash<K, V>(capacity: u32) -> Result<Self> {
        const HASH: u32 = 1;
        const NO_PREALLOC: u32 = 1;
        let attr = MapCreate {
            map_type: HASH,
            key_size: size_of::<K>() as u32,
            value_size: size_of::<V>() as u32,
            max_entries: capacity,
            map_flags: NO_PREALLOC,
        };
        let fd = bpf(MAP_CREATE, &attr, || "create a BPF hash map".into())?;
        Ok(Self {
            fd: owned(fd),
            key_size: size_of::<K>(),
            value_size: size_of::<V>(),
        })
    }

    /// Sets `key` to `value`.
    pub fn insert<K, V>(&self, key: &K, value: &V) -> Result<()> {
        assert_eq!(
            (size_of::<K>(), size_of::<V>()),
            (self.key_size, self.value_size)
        );
        let attr = MapElement {
            map_fd: self.fd.as_raw_fd() as u32,
            key: std::ptr::from_ref(key) as u64,
            value: std::ptr::from_ref(value) as u64,
            ..MapElement::default()
        };
        bpf(MAP_UPDATE_ELEM, &attr, || "update a BPF map element".into()).map(drop)
    }

    /// Removes `key`; a key that is not there is no error.
    pub fn remove<K>(&self, key: &K) -> Result<()> {
        assert_eq!(size_of::<K>(), self.key_size);
        let attr = MapElement {
            map_fd: self.fd.as_raw_fd() as u32,
            key: std::ptr::from_ref(key) as u64,
            ..MapElement::default()
        };
        match bpf(MAP_DELETE_ELEM, &attr, || "delete a BPF map element".into()) {
            Err(error) if error.source.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other.map(drop),
        }
    }
}

/// A loaded program.
#[derive(Debug)]
pub struct Program(OwnedFd);

impl Program {
    /// Loads `insns` as a program of `prog_type` for `attach_type`; the verifier's words
    /// in the error when it refuses them (asked for only then: logging slows it).
    pub fn load(name: &CStr, (prog_type, attach_type): (u32, u32), insns: &[Insn]) -> Result<Self> {
        let mut prog_name = [0u8; 16];
        let name = name.to_bytes();
        let length = name.len().min(15);
        prog_name[..length].copy_from_slice(&name[..length]);
        let attr = ProgLoad {
            prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: c"Apache-2.0".as_ptr() as u64,
            prog_name,
            expected_attach_type: attach_type,
            ..ProgLoad::default()
        };
        if let Ok(fd) = bpf(PROG_LOAD, &attr, String::new) {
            return Ok(Self(owned(fd)));
        }
        let mut log = vec![0u8; 64 * 1024];
        let logged = ProgLoad {
            log_level: 1,
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            ..attr
        };
        bpf(PROG_LOAD, &logged, || "load a BPF program".into())
            .map(|fd| Self(owned(fd)))
            .map_err(|Error { what, source }| {
                let said = CStr::from_bytes_until_nul(&log)
                    .map(|s| s.to_string_lossy().trim().to_string())
                    .unwrap_or_default();
                Error {
                    what: format!("{what} (the verifier said: {said})"),
                    source,
                }
            })
    }

    /// Attaches the program to the cgroup open as `cgroup` for `attach_type` for good —
    /// it stays when this process ends, as long as the cgroup does — beside any others
    /// attached there (`BPF_F_ALLOW_MULTI`).
    pub fn attach_to_cgroup(&self, cgroup: &impl AsRawFd, attach_type: u32) -> Result<()> {
        const ALLOW_MULTI: u32 = 2;
        let attr = ProgAttach {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: self.0.as_raw_fd() as u32,
            attach_type,
            attach_flags: ALLOW_MULTI,
        };
        bpf(PROG_ATTACH, &attr, || {
            "attach a BPF program to a cgroup".into()
        })
        .map(drop)
    }

    /// Attaches the program to the cgroup open as `cgroup` for `attach_type`, until the
    /// returned link is dropped — so a process that dies takes its program with it.
    pub fn link_to_cgroup(&self, cgroup: &impl AsRawFd, attach_type: u32) -> Result<OwnedFd> {
        let attr = LinkCreate {
            prog_fd: self.0.as_raw_fd() as u32,
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type,
            flags: 0,
        };
        bpf(LINK_CREATE, &attr, || {
            "link a BPF program to a cgroup".into()
        })
        .map(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // The encodings of linux/filter.h's BPF_MOV64_REG, BPF_LDX_MEM, BPF_STX_MEM, BPF_LD_IMM64.
        let mov = Insn::mov(Reg(6), Reg(1));
        assert_eq!((mov.code, mov.registers), (0xbf, 0x16));
        let load = Insn::load(Size::Word, Reg(7), Reg(6), 4);
        assert_eq!((load.code, load.registers, load.offset), (0x61, 0x67, 4));
        let store = Insn::store(Size::Half, FP, -12, Reg(7));
        assert_eq!(
            (store.code, store.registers, store.offset),
            (0x6b, 0x7a, -12)
        );
        let [low, high] = Insn::load_u64(Reg(1), 0x1122_3344_5566_7788);
        assert_eq!((low.code, low.immediate), (0x18, 0x5566_7788));
        assert_eq!(high.immediate, 0x1122_3344);
        assert_eq!(Insn::call(Helper::NetnsCookie).immediate, 122);
        assert_eq!(Insn::exit().code, 0x95);
    }
}
