package dev.agentvm.langchain4j;

import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.protocol.FsEntry;
import dev.langchain4j.agent.tool.P;
import dev.langchain4j.agent.tool.Tool;
import dev.langchain4j.agent.tool.ToolMemoryId;
import dev.langchain4j.code.CodeExecutionEngine;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs model-written code in agent-vm sandboxes, as a LangChain4j tool ({@link #runCode}) and as a
 * {@link CodeExecutionEngine}. Each call gets a fresh sandbox, closed after it; or, with {@link
 * Builder#perConversation(boolean)}, each conversation (LangChain4j's memory id) keeps one sandbox,
 * so files written in one call are there in the next, until {@link #endConversation} or {@link
 * #close()}.
 *
 * <pre>{@code
 * try (Sandboxes sandboxes = Sandboxes.open(conn);
 *     SandboxCodeTool tool = SandboxCodeTool.builder(sandboxes)
 *         .spec(SandboxSpec.defaults().withImage(pythonImage))
 *         .perConversation(true)
 *         .build()) {
 *   Assistant a = AiServices.builder(Assistant.class).chatModel(model).tools(tool)
 *       .chatMemoryProvider(id -> MessageWindowChatMemory.withMaxMessages(20)).build();
 * }
 * }</pre>
 *
 * <p>What the model gets back is bounded ({@link Builder#maxOutputChars}): the exit code, then
 * standard output and standard error, each cut with a note when longer, and the files in {@code
 * /workspace}. A failure of the sandbox itself is reported to the model as text as well, never
 * thrown into the model's loop.
 */
public final class SandboxCodeTool implements CodeExecutionEngine, AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(SandboxCodeTool.class);

  /** The largest program the tool accepts (it travels in one protocol frame). */
  public static final int MAX_CODE_CHARS = 256 * 1024;

  private static final Object DEFAULT_CONVERSATION = "default";

  private final Sandboxes sandboxes;
  private final SandboxSpec spec;
  private final List<String> interpreter;
  private final Duration timeout;
  private final int maxOutputChars;
  private final boolean perConversation;
  private final Map<Object, Sandbox> conversations = new ConcurrentHashMap<>();
  private volatile boolean closed;

  private SandboxCodeTool(Builder b) {
    this.sandboxes = b.sandboxes;
    this.spec = b.spec;
    this.interpreter = List.copyOf(b.interpreter);
    this.timeout = b.timeout;
    this.maxOutputChars = b.maxOutputChars;
    this.perConversation = b.perConversation;
  }

  public static Builder builder(Sandboxes sandboxes) {
    return new Builder(sandboxes);
  }

  /** The tool the model calls. */
  @Tool(
      name = "runCode",
      value =
          "Runs a program in an isolated virtual machine (Python 3 unless told otherwise) and returns"
              + " its exit code, what it printed to stdout and stderr, and the files in /workspace."
              + " Print the results you need. Files written to /workspace stay for this"
              + " conversation when the sandbox is kept per conversation.")
  public String runCode(
      @ToolMemoryId @Nullable Object conversation,
      @P(name = "code", value = "the complete source code of the program to run") String code) {
    return run(conversation == null ? DEFAULT_CONVERSATION : conversation, code);
  }

  /** Runs {@code code} as {@link #runCode} does, in the default conversation. */
  @Override
  public String execute(String code) {
    return run(DEFAULT_CONVERSATION, code);
  }

  private String run(Object conversation, String code) {
    if (closed) {
      return "error: the code tool is closed";
    }
    if (code.length() > MAX_CODE_CHARS) {
      return "error: the program is longer than " + MAX_CODE_CHARS + " characters";
    }
    Sandbox sb = null;
    boolean kept = perConversation;
    try {
      sb = kept ? conversations.computeIfAbsent(conversation, c -> create()) : create();
      ExecResult r =
          sb.exec(
              ExecRequest.script(code, interpreter.toArray(String[]::new))
                  .withCwd("/workspace")
                  .withTimeout(timeout)
                  .withOutputLimit(maxOutputChars * 4L));
      return describe(sb, r);
    } catch (IOException | RuntimeException e) {
      LOG.warn("running model code in a sandbox failed", e);
      if (kept && sb != null) {
        endConversation(conversation); // a broken sandbox is not handed out again
      }
      return "error: the sandbox failed: " + e.getMessage();
    } finally {
      if (!kept && sb != null) {
        sb.close();
      }
    }
  }

  private Sandbox create() {
    return sandboxes.create(spec);
  }

  private String describe(Sandbox sb, ExecResult r) throws IOException {
    StringBuilder out = new StringBuilder();
    if (r.timedOut()) {
      out.append("timed out after ").append(timeout.toSeconds()).append(" s\n");
    }
    out.append("exit code: ").append(r.exitCode()).append('\n');
    int budget = maxOutputChars;
    budget = section(out, "stdout", r.stdout(), r.stdoutTruncated(), budget);
    section(out, "stderr", r.stderr(), r.stderrTruncated(), Math.max(budget, maxOutputChars / 4));
    List<String> files = new ArrayList<>();
    for (FsEntry e : sb.files().list("/workspace")) {
      if (files.size() == 50) {
        files.add("...");
        break;
      }
      files.add(e.name() + (e.kind() == FsEntry.Kind.DIRECTORY ? "/" : " (" + e.size() + " B)"));
    }
    out.append("files in /workspace: ").append(files.isEmpty() ? "none" : files).append('\n');
    return out.toString();
  }

  private static int section(
      StringBuilder out, String name, byte[] bytes, boolean truncated, int budget) {
    String text = new String(bytes, StandardCharsets.UTF_8);
    boolean cut = truncated || text.length() > budget;
    if (text.length() > budget) {
      text = text.substring(0, Math.max(0, budget));
    }
    out.append(name).append(":\n").append(text);
    if (!text.endsWith("\n")) {
      out.append('\n');
    }
    if (cut) {
      out.append("[").append(name).append(" cut: print less]\n");
    }
    return budget - text.length();
  }

  /** The sandbox kept for {@code conversation}, if there is one (to read its files). */
  public java.util.Optional<Sandbox> sandbox(Object conversation) {
    return java.util.Optional.ofNullable(conversations.get(conversation));
  }

  /** Closes the sandbox kept for {@code conversation}. */
  public void endConversation(Object conversation) {
    Sandbox sb = conversations.remove(conversation);
    if (sb != null) {
      sb.close();
    }
  }

  /** Closes every kept sandbox; later calls answer with an error. */
  @Override
  public void close() {
    closed = true;
    for (Object c : List.copyOf(conversations.keySet())) {
      try {
        endConversation(c);
      } catch (RuntimeException e) {
        LOG.warn("closing the sandbox of a conversation failed", e);
      }
    }
  }

  /** Builds a {@link SandboxCodeTool}. */
  public static final class Builder {
    private final Sandboxes sandboxes;
    private SandboxSpec spec = SandboxSpec.defaults();
    private List<String> interpreter = List.of("python3");
    private Duration timeout = Duration.ofMinutes(1);
    private int maxOutputChars = 16 * 1024;
    private boolean perConversation;

    private Builder(Sandboxes sandboxes) {
      this.sandboxes = Objects.requireNonNull(sandboxes, "sandboxes");
    }

    /** The sandboxes' spec; its image must have the interpreter (the python flavour for Python). */
    public Builder spec(SandboxSpec s) {
      this.spec = Objects.requireNonNull(s, "spec");
      return this;
    }

    /** The command the program is given to as a file (default {@code python3}). */
    public Builder interpreter(String... command) {
      if (command.length == 0) {
        throw new IllegalArgumentException("an interpreter command is needed");
      }
      this.interpreter = List.of(command);
      return this;
    }

    /** How long one program may run (default 1 minute). */
    public Builder timeout(Duration t) {
      if (t.isNegative() || t.isZero()) {
        throw new IllegalArgumentException("timeout must be positive");
      }
      this.timeout = t;
      return this;
    }

    /** How much output the model gets back (default 16,384 characters). */
    public Builder maxOutputChars(int n) {
      if (n < 256) {
        throw new IllegalArgumentException("maxOutputChars must be at least 256");
      }
      this.maxOutputChars = n;
      return this;
    }

    /** Keep one sandbox per conversation (LangChain4j's memory id) instead of one per call. */
    public Builder perConversation(boolean keep) {
      this.perConversation = keep;
      return this;
    }

    public SandboxCodeTool build() {
      return new SandboxCodeTool(this);
    }
  }
}
