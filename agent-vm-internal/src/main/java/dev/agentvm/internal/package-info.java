/**
 * Helpers shared by agent-vm's host-side modules: file trees, file locks, threads, hashing,
 * settings and state paths.
 *
 * <p><b>Not API.</b> Anything here may change or disappear in any release; do not use it from your
 * own code. It exists so that each helper is written once.
 */
package dev.agentvm.internal;
