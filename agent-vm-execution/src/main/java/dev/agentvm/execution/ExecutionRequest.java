package dev.agentvm.execution;

import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.storage.OutputLimits;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.UUID;
import org.jspecify.annotations.Nullable;

/**
 * What to run in a fresh VM: code (a script for an interpreter, or a command), input files,
 * environment, limits. Immutable; make one with {@link #script} or {@link #command}.
 *
 * <pre>{@code
 * ExecutionRequest r = ExecutionRequest.script("wc -w < /workspace/input/text.txt", "sh")
 *     .input("text.txt", "the quick brown fox".getBytes())
 *     .secretEnv("API_TOKEN", token)            // never written to the audit log
 *     .timeout(Duration.ofSeconds(30))
 *     .build();
 * }</pre>
 *
 * <p>In the guest the code runs in {@code /workspace/work}; input files are under {@code
 * /workspace/input} (read-only), and what it writes to {@code /workspace/output} is brought back.
 *
 * @param id unique id, used in logs, metrics and the audit log
 * @param argv the command, or the interpreter the script is given to
 * @param script script text, or empty for a plain command
 * @param inputs files put into {@code /workspace/input} before the run
 * @param env environment variables
 * @param secretEnv environment variables whose values are never logged or audited
 * @param stdin bytes fed to standard input
 * @param timeout run time limit; the whole process tree is stopped when it passes
 * @param outputLimit bytes kept of stdout and of stderr each (the rest is dropped and flagged)
 * @param outputFiles limits for the files extracted from {@code /workspace/output}
 * @param outputDirectory where extracted files go, or empty for the executor's default
 * @param listener sees stdout and stderr as they arrive
 */
// stdin is a byte[] in the public API; the builder copies it in and nothing compares requests
@SuppressWarnings("ArrayRecordComponent")
public record ExecutionRequest(
    String id,
    List<String> argv,
    String script,
    List<InputFile> inputs,
    Map<String, String> env,
    Map<String, String> secretEnv,
    byte[] stdin,
    Duration timeout,
    long outputLimit,
    OutputLimits outputFiles,
    Optional<Path> outputDirectory,
    OutputListener listener) {

  /**
   * Run time limit of a request that sets none: 5 minutes. Every execution has a limit (it must be
   * positive); the whole process tree is stopped when it passes.
   */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);

  /** Default bytes kept per output stream. */
  public static final long DEFAULT_OUTPUT_LIMIT = 1L << 20;

  /**
   * A file to put into the workspace's input directory: its content or a host file.
   *
   * @param path relative path under {@code /workspace/input}
   * @param content the bytes, or {@code null} if {@code source} is given
   * @param source a host file, or {@code null}
   */
  // content is a byte[] in the public API; the builder copies it in and nothing compares inputs
  @SuppressWarnings("ArrayRecordComponent")
  public record InputFile(String path, byte @Nullable [] content, @Nullable Path source) {
    public InputFile {
      dev.agentvm.storage.GuestPaths.requireRelative(path);
      if ((content == null) == (source == null)) {
        throw new IllegalArgumentException("give exactly one of content and source for " + path);
      }
    }
  }

  public ExecutionRequest {
    Objects.requireNonNull(id, "id");
    // the id names a host directory (<output root>/<id>) and appears in logs and audit records
    if (!id.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")) {
      throw new IllegalArgumentException(
          "id must be a plain name of letters, digits, '.', '_' and '-' (at most 128, not"
              + " starting with '.' or '-'), was '"
              + id
              + "'");
    }
    argv = List.copyOf(argv);
    inputs = List.copyOf(inputs);
    env = Map.copyOf(env);
    secretEnv = Map.copyOf(secretEnv);
    Objects.requireNonNull(script, "script");
    Objects.requireNonNull(stdin, "stdin");
    Objects.requireNonNull(timeout, "timeout");
    Objects.requireNonNull(outputFiles, "outputFiles");
    Objects.requireNonNull(outputDirectory, "outputDirectory");
    Objects.requireNonNull(listener, "listener");
    if (argv.isEmpty()) {
      throw new IllegalArgumentException("argv must not be empty");
    }
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive, was " + timeout);
    }
    if (outputLimit < 0) {
      throw new IllegalArgumentException("outputLimit must be >= 0, was " + outputLimit);
    }
    for (String k : secretEnv.keySet()) {
      if (env.containsKey(k)) {
        throw new IllegalArgumentException("variable " + k + " is both in env and in secretEnv");
      }
    }
  }

  /** A script run by an interpreter command, e.g. {@code script(code, "python3", "-u")}. */
  public static Builder script(String script, String... interpreter) {
    Builder b = new Builder(interpreter.length == 0 ? List.of("sh") : List.of(interpreter));
    b.script = Objects.requireNonNull(script, "script");
    return b;
  }

  /**
   * Python code, run the way seed 003's executor runs it: written to {@code
   * /workspace/input/agent.py} and run by {@code python3} in {@code /workspace/work}. Needs an
   * image flavour with python3 ({@code MicroImage.PYTHON}).
   */
  public static Builder python(String code) {
    return command("python3", "-u", "/workspace/input/agent.py")
        .input("agent.py", Objects.requireNonNull(code, "code").getBytes(StandardCharsets.UTF_8));
  }

  /** A command run directly, e.g. {@code command("python3", "/workspace/input/agent.py")}. */
  public static Builder command(String... argv) {
    return new Builder(List.of(argv));
  }

  /** All environment variables, secret ones included, for the guest. */
  public Map<String, String> allEnv() {
    Map<String, String> all = new LinkedHashMap<>(env);
    all.putAll(secretEnv);
    return all;
  }

  @Override
  public String toString() {
    return "ExecutionRequest{"
        + id
        + ", "
        + argv
        + (script.isEmpty() ? "" : " + script of " + script.length() + " chars")
        + ", "
        + inputs.size()
        + " inputs, env "
        + env.keySet()
        + ", secret "
        + secretEnv.keySet()
        + ", timeout "
        + timeout.toMillis()
        + " ms}";
  }

  /** Builds {@link ExecutionRequest}s. */
  public static final class Builder {
    private String id = "exec-" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    private final List<String> argv;
    private String script = "";
    private final List<InputFile> inputs = new ArrayList<>();
    private final Map<String, String> env = new LinkedHashMap<>();
    private final Map<String, String> secretEnv = new LinkedHashMap<>();
    private byte[] stdin = new byte[0];
    private Duration timeout = DEFAULT_TIMEOUT;
    private long outputLimit = DEFAULT_OUTPUT_LIMIT;
    private OutputLimits outputFiles = OutputLimits.DEFAULT;
    private @Nullable Path outputDirectory;
    private OutputListener listener = OutputListener.NONE;

    private Builder(List<String> argv) {
      this.argv = argv;
    }

    public Builder id(String id) {
      this.id = Objects.requireNonNull(id, "id");
      return this;
    }

    public Builder input(String path, byte[] content) {
      inputs.add(new InputFile(path, content.clone(), null));
      return this;
    }

    public Builder input(String path, Path source) {
      inputs.add(new InputFile(path, null, source));
      return this;
    }

    public Builder env(String name, String value) {
      env.put(name, value);
      return this;
    }

    public Builder env(Map<String, String> vars) {
      env.putAll(vars);
      return this;
    }

    /** A variable whose value is never written to logs or the audit log. */
    public Builder secretEnv(String name, String value) {
      secretEnv.put(name, value);
      return this;
    }

    public Builder stdin(byte[] stdin) {
      this.stdin = stdin.clone();
      return this;
    }

    /** The run time limit (positive); default {@link #DEFAULT_TIMEOUT}, 5 min. */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    public Builder outputLimit(long bytes) {
      this.outputLimit = bytes;
      return this;
    }

    public Builder outputFiles(OutputLimits limits) {
      this.outputFiles = limits;
      return this;
    }

    public Builder outputDirectory(Path dir) {
      this.outputDirectory = dir;
      return this;
    }

    public Builder listener(OutputListener listener) {
      this.listener = listener;
      return this;
    }

    public ExecutionRequest build() {
      return new ExecutionRequest(
          id,
          argv,
          script,
          inputs,
          env,
          secretEnv,
          stdin,
          timeout,
          outputLimit,
          outputFiles,
          Optional.ofNullable(outputDirectory),
          listener);
    }
  }
}
