// without_io_uring: runs a command with io_uring blocked the way Docker's
// default seccomp profile blocks it: io_uring_setup, io_uring_enter and
// io_uring_register fail with EPERM (or the errno given with --errno).
//
//   without_io_uring [--errno N] COMMAND [ARGS...]
//
// A seccomp filter survives execve, applies to this process only, and needs
// no privilege after PR_SET_NO_NEW_PRIVS: the machine's sysctl is never touched.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif

#if defined(__x86_64__)
#define CORING_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CORING_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "without_io_uring: add this architecture's AUDIT_ARCH"
#endif

int main(int argc, char** argv) {
  int err = EPERM;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--errno") == 0) {
    err = std::atoi(argv[2]);
    first = 3;
  }
  if (first >= argc || err <= 0 || err > 4095) {
    std::fprintf(stderr, "usage: without_io_uring [--errno N] COMMAND [ARGS...]\n");
    return 2;
  }
  const auto ret_errno = static_cast<unsigned>(SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA));
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CORING_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, ret_errno),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    std::perror("without_io_uring: prctl(PR_SET_NO_NEW_PRIVS)");
    return 1;
  }
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    std::perror("without_io_uring: prctl(PR_SET_SECCOMP)");
    return 1;
  }
  ::execvp(argv[first], argv + first);
  std::fprintf(stderr, "without_io_uring: cannot run %s: %s\n", argv[first], std::strerror(errno));
  return 127;
}
