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
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const JNINativeMethod METHODS[] = {
    {"setClock", "(J)I", (void *)set_clock},
    {"spawn", "([B[[B[[B[B[Ljava/io/FileDescriptor;)J", (void *)spawn},
    {"waitPid", "(J)I", (void *)wait_pid},
    {"reapPid", "(J)I", (void *)reap_pid},
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
  jclass cls = (*env)->FindClass(env, "dev/agentvm/guest/agent/NativeHelpers");
  if (cls == NULL ||
      (*env)->RegisterNatives(env, cls, METHODS, sizeof(METHODS) / sizeof(METHODS[0])) != 0) {
    (*env)->ExceptionClear(env); /* System.load then throws UnsatisfiedLinkError */
    return JNI_ERR;
  }
  return JNI_VERSION_1_8;
}
