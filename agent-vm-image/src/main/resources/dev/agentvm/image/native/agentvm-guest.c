/*
 * The guest agent's native library (libagentvm-guest.so). MicroImageBuilder compiles it with the
 * host's cc and puts it in the micro image; the agent loads it at start through the system property
 * agentvm.guest.native (dev.agentvm.guest.agent.NativeHelpers). Without it the agent works the same,
 * only slower where it would have used it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jni.h>
#include <poll.h>
#include <stdint.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Sets the wall clock to a whole second since the epoch, in the agent's own process: a restored
 * guest steps its clock without starting a process (the fork and exec cost 100-230 ms in a fresh
 * QEMU under TCG). The caller has bounded the value (at most 9999-12-31). Returns 0 or errno.
 */
static jint set_clock(JNIEnv *env, jclass cls, jlong seconds) {
  (void)env;
  (void)cls;
  struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = 0};
  return clock_settime(CLOCK_REALTIME, &ts) == 0 ? 0 : errno;
}

static void throw_io(JNIEnv *env, const char *what, int err) {
  char buf[128];
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror_r(err, buf, sizeof buf));
  jclass ioe = (*env)->FindClass(env, "java/io/IOException");
  if (ioe != NULL) {
    (*env)->ThrowNew(env, ioe, msg);
  }
}

static void free_strings(char **v) {
  if (v != NULL) {
    for (char **p = v; *p != NULL; p++) {
      free(*p);
    }
    free(v);
  }
}

/* A NULL-terminated copy of byte[][] as C strings; NULL (with an exception pending) on failure. */
static char **strings(JNIEnv *env, jobjectArray arr) {
  jsize n = (*env)->GetArrayLength(env, arr);
  char **v = calloc((size_t)n + 1, sizeof(char *));
  if (v == NULL) {
    throw_io(env, "out of memory", ENOMEM);
    return NULL;
  }
  for (jsize i = 0; i < n; i++) {
    jbyteArray b = (jbyteArray)(*env)->GetObjectArrayElement(env, arr, i);
    jsize len = b == NULL ? 0 : (*env)->GetArrayLength(env, b);
    v[i] = malloc((size_t)len + 1);
    if (v[i] == NULL) {
      free_strings(v);
      throw_io(env, "out of memory", ENOMEM);
      return NULL;
    }
    if (len > 0) {
      (*env)->GetByteArrayRegion(env, b, 0, len, (jbyte *)v[i]);
    }
    v[i][len] = '\0';
    (*env)->DeleteLocalRef(env, b);
  }
  return v;
}

static jobject file_descriptor(JNIEnv *env, int fd) {
  jclass cls = (*env)->FindClass(env, "java/io/FileDescriptor");
  if (cls == NULL) {
    return NULL;
  }
  jmethodID init = (*env)->GetMethodID(env, cls, "<init>", "()V");
  jfieldID field = (*env)->GetFieldID(env, cls, "fd", "I");
  if (init == NULL || field == NULL) {
    return NULL;
  }
  jobject obj = (*env)->NewObject(env, cls, init);
  if (obj != NULL) {
    (*env)->SetIntField(env, obj, field, fd);
  }
  return obj;
}

/* A C string copy of a byte[]; NULL (with an exception pending) on failure. */
static char *string(JNIEnv *env, jbyteArray b) {
  jsize len = (*env)->GetArrayLength(env, b);
  char *s = malloc((size_t)len + 1);
  if (s == NULL) {
    throw_io(env, "out of memory", ENOMEM);
    return NULL;
  }
  (*env)->GetByteArrayRegion(env, b, 0, len, (jbyte *)s);
  s[len] = '\0';
  return s;
}

/*
 * Runs the file program with argv and envp, in cwd, as the leader of a session (and so a process
 * group) of its own, its stdin, stdout and stderr pipes to the agent, no other descriptor of the
 * agent open, every signal at its default and none blocked: what the agent got from
 * ProcessBuilder running setsid, in one vfork and one exec instead of two execs through the JDK's
 * interpreted launch path. The caller found program as execvp would (the request's PATH); a file
 * the kernel cannot run (ENOEXEC: no #! line) runs through /bin/sh, as execvp runs it. Fills fds
 * with the agent's ends (stdin, stdout, stderr) and returns the pid; throws IOException when it
 * cannot start.
 */
static jlong spawn(JNIEnv *env, jclass cls, jbyteArray program, jobjectArray argv,
                   jobjectArray envp, jbyteArray cwd, jobjectArray fds) {
  (void)cls;
  char **args = strings(env, argv);
  char **environ_ = args == NULL ? NULL : strings(env, envp);
  char *file = environ_ == NULL ? NULL : string(env, program);
  char *dir = file == NULL ? NULL : string(env, cwd);
  char **sh_args = NULL;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int fa_ok = 0, attr_ok = 0;
  pid_t pid = -1;
  int rc = 0;
  const char *what = "posix_spawn";
  if (dir == NULL) {
    goto done; /* exception pending */
  }
  if (args[0] == NULL) {
    throw_io(env, "spawn", EINVAL);
    goto done;
  }
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    rc = errno;
    what = "pipe";
    goto fail;
  }
  if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
    goto fail;
  }
  fa_ok = 1;
  if ((rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&fa, err[1], 2)) != 0 ||
      (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0 ||
      (rc = posix_spawn_file_actions_addchdir_np(&fa, dir)) != 0) {
    goto fail;
  }
  if ((rc = posix_spawnattr_init(&attr)) != 0) {
    goto fail;
  }
  attr_ok = 1;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
#ifdef __GLIBC__
  /*
   * glibc ignores its two internal signals (32 and 33) in the child while it shares the agent's
   * memory, unless the default set names them, and an ignored signal stays ignored across exec;
   * sigfillset and sigaddset leave them out, so their bits are set directly (glibc's sigset_t: bit
   * n-1 of an array of unsigned long). ProcessBuilder's children get them at their default too.
   */
  for (int sig = 32; sig <= 33; sig++) {
    all.__val[(sig - 1) / (8 * sizeof(unsigned long))] |= 1UL
                                                          << ((sig - 1) % (8 * sizeof(unsigned long)));
  }
#endif
  if ((rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
      (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
      (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF)) != 0) {
    goto fail;
  }
  rc = posix_spawn(&pid, file, &fa, &attr, args, environ_);
  if (rc == ENOEXEC) {
    /* execvp's rule for a file without a #! line: /bin/sh file args... */
    size_t n = 0;
    while (args[n] != NULL) {
      n++;
    }
    sh_args = calloc(n + 2, sizeof(char *));
    if (sh_args == NULL) {
      rc = ENOMEM;
      pid = -1;
      goto fail;
    }
    sh_args[0] = "/bin/sh";
    sh_args[1] = file;
    for (size_t i = 1; i < n; i++) {
      sh_args[i + 1] = args[i];
    }
    rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, sh_args, environ_);
  }
  if (rc != 0) {
    pid = -1;
    goto fail;
  }
  jobject fin = file_descriptor(env, in[1]);
  jobject fout = fin == NULL ? NULL : file_descriptor(env, out[0]);
  jobject ferr = fout == NULL ? NULL : file_descriptor(env, err[0]);
  if (ferr == NULL) {
    /* cannot hand the pipes over: the child is started; kill its group, reap it, close all */
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    rc = ENOMEM;
    what = "spawn";
    (*env)->ExceptionClear(env);
    goto fail;
  }
  (*env)->SetObjectArrayElement(env, fds, 0, fin);
  (*env)->SetObjectArrayElement(env, fds, 1, fout);
  (*env)->SetObjectArrayElement(env, fds, 2, ferr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  goto done;
fail:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0) close(in[i]);
    if (out[i] >= 0) close(out[i]);
    if (err[i] >= 0) close(err[i]);
  }
  throw_io(env, what, rc);
done:
  if (attr_ok) {
    posix_spawnattr_destroy(&attr);
  }
  if (fa_ok) {
    posix_spawn_file_actions_destroy(&fa);
  }
  free(sh_args); /* its strings belong to args and file */
  free(dir);
  free(file);
  free_strings(args);
  free_strings(environ_);
  return (jlong)pid;
}

/*
 * Waits for the process pid (a child of the agent started by spawn) to end, without reaping it (its
 * pid stays the agent's until reap_pid, so a signal sent meanwhile cannot reach another process):
 * its exit code, or 128 + the signal that ended it (as java.lang.Process says); -errno if it cannot
 * wait.
 */
static jint wait_pid(JNIEnv *env, jclass cls, jlong pid) {
  (void)env;
  (void)cls;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0) {
    if (errno != EINTR) {
      return -errno;
    }
  }
  return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

/*
 * Whether the child pid (not yet reaped) has ended, without waiting or reaping: 1 or 0, -errno if
 * it cannot tell. The kernel's own answer, as its pidfd gives it: a process whose main thread has
 * exited while other threads run on has not ended (its /proc stat says Z meanwhile).
 */
static jint ended_pid(JNIEnv *env, jclass cls, jlong pid) {
  (void)env;
  (void)cls;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
    if (errno != EINTR) {
      return -errno;
    }
  }
  return info.si_pid != 0 ? 1 : 0;
}

/* Reaps the ended child pid (after wait_pid). Returns 0 or -errno. */
static jint reap_pid(JNIEnv *env, jclass cls, jlong pid) {
  (void)env;
  (void)cls;
  while (waitpid((pid_t)pid, NULL, WNOHANG) < 0) {
    if (errno != EINTR) {
      return -errno;
    }
  }
  return 0;
}

/* A regular file that this process may execute (execvp's test, with links followed). */
static int runnable(const char *file) {
  struct stat st;
  return stat(file, &st) == 0 && S_ISREG(st.st_mode) && access(file, X_OK) == 0;
}

/*
 * The file execvp would run for the command name in the search path, looked up from the absolute
 * working directory cwd (relative PATH entries, and "" as "."): the command's lookup in one call,
 * where the agent's Java lookup pays a stat and several objects per directory in the interpreter.
 * Returns its path, or an empty array when there is none to run or cwd is not a searchable
 * directory: the agent then looks again in Java to say what is wrong.
 */
static jbyteArray find_command(JNIEnv *env, jclass cls, jbyteArray cwdb, jbyteArray nameb,
                               jbyteArray pathb) {
  (void)cls;
  char *cwd = string(env, cwdb);
  char *name = cwd == NULL ? NULL : string(env, nameb);
  char *path = name == NULL ? NULL : string(env, pathb);
  char *found = NULL;
  struct stat st;
  if (path == NULL) {
    goto done;
  }
  size_t lc = strlen(cwd), ln = strlen(name), lp = strlen(path);
  /* a NUL inside would cut a name short: the Java lookup refuses those */
  if (lc != (size_t)(*env)->GetArrayLength(env, cwdb) ||
      ln != (size_t)(*env)->GetArrayLength(env, nameb) ||
      lp != (size_t)(*env)->GetArrayLength(env, pathb) || cwd[0] != '/' || ln == 0 ||
      stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode) || access(cwd, X_OK) != 0) {
    goto done;
  }
  size_t cap = lc + lp + ln + 8; /* cwd/dir/name and cwd/./name fit, with room to spare */
  char *buf = malloc(cap);
  if (buf == NULL) {
    goto done;
  }
  if (strchr(name, '/') != NULL) { /* a path: no search, as execvp */
    if (name[0] == '/') {
      memcpy(buf, name, ln + 1);
    } else {
      snprintf(buf, cap, "%s/%s", cwd, name);
    }
    if (runnable(buf)) {
      found = buf;
    }
  } else {
    for (const char *d = path;; d++) {
      const char *end = strchr(d, ':');
      size_t ld = end == NULL ? strlen(d) : (size_t)(end - d);
      if (ld == 0) {
        snprintf(buf, cap, "%s/./%s", cwd, name);
      } else if (d[0] == '/') {
        snprintf(buf, cap, "%.*s/%s", (int)ld, d, name);
      } else {
        snprintf(buf, cap, "%s/%.*s/%s", cwd, (int)ld, d, name);
      }
      if (runnable(buf)) {
        found = buf;
        break;
      }
      if (end == NULL) {
        break;
      }
      d = end;
    }
  }
  if (found == NULL) {
    free(buf);
  }
done:
  free(path);
  free(name);
  free(cwd);
  if ((*env)->ExceptionCheck(env)) {
    free(found);
    return NULL; /* out of memory, already thrown */
  }
  jsize n = found == NULL ? 0 : (jsize)strlen(found);
  jbyteArray r = (*env)->NewByteArray(env, n);
  if (r != NULL && n > 0) {
    (*env)->SetByteArrayRegion(env, r, 0, n, (const jbyte *)found);
  }
  free(found);
  return r;
}

/* The descriptor inside a java.io.FileDescriptor (JNI reads the private field as the JDK does). */
static jfieldID FD_FIELD; /* java.io.FileDescriptor.fd, looked up in JNI_OnLoad */

static int fd_of(JNIEnv *env, jobject fdo) {
  return (*env)->GetIntField(env, fdo, FD_FIELD);
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

/*
 * A descriptor that becomes readable when the child pid ends (Linux 5.3 and later), so that one
 * thread can wait for a command's end and its output at once. Returns it, or -errno (ENOSYS on an
 * older kernel: the agent then watches the command with threads).
 */
static jint pidfd_open(JNIEnv *env, jclass cls, jlong pid) {
  (void)env;
  (void)cls;
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (fd < 0) {
    return -errno;
  }
  if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) { /* pidfd_open sets it too; a spawn never sees it */
    int err = errno;
    close((int)fd);
    return -err;
  }
  return (jint)fd;
}

/* Closes a descriptor that pidfd_open gave. 0 or -errno. */
static jint close_fd(JNIEnv *env, jclass cls, jint fd) {
  (void)env;
  (void)cls;
  return close(fd) < 0 ? -errno : 0;
}

/*
 * Waits until a command's stdout or stderr (closed ones, fd -1, are left out) has bytes or has
 * ended, or its pidfd (-1: left out) says it ended, or timeout_ms passed (-1: no limit). Returns
 * the bits of what is ready (1 stdout, 2 stderr, 4 the process ended), 0 at the timeout or an
 * interrupt, or -errno.
 */
static jint await_command(JNIEnv *env, jclass cls, jobject out, jobject err, jint pidfd,
                          jint timeout_ms) {
  (void)cls;
  struct pollfd p[3] = {
      {.fd = fd_of(env, out), .events = POLLIN, .revents = 0},
      {.fd = fd_of(env, err), .events = POLLIN, .revents = 0},
      {.fd = pidfd, .events = POLLIN, .revents = 0},
  };
  int n = poll(p, 3, timeout_ms < 0 ? -1 : timeout_ms); /* a negative fd is skipped */
  if (n < 0) {
    return errno == EINTR ? 0 : -errno;
  }
  jint ready = 0;
  for (int i = 0; i < 3; i++) {
    if (p[i].revents != 0) { /* POLLIN, or an end (POLLHUP), an error or a bad descriptor */
      ready |= 1 << i;
    }
  }
  return ready;
}

/* Throws ArrayIndexOutOfBoundsException unless [off, off + len) lies within b. */
static int check_range(JNIEnv *env, jbyteArray b, jint off, jint len) {
  if (off < 0 || len < 0 || off > (*env)->GetArrayLength(env, b) - len) {
    jclass e = (*env)->FindClass(env, "java/lang/ArrayIndexOutOfBoundsException");
    if (e != NULL) {
      (*env)->ThrowNew(env, e, "range outside the array");
    }
    return 0;
  }
  return 1;
}

/*
 * Reads from fdo into buf[off, off + len): waits for the first bytes, then, when they filled a
 * whole page, takes whatever else is ready without waiting. A virtio-serial port hands over one
 * page-sized buffer per read, so during a transfer the agent's port reader gets 64 KiB in one call
 * instead of 16. It polls only while data is queued and the host is there: a port whose host is
 * away reports POLLIN (a read returns 0), and a read there waits for data if the host comes back
 * meanwhile, holding what was read (5 of 33 restored guests answered their first HELLO only at the
 * host's retry, 3 s later, when every read was followed by such a poll). A first read shorter than
 * a page (a request, a HELLO) is returned at once.
 * Returns the count, or -1 at end of stream.
 */
static jint read_available(JNIEnv *env, jclass cls, jobject fdo, jbyteArray buf, jint off,
                           jint len) {
  (void)cls;
  if (!check_range(env, buf, off, len)) {
    return -1; /* checked before a byte is taken from the port */
  }
  int fd = fd_of(env, fdo);
  if (fd < 0) {
    throw_io(env, "read of a closed descriptor", EBADF);
    return -1;
  }
  if (len <= 0) {
    return 0;
  }
  char *tmp = malloc((size_t)len);
  if (tmp == NULL) {
    throw_io(env, "read", ENOMEM);
    return -1;
  }
  ssize_t n;
  do {
    n = read(fd, tmp, (size_t)len); /* waits, holding nothing of the JVM's */
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    int err = errno;
    free(tmp);
    if (n < 0) {
      throw_io(env, "read", err);
    }
    return -1;
  }
  jint total = (jint)n;
  long page = sysconf(_SC_PAGESIZE);
  while (total < len && page > 0 && n >= page) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    /*
     * POLLIN with POLLHUP is a port whose host is away: its read returns 0 now, but waits for
     * data if the host comes back in between, with these bytes held here.
     */
    if (poll(&p, 1, 0) != 1 || (p.revents & POLLIN) == 0 ||
        (p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
      break;
    }
    n = read(fd, tmp + total, (size_t)(len - total));
    if (n <= 0) {
      break; /* an end or error shows again at the next call */
    }
    total += (jint)n;
  }
  (*env)->SetByteArrayRegion(env, buf, off, total, (const jbyte *)tmp);
  free(tmp);
  return total;
}

/*
 * SHA-256 (FIPS 180-4), fed as a file's chunks arrive, so that a PUT_FILE is checked without
 * reading the file back or starting sha256sum. The state lives in a direct buffer the caller owns
 * (SHA_STATE_SIZE bytes), so nothing is left to free.
 */
typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
} sha_state;

#define SHA_STATE_SIZE ((jint)sizeof(sha_state))

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/*
 * Not vectorised: TCG runs SSE instructions through helper calls, and gcc's vectorised message
 * schedule made 20 MB take 540-680 ms in a guest against 460-480 ms without (same guest).
 */
__attribute__((optimize("no-tree-vectorize"))) static void sha_blocks(uint32_t h[8],
                                                                       const uint8_t *p,
                                                                       size_t blocks) {
  uint32_t w[64];
  while (blocks-- > 0) {
    for (int i = 0; i < 16; i++) {
      w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
             (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
      uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
      uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      k = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
    p += 64;
  }
}

static sha_state *sha_of(JNIEnv *env, jobject state) {
  if ((*env)->GetDirectBufferCapacity(env, state) < SHA_STATE_SIZE) {
    jclass iae = (*env)->FindClass(env, "java/lang/IllegalArgumentException");
    if (iae != NULL) {
      (*env)->ThrowNew(env, iae, "SHA-256 state: not a direct buffer of shaStateSize() bytes");
    }
    return NULL;
  }
  return (sha_state *)(*env)->GetDirectBufferAddress(env, state);
}

/* Starts a hash in state (a direct buffer of at least shaStateSize() bytes). */
static void sha_init(JNIEnv *env, jclass cls, jobject state) {
  (void)cls;
  sha_state *s = sha_of(env, state);
  if (s == NULL) {
    return;
  }
  memcpy(s->h, H0, sizeof H0);
  s->bytes = 0;
}

/* Adds b[off, off + len) to the hash in state (the caller has checked the bounds). */
static void sha_update(JNIEnv *env, jclass cls, jobject state, jbyteArray b, jint off, jint len) {
  (void)cls;
  sha_state *s = sha_of(env, state);
  if (s == NULL || !check_range(env, b, off, len) || len == 0) {
    return;
  }
  /* critical: no copy; held only for the hashing of one chunk, which never waits */
  uint8_t *data = (*env)->GetPrimitiveArrayCritical(env, b, NULL);
  if (data == NULL) {
    return; /* OutOfMemoryError pending */
  }
  const uint8_t *p = data + off;
  size_t n = (size_t)len;
  size_t used = (size_t)(s->bytes % 64);
  s->bytes += n;
  if (used > 0) {
    size_t take = 64 - used < n ? 64 - used : n;
    memcpy(s->block + used, p, take);
    p += take;
    n -= take;
    if (used + take < 64) {
      goto out;
    }
    sha_blocks(s->h, s->block, 1);
  }
  sha_blocks(s->h, p, n / 64);
  memcpy(s->block, p + (n / 64) * 64, n % 64);
out:
  (*env)->ReleasePrimitiveArrayCritical(env, b, data, JNI_ABORT);
}

/* Pads and ends the hash in s, its 32 bytes into out. */
static void sha_finish(sha_state *s, JNIEnv *env, jbyteArray out) {
  size_t used = (size_t)(s->bytes % 64);
  uint64_t bits = s->bytes * 8;
  s->block[used++] = 0x80;
  if (used > 56) {
    memset(s->block + used, 0, 64 - used);
    sha_blocks(s->h, s->block, 1);
    used = 0;
  }
  memset(s->block + used, 0, 56 - used);
  for (int i = 0; i < 8; i++) {
    s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  }
  sha_blocks(s->h, s->block, 1);
  uint8_t digest[32];
  for (int i = 0; i < 8; i++) {
    digest[4 * i] = (uint8_t)(s->h[i] >> 24);
    digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    digest[4 * i + 3] = (uint8_t)s->h[i];
  }
  (*env)->SetByteArrayRegion(env, out, 0, 32, (const jbyte *)digest);
}

/* Ends the hash in state: its 32 bytes into out (state is spent). */
static void sha_final(JNIEnv *env, jclass cls, jobject state, jbyteArray out) {
  (void)cls;
  sha_state *s = sha_of(env, state);
  if (s != NULL) {
    sha_finish(s, env, out);
  }
}

/*
 * SHA-256 of the file at path (followed through links, as open does), its 32 bytes into digest:
 * GET_FILE hashes before it sends, without starting sha256sum.
 */
static void sha_file(JNIEnv *env, jclass cls, jbyteArray path, jbyteArray digest) {
  (void)cls;
  char *name = string(env, path);
  if (name == NULL) {
    return;
  }
  /* O_NONBLOCK: a FIFO swapped in since the caller's check must not hang the open */
  int fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    close(fd);
    char msg[64];
    snprintf(msg, sizeof msg, "not a regular file: %.40s", name);
    throw_io(env, msg, EINVAL);
    free(name);
    return;
  }
  if (fd < 0) {
    throw_io(env, name, errno);
    free(name);
    return;
  }
  const size_t size = 256 * 1024;
  uint8_t *buf = malloc(size);
  sha_state s;
  memcpy(s.h, H0, sizeof H0);
  s.bytes = 0;
  int err = buf == NULL ? ENOMEM : 0;
  size_t used = 0; /* bytes in buf not yet hashed: less than one block */
  while (err == 0) {
    ssize_t n = read(fd, buf + used, size - used);
    if (n < 0) {
      if (errno != EINTR) {
        err = errno;
      }
      continue;
    }
    if (n == 0) {
      break;
    }
    s.bytes += (uint64_t)n;
    used += (size_t)n;
    sha_blocks(s.h, buf, used / 64);
    memmove(buf, buf + (used / 64) * 64, used % 64);
    used %= 64;
  }
  close(fd);
  if (err != 0) {
    throw_io(env, name, err);
  } else {
    memcpy(s.block, buf, used);
    sha_finish(&s, env, digest);
  }
  free(buf);
  free(name);
}

static jint sha_state_size(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return SHA_STATE_SIZE;
}

static const JNINativeMethod METHODS[] = {
    {"setClock", "(J)I", (void *)set_clock},
    {"spawn", "([B[[B[[B[B[Ljava/io/FileDescriptor;)J", (void *)spawn},
    {"waitPid", "(J)I", (void *)wait_pid},
    {"reapPid", "(J)I", (void *)reap_pid},
    {"endedPid", "(J)I", (void *)ended_pid},
    {"readAvailable", "(Ljava/io/FileDescriptor;[BII)I", (void *)read_available},
    {"pidfdOpen", "(J)I", (void *)pidfd_open},
    {"findCommand", "([B[B[B)[B", (void *)find_command},
    {"closeFd", "(I)I", (void *)close_fd},
    {"awaitCommand", "(Ljava/io/FileDescriptor;Ljava/io/FileDescriptor;II)I",
     (void *)await_command},
    {"shaStateSize", "()I", (void *)sha_state_size},
    {"shaInit", "(Ljava/nio/ByteBuffer;)V", (void *)sha_init},
    {"shaUpdate", "(Ljava/nio/ByteBuffer;[BII)V", (void *)sha_update},
    {"shaFinal", "(Ljava/nio/ByteBuffer;[B)V", (void *)sha_final},
    {"shaFile", "([B[B)V", (void *)sha_file},
};

/*
 * Binds the methods when the library is loaded, not at their first call: a library that does not
 * match the agent's class fails System.load, which the agent survives (it goes on without it),
 * instead of failing a call in the middle of a HELLO.
 */
JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
  (void)reserved;
  JNIEnv *env;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) {
    return JNI_ERR;
  }
  jclass fdc = (*env)->FindClass(env, "java/io/FileDescriptor");
  FD_FIELD = fdc == NULL ? NULL : (*env)->GetFieldID(env, fdc, "fd", "I");
  if (FD_FIELD == NULL) {
    (*env)->ExceptionClear(env);
    return JNI_ERR;
  }
  jclass cls = (*env)->FindClass(env, "dev/agentvm/guest/agent/NativeHelpers");
  if (cls == NULL ||
      (*env)->RegisterNatives(env, cls, METHODS, sizeof(METHODS) / sizeof(METHODS[0])) != 0) {
    (*env)->ExceptionClear(env); /* System.load then throws UnsatisfiedLinkError */
    return JNI_ERR;
  }
  return JNI_VERSION_1_8;
}
