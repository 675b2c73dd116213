"""deny_io_uring.py CMD...: runs CMD (exec, same pid) under a seccomp filter
that makes io_uring_setup fail with EPERM, as Docker's default profile and
hardened systemd units do. Only this process and its children are affected:
no sysctl, nothing global. Stdlib only (ctypes). Exit 2 when the kernel or
architecture does not allow the filter (the caller skips)."""

import ctypes
import os
import platform
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
NR_IO_URING_SETUP = 425  # the same on every architecture (a post-5.1 syscall)
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# BPF opcodes: ld w abs, jeq k, ret k.
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    arch = AUDIT_ARCH.get(platform.machine())
    if arch is None or len(sys.argv) < 2:
        return 2
    prog = b"".join([
        insn(LD_W_ABS, 0, 0, 4),                  # seccomp_data.arch
        insn(JEQ_K, 1, 0, arch),
        insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),     # another ABI: leave it alone
        insn(LD_W_ABS, 0, 0, 0),                  # seccomp_data.nr
        insn(JEQ_K, 0, 1, NR_IO_URING_SETUP),
        insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ])
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return 2
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return 2
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
