/**
 * Git tasks: {@link dev.agentvm.git.GitTaskRunner} runs an agent on a host repository's commit and
 * brings its commits back as a checked branch.
 */
package dev.agentvm.git;
