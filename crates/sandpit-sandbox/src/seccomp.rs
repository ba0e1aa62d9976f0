//! The seccomp filter every sandboxed program runs under.
//!
//! The policy is a denylist on top of "allow": the namespaces, cgroups and the unprivileged uid do
//! the confining, and this filter removes kernel interfaces an untrusted program has no business
//! with (mounting, namespaces, other processes' memory, kernel and clock control, and large attack
//! surfaces such as `bpf` and `io_uring`). Any architecture other than the native one (i386 via
//! `int 0x80`, x32 syscall numbers) kills the process, so the denylist cannot be dodged through a
//! second syscall table.
//!
//! The filter is compiled once with libseccomp ([`SyscallFilter::new`]) and kept as a plain BPF
//! program. [`SyscallFilter::install`] only makes two syscalls on that program, so it is safe
//! between `fork` and `exec` (in `CommandExt::pre_exec`) and costs microseconds per run.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// Syscalls refused outright: `clone3` with `ENOSYS`, every other one with `EPERM`.
const DENIED: &[&str] = &[
    // Mounts and views of the filesystem tree. `open_tree_attr` (Linux 6.15) is `open_tree` with
    // mount attributes, so it belongs with it.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    // New or other namespaces (clone's namespace flags are refused by argument below).
    "unshare",
    "setns",
    // Reading, writing or steering other processes. `process_madvise` acts on another process's
    // memory like `process_vm_*`; nothing in a sandbox needs it.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    // Kernel, host and clock control.
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "sethostname",
    "setdomainname",
    "vhangup",
    "clock_settime",
    "clock_adjtime",
    "settimeofday",
    "adjtimex",
    "iopl",
    "ioperm",
    // `quotactl_fd` is `quotactl` addressed through a file descriptor.
    "quotactl",
    "quotactl_fd",
    // Large kernel attack surfaces a sandboxed program does not need.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "fanotify_init",
    // File handles bypass path-based access checks (the "shocker" container escape).
    "open_by_handle_at",
    "name_to_handle_at",
    // Obsolete interfaces, kept out in case an old kernel still has them.
    "uselib",
    "nfsservctl",
    "lookup_dcookie",
    // Its flags live in memory seccomp cannot read. ENOSYS (not EPERM) makes glibc fall back to
    // `clone`, whose flags the rules below inspect; Docker does the same.
    "clone3",
];

/// Of [`DENIED`], what a box with a container engine allows: a rootless engine makes user
/// namespaces and, inside them, the other namespaces, mounts (its overlay layers, `/proc`,
/// `/dev`) and a new root, and names its containers' hosts. The box's processes hold no
/// capability in the host's user namespace, so each of these acts only on namespaces they
/// created; the price is the kernel surface of user namespaces, which every rootless container
/// host pays (docs/docker.md says so).
const CONTAINERS_ALLOW: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "sethostname",
    "setdomainname",
];

/// Which policy a filter enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Every sandbox: no mounts, no namespaces.
    Default,
    /// A box running a rootless container engine: [`CONTAINERS_ALLOW`] and namespace flags to
    /// `clone` too.
    Containers,
}

/// Syscalls newer than some libseccomp releases still in use (Debian 12 ships 2.5.4), with their
/// number. Since Linux 5.1 new syscalls have one number on every architecture we build for.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const NEWER_THAN_LIBSECCOMP: &[(&str, i32)] = &[("open_tree_attr", 467)];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NEWER_THAN_LIBSECCOMP: &[(&str, i32)] = &[];

/// `clone` flags that create namespaces. `CLONE_NEWTIME` shares its bit with the exit signal in
/// `clone` (not `clone3`) and the kernel rejects it there; refusing it costs nothing.
const NAMESPACE_FLAGS: &[(&str, libc::c_int)] = &[
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
    ("CLONE_NEWTIME", libc::CLONE_NEWTIME),
];

/// `ioctl` requests that push input into a terminal (keystroke injection into the user's shell).
const REFUSED_IOCTLS: &[(&str, libc::Ioctl)] =
    &[("TIOCSTI", libc::TIOCSTI), ("TIOCLINUX", libc::TIOCLINUX)];

/// `personality` bits a program may set: `PER_LINUX32` and `UNAME26`. With `0` and the query value
/// `0xffffffff` these are the values glibc and common tools use (the same set Docker allows).
/// (`personality(0xffffffff)` only reads the current persona.)
const PERSONALITY_ALLOWED_BITS: u32 = 0x0008 | 0x0002_0000;

/// Why building the filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("libseccomp could not create a filter context")]
    NewContext(#[source] libseccomp::error::SeccompError),
    #[error("libseccomp could not set the filter attribute {attribute}")]
    SetAttribute {
        attribute: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("libseccomp does not know the syscall `{name}`")]
    UnknownSyscall {
        name: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("libseccomp refused the rule for `{syscall}` ({rule})")]
    AddRule {
        syscall: &'static str,
        rule: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("could not create a memfd to export the filter into")]
    CreateMemfd(#[source] nix::Error),
    #[error("libseccomp could not export the filter as BPF")]
    Export(#[source] libseccomp::error::SeccompError),
    #[error("could not read back the exported BPF program")]
    ReadBack(#[source] std::io::Error),
    #[error("the exported BPF program is malformed: {len} bytes")]
    MalformedProgram { len: usize },
}

/// A compiled seccomp filter: a classic BPF program ready to hand to the kernel.
#[derive(Clone)]
pub struct SyscallFilter {
    program: Vec<libc::sock_filter>,
    /// `program.len()`, checked at build time to fit the kernel's limit (4096 instructions).
    len: u16,
}

impl std::fmt::Debug for SyscallFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyscallFilter")
            .field("instructions", &self.program.len())
            .finish()
    }
}

impl SyscallFilter {
    /// Builds the sandbox policy with libseccomp and exports it to BPF.
    pub fn new() -> Result<Self, SeccompError> {
        Self::with_policy(Policy::Default)
    }

    /// Builds the policy of a box with a container engine ([`Policy::Containers`]).
    pub fn for_containers() -> Result<Self, SeccompError> {
        Self::with_policy(Policy::Containers)
    }

    fn with_policy(policy: Policy) -> Result<Self, SeccompError> {
        let context = build_policy(policy)?;
        let program = export(&context)?;
        let len = u16::try_from(program.len()).map_err(|_| SeccompError::MalformedProgram {
            len: program.len() * 8,
        })?;
        tracing::debug!(seccomp.instructions = len, "built the seccomp filter");
        Ok(Self { program, len })
    }

    /// The number of BPF instructions in the program.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// Sets `no_new_privs` and installs the filter on the calling thread.
    ///
    /// Async-signal-safe: no allocation, no locks, only `prctl` and `seccomp`, so it may run in a
    /// forked child before `exec`. The filter is inherited across `fork` and `exec` and cannot be
    /// removed. `no_new_privs` is what lets an unprivileged process install a filter, and it stops
    /// set-uid programs from regaining privileges.
    #[expect(
        unsafe_code,
        reason = "prctl and seccomp have no safe wrapper usable after fork"
    )]
    pub fn install(&self) -> std::io::Result<()> {
        let program = libc::sock_fprog {
            len: self.len,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: plain prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `program` points to `len` valid instructions, borrowed from `self` for the call;
        // the kernel copies the program. No flags: no TSYNC (the caller is a single-threaded
        // child) and no SPEC_ALLOW (keep the speculative store bypass mitigation for untrusted code).
        let installed = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0 as libc::c_uint,
                &raw const program,
            )
        };
        if installed != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Names of the syscalls the policy refuses outright (`clone3` with `ENOSYS`, the rest with
    /// `EPERM`). Besides these, `clone` with namespace flags, `ioctl` with `TIOCSTI` or
    /// `TIOCLINUX`, and `personality` with values other than 0, 8, 0x20000, 0x20008 and
    /// 0xffffffff get `EPERM`.
    pub fn denied() -> &'static [&'static str] {
        DENIED
    }
}

fn build_policy(policy: Policy) -> Result<ScmpFilterContext, SeccompError> {
    let containers = policy == Policy::Containers;
    // The context holds the native architecture only; anything else hits the bad-arch action.
    // On x86_64 libseccomp also sends x32 numbers (bit 0x40000000) there (tested).
    let mut context =
        ScmpFilterContext::new(ScmpAction::Allow).map_err(SeccompError::NewContext)?;
    context
        .set_act_badarch(ScmpAction::KillProcess)
        .map_err(|source| SeccompError::SetAttribute {
            attribute: "bad-arch action",
            source,
        })?;

    for &name in DENIED {
        if containers && CONTAINERS_ALLOW.contains(&name) {
            continue;
        }
        let errno = if name == "clone3" {
            libc::ENOSYS
        } else {
            libc::EPERM
        };
        context
            .add_rule(ScmpAction::Errno(errno), resolve(name)?)
            .map_err(|source| SeccompError::AddRule {
                syscall: name,
                rule: "refused",
                source,
            })?;
    }

    // clone(flags, ...): the kernel reads the low 32 bits of flags; a single-bit mask ignores
    // the rest. libseccomp ORs rules, so one rule per flag refuses any combination.
    let clone = resolve("clone")?;
    let namespace_flags = if containers { &[][..] } else { NAMESPACE_FLAGS };
    for &(flag_name, flag) in namespace_flags {
        let flag = u64::from(flag.unsigned_abs());
        context
            .add_rule_conditional(
                ScmpAction::Errno(libc::EPERM),
                clone,
                &[ScmpArgCompare::new(
                    0,
                    ScmpCompareOp::MaskedEqual(flag),
                    flag,
                )],
            )
            .map_err(|source| SeccompError::AddRule {
                syscall: "clone",
                rule: flag_name,
                source,
            })?;
    }

    // ioctl(fd, request, ...): the kernel takes request as a 32-bit int, so compare only the low
    // 32 bits; otherwise setting a high bit would slip past an exact comparison.
    let ioctl = resolve("ioctl")?;
    for &(request_name, request) in REFUSED_IOCTLS {
        context
            .add_rule_conditional(
                ScmpAction::Errno(libc::EPERM),
                ioctl,
                &[ScmpArgCompare::new(
                    1,
                    ScmpCompareOp::MaskedEqual(0xffff_ffff),
                    // `as u32`: the kernel's view (and the type differs between libcs).
                    u64::from(request as u32),
                )],
            )
            .map_err(|source| SeccompError::AddRule {
                syscall: "ioctl",
                rule: request_name,
                source,
            })?;
    }

    let personality = resolve("personality")?;
    for (set, clear) in personality_rules() {
        let mask = u64::from(set | clear);
        context
            .add_rule_conditional(
                ScmpAction::Errno(libc::EPERM),
                personality,
                &[ScmpArgCompare::new(
                    0,
                    ScmpCompareOp::MaskedEqual(mask),
                    u64::from(set),
                )],
            )
            .map_err(|source| SeccompError::AddRule {
                syscall: "personality",
                rule: "persona outside the allowed values",
                source,
            })?;
    }

    Ok(context)
}

/// Resolves a syscall name for the native architecture. Names libseccomp does not know are an
/// error, except the few newer than the library, which fall back to their number.
fn resolve(name: &'static str) -> Result<ScmpSyscall, SeccompError> {
    ScmpSyscall::from_name(name).or_else(|source| {
        NEWER_THAN_LIBSECCOMP
            .iter()
            .find(|(newer, _)| *newer == name)
            .map(|&(_, number)| ScmpSyscall::from(number))
            .ok_or(SeccompError::UnknownSyscall { name, source })
    })
}

/// The rules refusing every persona except the allowed ones, as `(bit that is set, bit that is
/// clear)` pairs; a persona matching any pair is refused.
///
/// libseccomp allows one comparison per argument in a rule and an "allow" rule is not possible
/// under an "allow" default, so "not one of five values" is built from masked equalities. The
/// kernel reads `personality`'s argument as 32 bits, and so do these masks. Let `other` be the 30
/// bits outside [`PERSONALITY_ALLOWED_BITS`]; the pairs are a cycle through `other`
/// (`o0→o1→…→o29→o0`) plus `o0→bit 3` and `o0→bit 17`. A persona matches a pair exactly when it
/// is not allowed:
/// - an allowed value either has no `other` bit set (0, 8, 0x20000, 0x20008), so no pair's first
///   bit is set, or is 0xffffffff, so no pair's second bit is clear;
/// - any other value has some `other` bit set and some bit clear. If an `other` bit is clear, the
///   cycle leads from a set `other` bit to a clear one, so one of its pairs matches; otherwise all
///   of `other` is set and bit 3 or 17 is clear, which `o0→3` or `o0→17` catches.
fn personality_rules() -> Vec<(u32, u32)> {
    let other: Vec<u32> = (0..32)
        .map(|bit| 1_u32 << bit)
        .filter(|bit| bit & PERSONALITY_ALLOWED_BITS == 0)
        .collect();
    let mut rules: Vec<(u32, u32)> = other
        .iter()
        .zip(other.iter().cycle().skip(1))
        .map(|(&set, &clear)| (set, clear))
        .collect();
    let first = other[0];
    rules.extend(
        (0..32)
            .map(|bit| 1_u32 << bit)
            .filter(|bit| bit & PERSONALITY_ALLOWED_BITS != 0)
            .map(|allowed| (first, allowed)),
    );
    rules
}

/// Exports the filter through a memfd (no size limit, no blocking, nothing on disk) and reads it
/// back as instructions.
fn export(context: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let memfd = nix::sys::memfd::memfd_create(
        c"sandpit-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(SeccompError::CreateMemfd)?;
    context.export_bpf(&memfd).map_err(SeccompError::Export)?;
    let mut file = File::from(memfd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(SeccompError::ReadBack)?;
    parse_program(&bytes)
}

/// Splits exported bytes into `sock_filter` instructions (native byte order, 8 bytes each).
fn parse_program(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let instructions = bytes.chunks_exact(size_of::<libc::sock_filter>());
    let max = usize::try_from(libc::BPF_MAXINSNS).unwrap_or(4096);
    if bytes.is_empty() || !instructions.remainder().is_empty() || instructions.len() > max {
        return Err(SeccompError::MalformedProgram { len: bytes.len() });
    }
    Ok(instructions
        .map(|chunk| libc::sock_filter {
            code: u16::from_ne_bytes([chunk[0], chunk[1]]),
            jt: chunk[2],
            jf: chunk[3],
            k: u32::from_ne_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: [u32; 5] = [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff];

    fn refused(persona: u32) -> bool {
        personality_rules()
            .iter()
            .any(|&(set, clear)| persona & (set | clear) == set)
    }

    #[test]
    fn personality_rules_refuse_exactly_the_other_values() {
        let rules = personality_rules();
        assert_eq!(rules.len(), 32);
        for (set, clear) in &rules {
            assert_eq!(set.count_ones(), 1);
            assert_eq!(clear.count_ones(), 1);
            assert_ne!(set, clear);
        }
        for value in ALLOWED {
            assert!(!refused(value), "{value:#x} should be allowed");
        }
        // Every value with at most two bits set or at most two bits clear, plus a pseudo-random
        // sweep.
        let mut samples = Vec::new();
        for a in 0..32 {
            for b in 0..32 {
                let bits = (1_u32 << a) | (1_u32 << b);
                samples.extend([bits, 1 << a, !bits, !(1_u32 << a)]);
            }
        }
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            samples.extend([
                x,
                x | !PERSONALITY_ALLOWED_BITS,
                x & PERSONALITY_ALLOWED_BITS,
            ]);
        }
        for value in samples {
            assert_eq!(
                refused(value),
                !ALLOWED.contains(&value),
                "persona {value:#x}"
            );
        }
    }

    #[test]
    fn builds_and_lists_what_it_refuses() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<SyscallFilter>();
        let filter = SyscallFilter::new().unwrap();
        assert!(filter.instructions() > DENIED.len());
        assert!(SyscallFilter::denied().contains(&"mount"));
        assert!(SyscallFilter::denied().contains(&"clone3"));
    }

    #[test]
    fn the_containers_policy_is_the_default_less_mounts_and_namespaces() {
        let default = SyscallFilter::new().unwrap();
        let containers = SyscallFilter::for_containers().unwrap();
        // One rule fewer per allowed name and per clone namespace flag: it is smaller.
        assert!(containers.instructions() < default.instructions());
        for name in CONTAINERS_ALLOW {
            assert!(DENIED.contains(name), "{name} is not refused by default");
        }
        for kept in [
            "ptrace",
            "bpf",
            "kexec_load",
            "init_module",
            "keyctl",
            "io_uring_setup",
        ] {
            assert!(
                !CONTAINERS_ALLOW.contains(&kept),
                "{kept} must stay refused"
            );
        }
    }

    #[test]
    fn every_name_resolves() {
        for &name in DENIED {
            resolve(name).unwrap();
        }
        assert!(matches!(
            resolve("not_a_syscall"),
            Err(SeccompError::UnknownSyscall { .. })
        ));
    }

    #[test]
    fn malformed_programs_are_rejected() {
        assert!(parse_program(&[]).is_err());
        assert!(parse_program(&[0; 7]).is_err());
        assert!(parse_program(&vec![0; 8 * 4097]).is_err());
        let one = parse_program(&[6, 0, 1, 2, 0, 0, 0xff, 0x7f]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].code, one[0].jt, one[0].jf), (6, 1, 2));
        assert_eq!(one[0].k, 0x7fff_0000);
    }
}
