package dev.agentvm.core.agent;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A command for the guest agent to run. Make one with {@link #command(String...)} or {@link
 * #script(String, String...)}, then adjust with the {@code with*} methods.
 *
 * <pre>{@code
 * ExecRequest r = ExecRequest.script("echo hello; ls /", "sh").withTimeout(Duration.ofSeconds(30));
 * }</pre>
 *
 * @param argv the command, or the interpreter command for a script (the script's path is appended)
 * @param script script text; empty for a plain command
 * @param env extra environment variables
 * @param cwd working directory in the guest; empty for {@code /tmp}
 * @param stdin bytes for standard input (closed afterwards); at most {@link #MAX_STDIN}
 * @param timeout run time limit; {@link Duration#ZERO} (what {@link #command} and {@link #script}
 *     set) for the default of whatever runs it: {@link #DEFAULT_TIMEOUT} on an {@link AgentClient},
 *     the sandbox's command timeout in a sandbox. A command always has a limit: give a longer one
 *     for long work, or run it in the background ({@link AgentClient#spawn}).
 * @param outputLimit bytes kept per stream; more is dropped and flagged as truncated
 * @param killGrace time between TERM and KILL when the command is stopped
 */
@SuppressWarnings("ArrayRecordComponent") // stdin is copied in and out; equality is not used
public record ExecRequest(
    List<String> argv,
    String script,
    Map<String, String> env,
    String cwd,
    byte[] stdin,
    Duration timeout,
    long outputLimit,
    Duration killGrace) {
  /**
   * Run time limit of a command whose request sets none, on an {@link AgentClient}: 10 minutes. The
   * guest stops its whole process tree then (TERM, KILL after {@link #killGrace()}).
   */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

  /** Default per-stream output limit: 16 MiB. */
  public static final long DEFAULT_OUTPUT_LIMIT = 16L << 20;

  /** stdin travels in the EXEC frame, so it must fit in one (larger inputs: put a file). */
  public static final int MAX_STDIN = 512 * 1024;

  public ExecRequest {
    argv = List.copyOf(argv);
    Objects.requireNonNull(script, "script");
    env = Map.copyOf(env);
    Objects.requireNonNull(cwd, "cwd");
    stdin = Objects.requireNonNull(stdin, "stdin").clone();
    if (argv.isEmpty()) {
      throw new IllegalArgumentException("argv must not be empty");
    }
    if (stdin.length > MAX_STDIN) {
      throw new IllegalArgumentException(
          "stdin must be at most " + MAX_STDIN + " bytes, was " + stdin.length);
    }
    if (timeout.isNegative() || killGrace.isNegative()) {
      throw new IllegalArgumentException("timeout and killGrace must not be negative");
    }
    if (outputLimit < 0) {
      throw new IllegalArgumentException("outputLimit must be >= 0, was " + outputLimit);
    }
  }

  /** {@link #timeout()}, or {@link #DEFAULT_TIMEOUT} when it is zero (none given). */
  public Duration timeoutOrDefault() {
    return timeout.isZero() ? DEFAULT_TIMEOUT : timeout;
  }

  /** Bytes for standard input (a copy: at most {@link #MAX_STDIN}, so copying is cheap). */
  @Override
  public byte[] stdin() {
    return stdin.clone();
  }

  /** Runs {@code argv} directly, with the default timeout (see {@link #timeout()}). */
  public static ExecRequest command(String... argv) {
    return new ExecRequest(
        List.of(argv),
        "",
        Map.of(),
        "",
        new byte[0],
        Duration.ZERO,
        DEFAULT_OUTPUT_LIMIT,
        Duration.ofSeconds(2));
  }

  /**
   * Runs {@code script} with an interpreter command, e.g. {@code script("print(1)", "python3")},
   * with the default timeout (see {@link #timeout()}).
   */
  public static ExecRequest script(String script, String... interpreter) {
    return new ExecRequest(
        List.of(interpreter.length == 0 ? new String[] {"sh"} : interpreter),
        script,
        Map.of(),
        "",
        new byte[0],
        Duration.ZERO,
        DEFAULT_OUTPUT_LIMIT,
        Duration.ofSeconds(2));
  }

  public ExecRequest withEnv(Map<String, String> env) {
    return new ExecRequest(argv, script, env, cwd, stdin, timeout, outputLimit, killGrace);
  }

  public ExecRequest withCwd(String cwd) {
    return new ExecRequest(argv, script, env, cwd, stdin, timeout, outputLimit, killGrace);
  }

  public ExecRequest withStdin(byte[] stdin) {
    return new ExecRequest(argv, script, env, cwd, stdin, timeout, outputLimit, killGrace);
  }

  /** A copy with run time limit {@code timeout}; {@link Duration#ZERO}: the default. */
  public ExecRequest withTimeout(Duration timeout) {
    return new ExecRequest(argv, script, env, cwd, stdin, timeout, outputLimit, killGrace);
  }

  public ExecRequest withOutputLimit(long outputLimit) {
    return new ExecRequest(argv, script, env, cwd, stdin, timeout, outputLimit, killGrace);
  }

  public ExecRequest withKillGrace(Duration killGrace) {
    return new ExecRequest(argv, script, env, cwd, stdin, timeout, outputLimit, killGrace);
  }
}
