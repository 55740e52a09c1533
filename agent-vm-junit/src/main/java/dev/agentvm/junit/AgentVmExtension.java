package dev.agentvm.junit;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.Setting;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.platform.commons.support.AnnotationSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fills {@link AgentVm} fields with real VMs and removes them afterwards. Resources are kept in
 * JUnit's store, so they are closed even when a test or a callback fails; when a test fails, the
 * console logs of its VMs are copied to {@code target/agentvm-logs/} (or {@code
 * -Dagentvm.junit.logDir=...}) before the VMs go. VMs are named {@code agentvm-junit-...}; those of
 * a test JVM that was killed are reaped when the next connection opens.
 *
 * <p>Runs on JUnit Jupiter 5.10 and later and on 6: it calls only API that 5.10 has (the build runs
 * its tests on both lines, module {@code agent-vm-junit-jupiter5}).
 */
public final class AgentVmExtension
    implements BeforeAllCallback,
        AfterAllCallback,
        BeforeEachCallback,
        AfterEachCallback,
        ExecutionCondition {
  private static final Logger LOG = LoggerFactory.getLogger(AgentVmExtension.class);

  /** The most of a console log kept for a failed test: its end, where the failure is. */
  private static final int KEPT_LOG_BYTES = 8 << 20;

  private static final ExtensionContext.Namespace NS =
      ExtensionContext.Namespace.create(AgentVmExtension.class);
  private static final Duration AGENT = Duration.ofMinutes(2);

  /**
   * A value JUnit's store closes when its scope ends, on every supported JUnit line: 5.10 to 5.12
   * close only a {@code Store.CloseableResource}; 5.13 and later close an {@code AutoCloseable}
   * (once, without the deprecation warning they give a {@code CloseableResource} alone).
   */
  // deprecation: CloseableResource is deprecated since 5.13 and needed before it; try: close() may
  // throw what the test's resources throw, and only JUnit or finish() call it (no
  // try-with-resources)
  @SuppressWarnings({"deprecation", "try"})
  private interface StoreResource extends AutoCloseable, ExtensionContext.Store.CloseableResource {
    @Override
    void close() throws Exception;
  }

  /** What one scope (class or test) made, closed in reverse order. */
  // close() passes on what the test's own resources throw (AutoCloseable: any Exception); it is
  // called by finish() or JUnit's store, never from a try-with-resources that could lose an
  // InterruptedException
  @SuppressWarnings("try")
  private static final class Resources implements StoreResource {
    final List<AutoCloseable> closeables = new ArrayList<>();
    final List<VM> vms = new ArrayList<>();

    @Override
    public void close() throws Exception {
      Exception first = null;
      for (int i = closeables.size() - 1; i >= 0; i--) {
        try {
          closeables.get(i).close();
        } catch (Exception e) {
          if (first == null) {
            first = e;
          } else {
            first.addSuppressed(e);
          }
        }
      }
      closeables.clear();
      if (first != null) {
        throw first;
      }
    }
  }

  /**
   * The run's shared connection. {@code getOrComputeIfAbsent} is deprecated in JUnit 6 in favour of
   * {@code computeIfAbsent}, which JUnit 5 before 5.13 lacks: Spring Boot 3 projects run 5.10+, so
   * the method both lines have is used.
   */
  @SuppressWarnings("deprecation") // the one Store method that JUnit 5.10+ and 6 both have
  private static Shared shared(ExtensionContext context) {
    return java.util.Objects.requireNonNull(
        context
            .getRoot()
            .getStore(NS)
            .getOrComputeIfAbsent(Shared.class, k -> new Shared(), Shared.class));
  }

  /** Run-wide connections opened and not closed yet (tests check that the engine closes them). */
  private static final AtomicInteger OPEN_SHARED = new AtomicInteger();

  static int openSharedConnections() {
    return OPEN_SHARED.get();
  }

  /** One connection for the whole run, closed when the engine ends. */
  private static final class Shared implements StoreResource {
    final LibvirtConnection conn;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final java.util.Map<List<String>, MicroImage> images =
        new java.util.concurrent.ConcurrentHashMap<>();

    Shared() {
      conn = LibvirtConnection.open();
      OPEN_SHARED.incrementAndGet();
    }

    /** The image (flavour) with these packages, built once per run. */
    MicroImage image(List<String> packages) {
      return images.computeIfAbsent(
          packages,
          p -> {
            try {
              return MicroImageBuilder.create().packages(p).build();
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
    }

    @Override
    public void close() {
      if (closed.compareAndSet(false, true)) {
        conn.close();
        OPEN_SHARED.decrementAndGet();
      }
    }
  }

  @Override
  public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
    boolean skip =
        AnnotationSupport.findAnnotation(context.getRequiredTestClass(), AgentVmTest.class)
            .map(AgentVmTest::disabledWithoutLibvirt)
            .orElse(false);
    if (!skip) {
      return ConditionEvaluationResult.enabled("VMs are required");
    }
    try (LibvirtConnection c =
        LibvirtConnection.open(LibvirtConnection.defaultUri(), Duration.ofSeconds(2))) {
      return ConditionEvaluationResult.enabled("libvirt answers at " + c.uri());
    } catch (RuntimeException e) {
      return ConditionEvaluationResult.disabled("no libvirt: " + e.getMessage());
    }
  }

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    fill(context, null, true);
  }

  @Override
  public void beforeEach(ExtensionContext context) throws Exception {
    fill(context, context.getRequiredTestInstance(), false);
  }

  @Override
  public void afterEach(ExtensionContext context) throws Exception {
    finish(context);
  }

  @Override
  public void afterAll(ExtensionContext context) throws Exception {
    finish(context);
  }

  private void finish(ExtensionContext context) throws Exception {
    Resources r = context.getStore(NS).remove(Resources.class, Resources.class);
    if (r == null) {
      return;
    }
    if (context.getExecutionException().isPresent()) {
      keepLogs(context, r);
    }
    r.close();
  }

  private void fill(ExtensionContext context, @Nullable Object instance, boolean statics)
      throws IOException, IllegalAccessException {
    List<Field> fields =
        AnnotationSupport.findAnnotatedFields(context.getRequiredTestClass(), AgentVm.class)
            .stream()
            .filter(f -> Modifier.isStatic(f.getModifiers()) == statics)
            .toList();
    if (fields.isEmpty()) {
      return;
    }
    Shared shared = shared(context);
    Resources r = new Resources();
    context.getStore(NS).put(Resources.class, r);
    for (Field f : fields) {
      AgentVm a = f.getAnnotation(AgentVm.class);
      Object value = make(f.getType(), a, shared, r, context);
      f.setAccessible(true);
      f.set(instance, value);
    }
  }

  private Object make(
      Class<?> type, AgentVm a, Shared shared, Resources r, ExtensionContext context)
      throws IOException {
    String name =
        "agentvm-junit-"
            + context
                .getRequiredTestClass()
                .getSimpleName()
                .toLowerCase(Locale.ROOT)
                .replaceAll("[^a-z0-9]", "")
            + "-"
            + UUID.randomUUID().toString().substring(0, 8);
    VMTemplate template =
        dev.agentvm.execution.GuestImages.template(
                name.length() > 64 ? name.substring(0, 64) : name,
                shared.image(List.of(a.packages())))
            .resources(new ResourceProfile(a.vcpus(), a.memoryMiB()))
            .build();
    if (type == VM.class) {
      VM vm = shared.conn.define(template);
      r.closeables.add(vm);
      r.vms.add(vm);
      vm.start();
      vm.awaitAgent(AGENT);
      return vm;
    }
    if (type == AgentExecutor.class) {
      Sandboxes sandboxes = Sandboxes.open(shared.conn);
      r.closeables.add(sandboxes);
      // extracted outputs live as long as the executor: the test reads them, then they go
      Path outputs = AgentVmPaths.stateRoot().resolve("outputs").resolve(template.name());
      r.closeables.add(() -> dev.agentvm.internal.Trees.delete(outputs));
      AgentExecutor executor =
          AgentExecutor.builder(sandboxes)
              .sandbox(
                  SandboxSpec.defaults()
                      .withImage(shared.image(List.of(a.packages())))
                      .withResources(new ResourceProfile(a.vcpus(), a.memoryMiB()))
                      .withNamePrefix(
                          (name.length() > 39
                                  ? name.substring(0, 30) + "-" + name.substring(name.length() - 8)
                                  : name)
                              + "-"))
              .keepReady(a.poolSize())
              .outputRoot(outputs)
              .build();
      r.closeables.add(executor);
      return executor;
    }
    throw new IllegalArgumentException(
        "@AgentVm fields must be VM or AgentExecutor, not " + type.getName());
  }

  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "VM names we generated, a path we built, a host I/O error")
  private void keepLogs(ExtensionContext context, Resources r) {
    Path dir = Path.of(Setting.JUNIT_LOG_DIR.valueOr("target/agentvm-logs"));
    String test = context.getDisplayName().replaceAll("[^A-Za-z0-9_.-]", "_");
    for (VM vm : r.vms) {
      try {
        Files.createDirectories(dir);
        Path to = dir.resolve(test + "-" + vm.name() + ".console.log");
        // through the hypervisor: the log may be on a remote host; bounded (a guest writes it)
        java.util.Optional<byte[]> log = vm.consoleTail(KEPT_LOG_BYTES);
        if (log.isEmpty()) {
          LOG.warn("test failed: {} has no console log to keep", vm.name());
          continue;
        }
        Files.write(to, log.get());
        LOG.info("test failed: console log of {} kept in {}", vm.name(), to);
      } catch (IOException e) {
        LOG.warn("could not keep the console log of {}: {}", vm.name(), e.toString());
      }
    }
  }
}
