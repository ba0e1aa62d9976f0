/* Makes one syscall named on the command line and reports how it went: exit status 0 when the
 * syscall succeeded, otherwise its errno. Used by tests/seccomp.rs, which compiles it with gcc. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYS_open_tree_attr_nr 467
#define X32_SYSCALL_BIT 0x40000000L

#if defined(__x86_64__)
/* A native x86_64 syscall without arguments. */
static long native_syscall0(long nr) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
    return ret;
}

/* An i386 syscall through the legacy interrupt. */
static long i386_syscall0(long nr) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "r8", "r9", "r10", "r11", "memory");
    return ret;
}
#endif

/* After a raw clone: the child exits at once, the parent reaps it and reports success. */
static long after_clone(long ret) {
    if (ret == 0) _exit(0); /* the child */
    if (ret > 0) {
        int status;
        waitpid((pid_t)ret, &status, __WALL);
        return 0;
    }
    return ret;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROBE [HEX]\n", argv[0]);
        return 100;
    }
    const char *probe = argv[1];
    unsigned long arg = argc > 2 ? strtoul(argv[2], NULL, 16) : 0;
    char byte = 'x';
    long ret;
    errno = 0;

    if (!strcmp(probe, "mount")) {
        ret = mount("none", "/nonexistent-sandpit", "tmpfs", 0, NULL);
    } else if (!strcmp(probe, "umount2")) {
        ret = umount2("/nonexistent-sandpit", 0);
    } else if (!strcmp(probe, "chroot")) {
        ret = chroot("/nonexistent-sandpit");
    } else if (!strcmp(probe, "open_tree_attr")) {
        ret = syscall(SYS_open_tree_attr_nr, -1, "", 0, NULL, 0);
    } else if (!strcmp(probe, "ptrace")) {
        ret = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    } else if (!strcmp(probe, "process_madvise")) {
        ret = syscall(SYS_process_madvise, -1, NULL, 0, 0, 0);
    } else if (!strcmp(probe, "pidfd_getfd")) {
        ret = syscall(SYS_pidfd_getfd, -1, 0, 0);
    } else if (!strcmp(probe, "keyctl")) {
        /* KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING */
        ret = syscall(SYS_keyctl, 0, -3, 0);
    } else if (!strcmp(probe, "bpf")) {
        ret = syscall(SYS_bpf, -1, NULL, 0);
    } else if (!strcmp(probe, "perf_event_open")) {
        ret = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    } else if (!strcmp(probe, "io_uring_setup")) {
        char params[120];
        memset(params, 0, sizeof params);
        ret = syscall(SYS_io_uring_setup, 1, params);
    } else if (!strcmp(probe, "clock_settime")) {
        /* A NULL time: EFAULT if it gets through, so the clock is never changed. */
        ret = syscall(SYS_clock_settime, CLOCK_REALTIME, NULL);
    } else if (!strcmp(probe, "setns")) {
        ret = setns(-1, 0);
    } else if (!strcmp(probe, "unshare")) {
        ret = unshare((int)arg);
    } else if (!strcmp(probe, "clone")) {
        ret = after_clone(syscall(SYS_clone, arg | SIGCHLD, 0, 0, 0, 0));
    } else if (!strcmp(probe, "clone3")) {
        ret = syscall(SYS_clone3, NULL, 0);
    } else if (!strcmp(probe, "ioctl")) {
        /* ioctl on stdin (not a terminal in the tests) with the request given in hex. */
        ret = syscall(SYS_ioctl, 0, arg, &byte);
    } else if (!strcmp(probe, "personality")) {
        ret = syscall(SYS_personality, arg);
#if defined(__x86_64__)
    } else if (!strcmp(probe, "getpid")) {
        ret = native_syscall0(SYS_getpid);
        printf("native getpid: %ld\n", ret);
        return ret > 0 ? 0 : 101;
    } else if (!strcmp(probe, "i386_getpid")) {
        ret = i386_syscall0(20); /* __NR_getpid on i386 */
        printf("i386 getpid: %ld\n", ret);
        return 0;
    } else if (!strcmp(probe, "x32_getpid")) {
        ret = native_syscall0(X32_SYSCALL_BIT | SYS_getpid);
        printf("x32 getpid: %ld\n", ret);
        return 0;
#endif
    } else {
        fprintf(stderr, "unknown probe %s\n", probe);
        return 100;
    }

    int err = errno;
    printf("%s(%#lx): ret=%ld errno=%d (%s)\n", probe, arg, ret, err, strerror(err));
    return ret < 0 ? (err > 0 && err < 100 ? err : 102) : 0;
}
