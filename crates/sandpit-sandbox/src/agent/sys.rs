//! The few raw system calls the agent needs that no safe wrapper covers: fork before the
//! runtime starts, `wait4` for resource usage, the child's set-up between fork and exec, the
//! loopback interface, and terminal ioctls. Everything `unsafe` in the agent lives here.
#![expect(
    unsafe_code,
    reason = "fork, pre_exec, wait4 and ioctls have no safe wrapper"
)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::seccomp::SyscallFilter;

pub enum Forked {
    Parent(libc::pid_t),
    Child,
}

/// Forks. Only called while the agent is single-threaded (before its runtime starts).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the agent has no other threads at this point, so the child inherits a consistent
    // address space (no lock can be held by a thread that does not exist in the child).
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Closes every descriptor above stderr. The agent may inherit descriptors its starter did not
/// mark close-on-exec (a build tool's jobserver pipe, say); sandboxed code must never see them.
pub fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: nothing in this process owns a descriptor above 2 yet.
    check(unsafe { libc::close_range(3, libc::c_uint::MAX, 0) })
}

/// Takes `name` out of the environment and returns its value, so no process the agent starts
/// later can inherit it (spawns clear the environment too; this keeps it out of the agent's
/// own). Called first thing, while the agent has no other thread that could read the
/// environment meanwhile.
pub fn take_env(name: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(name);
    // SAFETY: the agent is single-threaded here: nothing reads the environment concurrently.
    unsafe { std::env::remove_var(name) };
    value
}

/// A reaped child: pid, wait status and resource usage.
pub struct Reaped {
    pub pid: libc::pid_t,
    pub status: libc::c_int,
    pub cpu_ms: u64,
    pub maxrss_kb: u64,
}

/// Reaps one child. `block`: wait for one; otherwise `Ok(None)` when none has exited.
/// `Ok(None)` also when there are no children at all.
pub fn reap(block: bool) -> io::Result<Option<Reaped>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, fully written by the kernel on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: valid pointers to locals.
    let pid = unsafe { libc::wait4(-1, &mut status, flags, &mut usage) };
    if pid < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ECHILD) => Ok(None),
            Some(libc::EINTR) => reap(block),
            _ => Err(err),
        };
    }
    if pid == 0 {
        return Ok(None);
    }
    let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
    Ok(Some(Reaped {
        pid,
        status,
        cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
        maxrss_kb: usage.ru_maxrss.max(0) as u64,
    }))
}

/// What a sandboxed child does between fork and exec. All values are prepared before the fork
/// so the closure neither allocates nor takes locks.
pub struct ChildSetup {
    pub uid: u32,
    pub gid: u32,
    pub pty: bool,
    pub cpu_seconds: Option<u64>,
    pub file_size_bytes: u64,
    pub open_files: u64,
    pub cap_last: u32,
    pub filter: Option<SyscallFilter>,
    /// Whether to take on `uid`/`gid`: only an agent running as root can (and must); an
    /// unprivileged agent in pod mode spawns as itself.
    pub change_identity: bool,
}

/// Spawns `cmd` with the sandbox child set-up: new session, limits, every capability dropped,
/// unprivileged uid/gid, `no_new_privs` and the seccomp filter.
pub fn spawn_sandboxed(cmd: &mut Command, setup: ChildSetup) -> io::Result<Child> {
    let hook = move || -> io::Result<()> {
        check(unsafe { libc::setsid() })?;
        if setup.pty {
            // SAFETY: stdin is the terminal slave, set up by Command before this hook runs.
            check(unsafe { libc::ioctl(0, libc::TIOCSCTTY as _, 0) })?;
        }
        // The agent protects itself from the OOM killer; its children must not inherit that.
        let fd = unsafe {
            libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            unsafe {
                libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
            }
        }
        // Limits only ever go down: raising a hard limit needs CAP_SYS_RESOURCE.
        let limit = |resource, soft: u64, hard: u64| {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            check(unsafe { libc::getrlimit(resource, &mut current) })?;
            let hard = hard.min(current.rlim_max);
            let rl = libc::rlimit {
                rlim_cur: soft.min(hard),
                rlim_max: hard,
            };
            check(unsafe { libc::setrlimit(resource, &rl) })
        };
        if let Some(secs) = setup.cpu_seconds {
            // SIGXCPU at the soft limit, SIGKILL a second later if it is ignored.
            limit(libc::RLIMIT_CPU, secs, secs + 1)?;
        }
        limit(
            libc::RLIMIT_FSIZE,
            setup.file_size_bytes,
            setup.file_size_bytes,
        )?;
        limit(libc::RLIMIT_NOFILE, setup.open_files, setup.open_files)?;
        limit(libc::RLIMIT_CORE, 0, 0)?;
        for cap in 0..=setup.cap_last {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
        if setup.change_identity {
            check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
            check(unsafe { libc::setresgid(setup.gid, setup.gid, setup.gid) })?;
            // Leaving uid 0 clears the permitted, effective and ambient capability sets.
            check(unsafe { libc::setresuid(setup.uid, setup.uid, setup.uid) })?;
        }
        match &setup.filter {
            Some(filter) => filter.install()?,
            None => check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?,
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls on data prepared before the
    // fork; it does not allocate or lock.
    unsafe { cmd.pre_exec(hook) };
    cmd.spawn()
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Brings the loopback interface of the (new) network namespace up.
pub fn loopback_up() -> io::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; the name fits in IFNAMSIZ.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: valid socket and ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })
}

/// Sets a terminal's window size.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid fd and winsize.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
}

/// Registers a descriptor with the runtime's reactor.
pub fn register(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: an OwnedFd is open and keeps referring to the same file description until it is
    // dropped, which happens only when the AsyncFd is dropped.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// The agent's own file-system identity: file requests run with the sandbox user's rights, so
/// a link planted by sandboxed code can reach nothing that code could not reach itself.
pub fn set_fs_identity(uid: u32, gid: u32) {
    // SAFETY: setfsuid/setfsgid take plain integers and cannot fail in a harmful way.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
    }
}

/// Whether `path` itself (not following a link) carries extended attributes.
pub fn has_xattrs(path: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path; a null buffer of size 0 only asks for the size.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

/// A detached copy of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`), to be given new
/// attributes and attached elsewhere. Held from before the staging root covers the path.
pub fn clone_tree(path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: a valid NUL-terminated path; the kernel returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// A user namespace mapping `0 → uid` (and `0 → gid`) and `1.. → sub` (`sub` ids): the id map
/// under which a mount's files appear as a container engine of the box sees its own (root's
/// as the box user's, the rest as its subordinate ids). A short-lived child makes it; the
/// namespace lives on through the returned descriptor. `proc` is a `/proc` of the caller's PID
/// namespace. Called while the agent is single-threaded.
pub fn idmap_userns(
    uid: u32,
    gid: u32,
    sub: (u32, u32),
    proc: &std::path::Path,
) -> io::Result<std::os::fd::OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (done_r, done_w) = nix::unistd::pipe()?;
    match fork()? {
        Forked::Child => {
            // Only async-signal-safe calls from here: unshare, write, read, _exit.
            // SAFETY: plain syscalls on descriptors this process owns.
            unsafe {
                let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
                let byte: u8 = u8::from(ok);
                libc::write(ready_w.as_raw_fd(), (&raw const byte).cast(), 1);
                let mut buf = 0u8;
                libc::read(done_r.as_raw_fd(), (&raw mut buf).cast(), 1);
                libc::_exit(0);
            }
        }
        Forked::Parent(child) => {
            drop(ready_w);
            drop(done_r);
            let mut byte = [0u8];
            let made =
                nix::unistd::read(ready_r.as_raw_fd(), &mut byte).map(|n| n == 1 && byte[0] == 1);
            let result = match made {
                Ok(true) => {
                    let dir = proc.join(child.to_string());
                    let (start, count) = sub;
                    let map = |own: u32| format!("0 {own} 1\n1 {start} {count}\n");
                    std::fs::write(dir.join("uid_map"), map(uid))
                        .and_then(|()| std::fs::write(dir.join("gid_map"), map(gid)))
                        .and_then(|()| std::fs::File::open(dir.join("ns/user")))
                        .map(std::os::fd::OwnedFd::from)
                }
                Ok(false) => Err(io::Error::other("unshare(CLONE_NEWUSER) failed")),
                Err(e) => Err(e.into()),
            };
            let _ = nix::unistd::write(&done_w, b"x");
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            result
        }
    }
}

/// Makes a detached tree read-only, without set-uid and device files, with the id map of
/// `userns`, and attaches it at `target`.
pub fn attach_idmapped(
    tree: &std::os::fd::OwnedFd,
    userns: &std::os::fd::OwnedFd,
    target: &std::path::Path,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    /// `struct mount_attr` of <linux/mount.h>.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const MOUNT_ATTR_IDMAP: u64 = 0x10_0000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH, and a struct of the size
    // passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    } as libc::c_int)?;
    let c = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid descriptor and NUL-terminated paths.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    } as libc::c_int)
}

/// Receives what the server hands an agent that is to listen on TCP, over the socket on its
/// stdin: the box's key (the message's bytes) and the listening socket itself (`SCM_RIGHTS`,
/// made close-on-exec as it arrives so no sandboxed process can inherit it).
pub fn receive_listener(
    sock: &std::os::unix::net::UnixStream,
) -> io::Result<([u8; crate::transport::KEY_LEN], std::net::TcpListener)> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, getsockopt, recvmsg, sockopt};

    let mut key = [0u8; crate::transport::KEY_LEN];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (got, fds) = {
        let mut iov = [io::IoSliceMut::new(&mut key)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel has just installed these descriptors in this process for
                // this message; nothing else refers to them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (msg.bytes, fds)
    };
    if got == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the socket before handing over the listener",
        ));
    }
    // The descriptor rides on the first byte; the rest of the key may come after it.
    (&*sock).read_exact(&mut key[got..])?;
    let mut fds = fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        return Err(io::Error::other(
            "expected exactly one listening socket with the key",
        ));
    };
    if !getsockopt(&fd, sockopt::AcceptConn)? {
        return Err(io::Error::other("the socket handed over is not listening"));
    }
    Ok((key, std::net::TcpListener::from(fd)))
}
