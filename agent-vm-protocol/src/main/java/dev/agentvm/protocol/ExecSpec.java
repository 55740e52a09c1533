package dev.agentvm.protocol;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What an EXEC runs. Either {@code argv} (run directly) or a {@code script} that the guest writes
 * to a temporary file and runs with {@code argv} as the interpreter command (e.g. {@code ["sh"]},
 * {@code ["python3", "-u"]}), the script's path appended.
 *
 * @param argv the command, or the interpreter for a script; not empty
 * @param script script text, or empty for a plain command
 * @param env extra environment variables
 * @param cwd working directory, or empty for the agent's default
 * @param stdin bytes fed to standard input, which is then closed
 * @param timeoutMillis run time limit, 0 for none
 * @param outputLimit bytes kept per stream (stdout, stderr); more is read and dropped, and flagged
 * @param killGraceMillis time between TERM and KILL when stopping the command's process group
 */
// ArrayRecordComponent: equals and hashCode below compare stdin by content, and stdin is copied in
// and out (stdin()), so the array component behaves like a value.
@SuppressWarnings("ArrayRecordComponent")
public record ExecSpec(
    List<String> argv,
    String script,
    Map<String, String> env,
    String cwd,
    byte[] stdin,
    long timeoutMillis,
    long outputLimit,
    long killGraceMillis) {
  public static final int MAX_ARGS = 4096;
  public static final int MAX_ENV = 4096;

  public ExecSpec {
    argv = List.copyOf(argv);
    env = Map.copyOf(env);
    stdin = stdin.clone(); // at most one frame, once per command: cheap next to starting it
    if (argv.isEmpty()) {
      throw new IllegalArgumentException("argv must not be empty");
    }
    if (argv.size() > MAX_ARGS || env.size() > MAX_ENV) {
      throw new IllegalArgumentException(
          "at most " + MAX_ARGS + " arguments and " + MAX_ENV + " variables");
    }
    if (timeoutMillis < 0 || outputLimit < 0 || killGraceMillis < 0) {
      throw new IllegalArgumentException(
          "timeoutMillis, outputLimit and killGraceMillis must be >= 0, were "
              + timeoutMillis
              + ", "
              + outputLimit
              + ", "
              + killGraceMillis);
    }
  }

  /** The bytes for standard input: a copy, so a caller cannot change this spec. */
  @Override
  public byte[] stdin() {
    return stdin.clone();
  }

  public byte[] encode() {
    PayloadWriter w = new PayloadWriter().u16(argv.size());
    argv.forEach(w::string);
    w.string(script).u16(env.size());
    new java.util.TreeMap<>(env).forEach((k, v) -> w.string(k).string(v));
    return w.string(cwd)
        .bytes(stdin)
        .i64(timeoutMillis)
        .i64(outputLimit)
        .i64(killGraceMillis)
        .toByteArray();
  }

  public static ExecSpec decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int argc = r.u16();
    if (argc == 0 || argc > MAX_ARGS) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "argc " + argc);
    }
    String[] argv = new String[argc];
    for (int i = 0; i < argc; i++) {
      argv[i] = r.string();
    }
    String script = r.string();
    int envc = r.u16();
    if (envc > MAX_ENV) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "env count " + envc);
    }
    Map<String, String> env = new LinkedHashMap<>();
    for (int i = 0; i < envc; i++) {
      env.put(r.string(), r.string());
    }
    ExecSpec s;
    try {
      s =
          new ExecSpec(
              List.of(argv), script, env, r.string(), r.bytes(), r.i64(), r.i64(), r.i64());
    } catch (IllegalArgumentException e) {
      // every argument comes from the reader, which never returns null: only IAE is possible
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
    r.end();
    return s;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ExecSpec e
        && argv.equals(e.argv)
        && script.equals(e.script)
        && env.equals(e.env)
        && cwd.equals(e.cwd)
        && java.util.Arrays.equals(stdin, e.stdin)
        && timeoutMillis == e.timeoutMillis
        && outputLimit == e.outputLimit
        && killGraceMillis == e.killGraceMillis;
  }

  @Override
  public int hashCode() {
    return argv.hashCode() * 31 + script.hashCode();
  }
}
