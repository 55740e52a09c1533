/*
 * The guest agent's native library (libagentvm-guest.so). MicroImageBuilder compiles it with the
 * host's cc and puts it in the micro image; the agent loads it at start through the system property
 * agentvm.guest.native (dev.agentvm.guest.agent.NativeHelpers). Without it the agent works the same,
 * only slower where it would have used it.
 */
#include <errno.h>
#include <jni.h>
#include <time.h>

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

static const JNINativeMethod METHODS[] = {
    {"setClock", "(J)I", (void *)set_clock},
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
