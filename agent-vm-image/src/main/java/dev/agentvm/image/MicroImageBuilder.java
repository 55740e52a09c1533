package dev.agentvm.image;

import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.Hashing;
import dev.agentvm.internal.Trees;
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds the micro guest image from Debian packages only: the kernel that {@code linux-image-amd64}
 * depends on, {@code busybox-static}, a {@code jlink}ed java.base runtime made from the running JDK
 * with the host libraries it links against, the guest agent jar, and the virtio, virtio-serial, 9p
 * and vsock kernel modules in dependency order.
 *
 * <p>The result is cached under a directory named by a hash of every input, built in a temporary
 * directory and renamed into place, so an interrupted build never leaves a half image behind that a
 * later run would use. Concurrent builders (threads or processes) wait on a file lock.
 *
 * <pre>{@code
 * MicroImage image = MicroImageBuilder.create().build();
 * }</pre>
 *
 * <p>Needs {@code apt-get}, {@code dpkg-deb}, {@code depmod}, {@code ldd}, {@code strip} and {@code
 * xz} on the host, a C compiler ({@code cc}) with libc headers for the agent's native library
 * (built without it, with a warning, where there is no {@code cc}), and apt package lists ({@code
 * apt-get update}); {@code scripts/setup-host.sh} provides them.
 */
public final class MicroImageBuilder {
  private static final Logger LOG = LoggerFactory.getLogger(MicroImageBuilder.class);

  /** Bump when the image layout changes, so that cached images of the old layout are not reused. */
  static final String FORMAT = "10";

  /**
   * The guest agent's module in the guest's runtime image. The agent jar goes into the runtime as a
   * module rather than onto a class path because a CDS archive holds class-path classes only for
   * the jar path it was dumped with (a path in the guest), while it holds the classes of the
   * runtime image wherever it is dumped: so the agent's classes come from the archive too.
   */
  static final String AGENT_MODULE = "dev.agentvm.guest";

  /** The runtime's CDS archive, relative to the runtime: the JDK's classes and the agent's. */
  static final String AGENT_ARCHIVE = "lib/server/agent.jsa";

  /** What {@code /init} runs: the agent's main class in {@link #AGENT_MODULE}. */
  static final String AGENT_MAIN = "dev.agentvm.guest.agent.GuestAgent";

  /**
   * The classes, lambda proxies and lambda forms a guest agent loaded while serving each kind of
   * request, recorded in a guest ({@code -XX:DumpLoadedClassList}, by the benchmarks module's
   * {@code AgentClassList}), added to the JDK's own list when the CDS archive is made. A class that
   * a newer agent or JDK no longer has is skipped with a warning at dump time; what is missing is
   * only loaded and verified in the guest again, as before.
   */
  static final String AGENT_CLASSLIST = "agent.classlist";

  /**
   * glibc's C.UTF-8 locale, from the host's libc-bin (the same glibc as the libraries copied from
   * the host). The guest JVM takes sun.jnu.encoding (argv, environment, file names) and
   * file.encoding from the C locale; without one they are ASCII and non-ASCII text turns into '?'.
   */
  static final Path HOST_UTF8_LOCALE = Path.of("/usr/lib/locale/C.utf8");

  /** The C source of the agent's native library, a resource of this class. */
  static final String NATIVE_SOURCE = "native/agentvm-guest.c";

  /** Where the image keeps the agent's native library (init.sh names it to the agent). */
  static final String GUEST_NATIVE_LIBRARY = "opt/agentvm/libagentvm-guest.so";

  /** How the native library is compiled (no -Werror: a user's newer compiler may warn more). */
  static final List<String> NATIVE_CFLAGS = List.of("-O2", "-fPIC", "-shared", "-Wall", "-Wextra");

  /** Where the locale goes in the initramfs: not under /usr, which a package disk covers. */
  static final String GUEST_LOCALE_DIR = "lib/locale";

  /** The virtio transport, loaded first: without it no virtio device is visible. */
  static final List<String> BUS_MODULES = List.of("virtio_pci");

  /**
   * Drivers by virtio device id (as in {@code /sys/bus/virtio/devices/X/device}). /init loads a
   * driver only when the VM has the device, so a VM without a NIC or a 9p share pays nothing for
   * them.
   */
  static final Map<String, List<String>> DEVICE_MODULES =
      new TreeMap<>(
          Map.of(
              "0x0001", List.of("virtio_net"),
              // ext4 with its checksum driver (mkfs.ext4 enables metadata_csum), for data disks
              "0x0002", List.of("virtio_blk", "crc32c_generic", "ext4"),
              "0x0003", List.of("virtio_console"),
              "0x0004", List.of("virtio_rng"),
              "0x0009", List.of("9p", "9pnet_virtio"),
              "0x0013", List.of("vmw_vsock_virtio_transport")));

  /** How the initramfs is stored; the kernel unpacks either. */
  public enum Compression {
    NONE,
    GZIP
  }

  private Path cacheRoot = defaultCacheRoot();
  private Compression compression = Compression.NONE;
  private List<String> packages = List.of();
  private Progress progress = Progress.toLog();

  /**
   * The steps of a build that {@link #progress} counts: kernel, busybox, runtime, initramfs, done.
   */
  static final int BUILD_STEPS = 5;

  private static final String TASK = "micro image";

  /** Steps done in the build under way (a builder builds one image at a time). */
  private final java.util.concurrent.atomic.AtomicInteger stepsDone =
      new java.util.concurrent.atomic.AtomicInteger();

  private MicroImageBuilder() {}

  public static MicroImageBuilder create() {
    return new MicroImageBuilder();
  }

  /**
   * The default cache root: {@code $AGENTVM_CACHE_DIR} (or system property {@code
   * agentvm.cache.dir}), else {@code /var/cache/agent-vm} for root (libvirt's QEMU user cannot read
   * files under {@code /root}), else {@code $XDG_CACHE_HOME/agent-vm} or {@code ~/.cache/agent-vm}.
   */
  public static Path defaultCacheRoot() {
    return AgentVmPaths.cacheRoot();
  }

  public MicroImageBuilder cacheRoot(Path dir) {
    this.cacheRoot = dir;
    return this;
  }

  public MicroImageBuilder compression(Compression c) {
    this.compression = c;
    return this;
  }

  /**
   * Adds Debian packages (and what they depend on) on a read-only disk mounted on {@code /usr}, for
   * example {@link MicroImage#PYTHON_GIT}. Without packages the image is initramfs only.
   */
  public MicroImageBuilder packages(List<String> debianPackages) {
    this.packages = List.copyOf(new TreeSet<>(debianPackages));
    return this;
  }

  /**
   * Who hears how a build goes (default {@link Progress#toLog()}): the micro image in {@value
   * #BUILD_STEPS} steps, then the package disk, one step per package. A cached image reports
   * nothing.
   */
  public MicroImageBuilder progress(Progress listener) {
    this.progress = java.util.Objects.requireNonNull(listener, "listener");
    return this;
  }

  /** The next step of the build. */
  private void step(String detail) {
    int n = Math.min(stepsDone.incrementAndGet(), BUILD_STEPS - 1);
    Progress.report(progress, new Progress.Step(TASK, n, BUILD_STEPS, detail));
  }

  /** A detail of the step under way. */
  private void say(String detail) {
    Progress.report(
        progress,
        new Progress.Step(TASK, Math.min(stepsDone.get(), BUILD_STEPS - 1), BUILD_STEPS, detail));
  }

  /** The Debian packages of the base image, as apt resolved them. */
  private record Inputs(String kernelPackage, String kernelVersion, String busyboxVersion) {}

  /** The kernel's files in the work directory, and the modules the initramfs carries. */
  private record Kernel(
      Path root,
      String release,
      Path vmlinuz,
      Path modulesDir,
      Map<String, List<String>> lists,
      Set<String> modules) {}

  /** The jlinked runtime and the host libraries it needs. */
  private record JavaRuntime(Path jre, Set<String> hostLibraries) {}

  /**
   * Returns the cached image for the current inputs, building it first if needed.
   *
   * @throws ImageBuildException naming the step that failed
   */
  public MicroImage build() throws IOException {
    Path images = cacheRoot.resolve("images");
    Files.createDirectories(images);
    Inputs inputs = resolvePackages();
    byte[] agentJar = agentJar();
    byte[] init = resource("init.sh");
    byte[] dhcpScript = resource("udhcpc.sh");
    String compiler = compilerIdentity();
    String key =
        Hashing.sha256Hex(
                String.join(
                        "\n",
                        FORMAT,
                        inputs.kernelPackage(),
                        inputs.kernelVersion(),
                        inputs.busyboxVersion(),
                        Runtime.version().toString(),
                        System.getProperty("java.home"),
                        Hashing.sha256Hex(agentJar),
                        Hashing.sha256Hex(resource(AGENT_CLASSLIST)),
                        Hashing.sha256Hex(init),
                        Hashing.sha256Hex(dhcpScript),
                        Hashing.sha256Hex(resource(NATIVE_SOURCE)),
                        compiler,
                        NATIVE_CFLAGS.toString(),
                        compression.name(),
                        BUS_MODULES.toString() + DEVICE_MODULES)
                    .getBytes(StandardCharsets.UTF_8))
            .substring(0, 16);
    Path dir = images.resolve("micro-" + key);
    MicroImage base = load(dir);
    if (base == null) {
      base =
          ImageCache.withBuildLock(
              images, () -> buildLocked(images, dir, inputs, agentJar, init, compiler));
    }
    if (packages.isEmpty()) {
      return base;
    }
    Path debs = Files.createDirectories(cacheRoot.resolve("debs"));
    Path busyboxDeb =
        DebianPackages.download(debs, "busybox-static", inputs.busyboxVersion(), this::say);
    Path disk =
        new PackageDiskBuilder(cacheRoot, progress).build(packages, busyboxDeb).resolve("usr.ext4");
    return new MicroImage(
        base.directory(),
        base.kernel(),
        base.stockKernel(),
        base.initramfs(),
        base.bareInitramfs(),
        base.kernelRelease(),
        base.sizeBytes(),
        packages,
        disk);
  }

  /** Builds the image into a temporary directory and renames it into place; under the lock. */
  private MicroImage buildLocked(
      Path images, Path dir, Inputs inputs, byte[] agentJar, byte[] init, String compiler)
      throws IOException {
    MicroImage cached = load(dir); // another builder may have finished while we waited
    if (cached != null) {
      return cached;
    }
    long t0 = System.nanoTime();
    stepsDone.set(0);
    ImageCache.buildAtomically(
        images,
        ".tmp-micro-",
        dir,
        "micro image",
        tmp -> buildInto(tmp, inputs, agentJar, init, compiler));
    ImageCache.pruneOld(images, "micro-", dir, ImageCache.KEEP_OLD_IMAGES, this::say);
    MicroImage image = load(dir);
    if (image == null) {
      throw new ImageBuildException("the image just built has no manifest: " + dir);
    }
    Progress.report(
        progress,
        new Progress.Step(
            TASK,
            BUILD_STEPS,
            BUILD_STEPS,
            String.format(
                "built %s: %.1f MB in %.1f s",
                dir, image.sizeBytes() / 1e6, (System.nanoTime() - t0) / 1e9)));
    return image;
  }

  private void buildInto(Path tmp, Inputs inputs, byte[] agentJar, byte[] init, String compiler)
      throws IOException {
    Path work = Files.createDirectories(tmp.resolve("work"));
    Path debs = Files.createDirectories(cacheRoot.resolve("debs"));
    Kernel kernel = unpackKernel(work, debs, inputs);
    step("busybox-static " + inputs.busyboxVersion());
    Path bbRoot = work.resolve("busybox");
    DebianPackages.extract(
        DebianPackages.download(debs, "busybox-static", inputs.busyboxVersion(), this::say),
        bbRoot);
    Path busybox = bbRoot.resolve("bin/busybox");
    if (!Files.isRegularFile(busybox)) {
      throw new ImageBuildException("busybox-static has no bin/busybox");
    }
    JavaRuntime runtime = makeRuntime(work, agentJar);
    Path nativeLibrary = compiler.isEmpty() ? null : compileNativeLibrary(work, runtime);
    if (nativeLibrary == null) {
      LOG.warn(
          "no C compiler (cc) on this machine: the micro image is built without the guest agent's"
              + " native library, so a restored guest sets its clock by starting date (~0.2 s"
              + " slower under TCG). Install gcc and libc6-dev to have it; the next build adds it");
    }
    step("initramfs");
    writeInitramfs(
        tmp.resolve("initramfs.img"),
        work,
        kernel,
        runtime,
        nativeLibrary,
        busybox,
        agentJar,
        init);
    writeBareInitramfs(tmp.resolve("bare-initramfs.img"), busybox);
    writeKernel(tmp, work, kernel);
    Trees.delete(work);
    writeManifest(tmp, inputs, kernel);
  }

  /** Unpacks the kernel package, runs depmod, and orders the modules the initramfs loads. */
  private Kernel unpackKernel(Path work, Path debs, Inputs inputs) throws IOException {
    String kernelPkg = inputs.kernelPackage();
    step("kernel " + kernelPkg + " " + inputs.kernelVersion());
    Path kernelRoot = work.resolve("kernel");
    DebianPackages.extract(
        DebianPackages.download(debs, kernelPkg, inputs.kernelVersion(), this::say), kernelRoot);
    Path modulesBase = KernelFiles.findModulesBase(kernelRoot);
    String release;
    try (Stream<Path> s = Files.list(modulesBase)) {
      release =
          s.map(PathParts::name)
              .findFirst()
              .orElseThrow(() -> new ImageBuildException("no modules directory in " + kernelPkg));
    }
    Path vmlinuz = kernelRoot.resolve("boot/vmlinuz-" + release);
    if (!Files.isRegularFile(vmlinuz)) {
      throw new ImageBuildException("no boot/vmlinuz-" + release + " in " + kernelPkg);
    }
    HostCommands.run(work, "depmod", "-b", kernelRoot.toString(), release);
    Path modDir = modulesBase.resolve(release);
    KernelModules km =
        new KernelModules(
            Files.readString(modDir.resolve("modules.dep")),
            Files.exists(modDir.resolve("modules.builtin"))
                ? KernelModules.builtinNames(Files.readString(modDir.resolve("modules.builtin")))
                : Set.of());
    Map<String, List<String>> lists = new TreeMap<>();
    lists.put("bus", km.loadOrder(BUS_MODULES));
    DEVICE_MODULES.forEach((id, mods) -> lists.put("virtio-" + id, km.loadOrder(mods)));
    TreeSet<String> order = new TreeSet<>();
    lists.values().forEach(order::addAll);
    say(
        "kernel modules: "
            + order.size()
            + " ("
            + String.join(" ", order.stream().map(KernelModules::nameOf).toList())
            + ")");
    return new Kernel(kernelRoot, release, vmlinuz, modDir, lists, order);
  }

  /**
   * The host C compiler's first line of {@code cc --version}, or "" when there is none: part of the
   * image's key, so installing or changing the compiler makes a new image.
   */
  static String compilerIdentity() {
    String known = askedCompiler;
    if (known == null) {
      known = askCompiler();
      askedCompiler = known;
    }
    return known;
  }

  private static volatile @Nullable String askedCompiler; // asked once per process

  private static String askCompiler() {
    try {
      String v =
          new String(
              HostCommands.runForBytes(Path.of("."), "cc", "--version"), StandardCharsets.UTF_8);
      return v.lines().findFirst().orElse("cc").strip();
    } catch (IOException e) {
      return "";
    }
  }

  /**
   * Compiles the agent's native library with the host's C compiler against the JDK's JNI headers;
   * the host libraries it links against join the runtime's. A compiler that is there but fails (no
   * libc headers) fails the build: installing what is missing does not change the image's key.
   */
  private Path compileNativeLibrary(Path work, JavaRuntime runtime) throws IOException {
    say("the agent's native library");
    Path src = work.resolve("agentvm-guest.c");
    Files.write(src, resource(NATIVE_SOURCE));
    Path include = Path.of(System.getProperty("java.home"), "include");
    if (!Files.isRegularFile(include.resolve("jni.h"))) {
      throw new ImageBuildException("no jni.h in " + include + ": run with a full JDK, not a JRE");
    }
    Path lib = work.resolve("libagentvm-guest.so");
    try {
      HostCommands.run(work, nativeCompileCommand(src, lib).toArray(String[]::new));
    } catch (IOException e) {
      throw new ImageBuildException(
          "compiling the guest agent's native library failed: the image needs libc headers beside"
              + " the C compiler (Debian: apt-get install gcc libc6-dev); "
              + e.getMessage(),
          e);
    }
    HostCommands.run(work, "strip", "--strip-unneeded", lib.toString());
    for (String l : SharedLibraries.sharedLibraries(lib, Set.of())) {
      runtime.hostLibraries().add(l);
    }
    return lib;
  }

  /** The compiler's command line for the native library {@code lib} from {@code src}. */
  static List<String> nativeCompileCommand(Path src, Path lib) {
    Path include = Path.of(System.getProperty("java.home"), "include");
    List<String> cmd = new ArrayList<>(List.of("cc"));
    cmd.addAll(NATIVE_CFLAGS);
    // -isystem: a warning of a future compiler inside the JDK's headers is not ours to fix
    cmd.addAll(
        List.of(
            "-isystem",
            include.toString(),
            "-isystem",
            include.resolve("linux").toString(),
            "-o",
            lib.toString(),
            src.toString()));
    return cmd;
  }

  /**
   * A jlinked java.base and guest agent ({@link #AGENT_MODULE}) from the running JDK, with a CDS
   * archive of the JDK's and the agent's classes, stripped.
   */
  private JavaRuntime makeRuntime(Path work, byte[] agentJar) throws IOException {
    step("jlink java.base and the guest agent from " + System.getProperty("java.home"));
    Path jre = work.resolve("jre");
    Path jlink = jdkTool("jlink");
    Path agentModule = agentModuleJar(work, agentJar);
    HostCommands.run(
        work,
        jlink.toString(),
        "--module-path",
        agentModule.toString(),
        "--add-modules",
        "java.base," + AGENT_MODULE,
        "--strip-debug",
        "--no-header-files",
        "--no-man-pages",
        "--output",
        jre.toString());
    // a CDS archive cuts guest JVM start under TCG: the JDK's classes ~1.4 s, the agent's classes
    // and lambdas (parsed, verified and linked in the interpreter otherwise) ~0.4 s more. Not the
    // default archive (lib/server/classes.jsa), which every java of this runtime would map: JDK 17
    // crashes (SIGSEGV in JVM_FindLoadedClass) when a class-path jar holds classes of the archived
    // module, as `java -jar agent.jar` of a user's disk image does. /init names it instead.
    Path classList = work.resolve("classlist");
    Files.write(classList, classList(Files.readAllBytes(jre.resolve("lib/classlist")), agentJar));
    HostCommands.run(
        work,
        jre.resolve("bin/java").toString(),
        "-Xshare:dump",
        "-XX:+UseSerialGC",
        "-XX:SharedClassListFile=" + classList,
        "-XX:SharedArchiveFile=" + jre.resolve(AGENT_ARCHIVE),
        "--add-modules",
        AGENT_MODULE);

    TreeSet<String> libs = new TreeSet<>();
    List<Path> binaries;
    try (Stream<Path> s = Files.walk(jre)) {
      binaries =
          s.filter(
                  p ->
                      Files.isRegularFile(p)
                          && (p.toString().endsWith(".so") || p.endsWith("bin/java")))
              .toList();
    }
    // libraries the runtime ships itself (libjvm.so, found through $ORIGIN) are not host libraries
    Set<String> own = new TreeSet<>(binaries.stream().map(PathParts::name).toList());
    for (Path p : binaries) {
      for (String lib : SharedLibraries.sharedLibraries(p, own)) {
        if (!Path.of(lib).startsWith(jre)) { // the runtime's own libraries are already in place
          libs.add(lib);
        }
      }
    }
    // debug symbols only cost unpack time at every boot
    for (Path p : binaries) {
      if (p.toString().endsWith(".so")) {
        HostCommands.run(work, "strip", "--strip-unneeded", p.toString());
      }
    }
    return new JavaRuntime(jre, libs);
  }

  private void writeInitramfs(
      Path file,
      Path work,
      Kernel kernel,
      JavaRuntime runtime,
      @Nullable Path nativeLibrary,
      Path busybox,
      byte[] agentJar,
      byte[] init)
      throws IOException {
    try (CpioWriter cpio = new CpioWriter(compressed(file))) {
      for (String d :
          List.of(
              "bin",
              "dev",
              "etc",
              "etc/agentvm",
              "lib",
              "lib/modules",
              "proc",
              "sys",
              "tmp",
              "run",
              "mnt",
              "opt",
              "opt/agentvm")) {
        cpio.directory(d, 0755);
      }
      cpio.charDevice("dev/console", 0600, 5, 1);
      cpio.file("init", 0755, init);
      cpio.file("etc/agentvm/udhcpc.sh", 0755, resource("udhcpc.sh"));
      cpio.file("bin/busybox", 0755, busybox);
      Set<String> made = new TreeSet<>(List.of("lib", "lib/modules"));
      for (String m : kernel.modules()) {
        String dest = "lib/modules/" + KernelFiles.plainModuleName(m);
        parents(cpio, made, dest);
        cpio.file(
            dest,
            0644,
            KernelFiles.stripSignature(
                KernelFiles.moduleBytes(kernel.modulesDir().resolve(m), work)));
      }
      cpio.directory("etc/agentvm/modules.d", 0755);
      for (Map.Entry<String, List<String>> e : kernel.lists().entrySet()) {
        StringBuilder list = new StringBuilder();
        e.getValue()
            .forEach(
                m ->
                    list.append(KernelModules.nameOf(m))
                        .append(' ')
                        .append(KernelFiles.plainModuleName(m))
                        .append('\n'));
        cpio.file(
            "etc/agentvm/modules.d/" + e.getKey(),
            0644,
            list.toString().getBytes(StandardCharsets.UTF_8));
      }
      for (String lib : runtime.hostLibraries()) {
        String dest = lib.substring(1);
        parents(cpio, made, dest);
        cpio.file(dest, 0755, Path.of(lib).toRealPath());
      }
      if (!Files.isDirectory(HOST_UTF8_LOCALE)) {
        throw new ImageBuildException(
            "no glibc C.UTF-8 locale at "
                + HOST_UTF8_LOCALE
                + " (Debian's libc-bin ships it): the guest agent needs it to pass UTF-8"
                + " arguments, environment and file names to commands");
      }
      addTree(cpio, made, HOST_UTF8_LOCALE, GUEST_LOCALE_DIR + "/C.utf8");
      addTree(cpio, made, runtime.jre(), "opt/agentvm/jre");
      cpio.file("opt/agentvm/agent.jar", 0644, agentJar);
      if (nativeLibrary != null) {
        cpio.file(GUEST_NATIVE_LIBRARY, 0644, nativeLibrary);
      }
    }
  }

  /** busybox alone with an /init that prints its uptime and powers off: the boot floor. */
  private void writeBareInitramfs(Path file, Path busybox) throws IOException {
    try (CpioWriter cpio = new CpioWriter(compressed(file))) {
      for (String d : List.of("bin", "dev", "proc")) {
        cpio.directory(d, 0755);
      }
      cpio.charDevice("dev/console", 0600, 5, 1);
      cpio.file("bin/busybox", 0755, busybox);
      cpio.file(
          "init",
          0755,
          """
          #!/bin/busybox sh
          /bin/busybox mount -t proc proc /proc
          read up idle < /proc/uptime
          echo "agentvm-init: start uptime=$up"
          /bin/busybox poweroff -f
          """
              .getBytes(StandardCharsets.UTF_8));
    }
  }

  private void writeKernel(Path tmp, Path work, Kernel kernel) throws IOException {
    Path kernelOut = tmp.resolve("kernel");
    if (KernelFiles.supportsPvh(kernel.root(), kernel.release())) {
      // Under TCG the bzImage spends seconds decompressing itself before the kernel starts; QEMU
      // boots the uncompressed ELF directly through its PVH entry point instead.
      Files.write(kernelOut, KernelFiles.extractVmlinux(kernel.vmlinuz(), work));
      say("kernel: extracted uncompressed vmlinux for PVH direct boot");
    } else {
      Files.copy(kernel.vmlinuz(), kernelOut);
    }
    Files.copy(kernel.vmlinuz(), tmp.resolve("bzImage")); // the stock kernel, for comparison
  }

  private void writeManifest(Path tmp, Inputs inputs, Kernel kernel) throws IOException {
    Properties manifest = new Properties();
    manifest.setProperty("kernelRelease", kernel.release());
    manifest.setProperty("kernelPackage", inputs.kernelPackage() + "=" + inputs.kernelVersion());
    manifest.setProperty("busybox", inputs.busyboxVersion());
    manifest.setProperty("java", Runtime.version().toString());
    manifest.setProperty("compression", compression.name());
    manifest.setProperty("modules", String.join(" ", kernel.modules()));
    manifest.setProperty("builtAt", Instant.now().toString());
    try (OutputStream o = Files.newOutputStream(tmp.resolve("manifest.properties"))) {
      manifest.store(o, "agent-vm micro image");
    }
    try (Stream<Path> s = Files.list(tmp)) {
      for (Path p : s.toList()) {
        ImageCache.publishFile(p);
      }
    }
  }

  private OutputStream compressed(Path file) throws IOException {
    OutputStream raw = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16);
    return compression == Compression.GZIP ? new GZIPOutputStream(raw, 1 << 16) : raw;
  }

  private static @Nullable MicroImage load(Path dir) throws IOException {
    Path manifest = dir.resolve("manifest.properties");
    if (!Files.isRegularFile(manifest)) {
      return null;
    }
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(manifest)) {
      p.load(in);
    }
    Path kernel = dir.resolve("kernel");
    Path initramfs = dir.resolve("initramfs.img");
    return new MicroImage(
        dir,
        kernel,
        dir.resolve("bzImage"),
        initramfs,
        dir.resolve("bare-initramfs.img"),
        p.getProperty("kernelRelease"),
        Files.size(kernel) + Files.size(initramfs),
        List.of(),
        null);
  }

  private static void parents(CpioWriter cpio, Set<String> made, String path) throws IOException {
    int i = 0;
    while ((i = path.indexOf('/', i + 1)) > 0) {
      String d = path.substring(0, i);
      if (made.add(d)) {
        cpio.directory(d, 0755);
      }
    }
  }

  private static void addTree(CpioWriter cpio, Set<String> made, Path root, String dest)
      throws IOException {
    parents(cpio, made, dest + "/");
    List<Path> all;
    try (Stream<Path> s = Files.walk(root)) {
      all = s.sorted().toList();
    }
    for (Path p : all) {
      String name = (dest + "/" + root.relativize(p)).replaceAll("/$", "");
      if (Files.isSymbolicLink(p)) {
        cpio.symlink(name, Files.readSymbolicLink(p).toString());
      } else if (Files.isDirectory(p)) {
        if (made.add(name)) {
          cpio.directory(name, 0755);
        }
      } else {
        Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p);
        cpio.file(name, perms.contains(PosixFilePermission.OWNER_EXECUTE) ? 0755 : 0644, p);
      }
    }
  }

  /**
   * The kernel package, its version and the busybox-static version. apt-cache takes over a second a
   * call here, so the answer is remembered against a fingerprint of apt's package lists.
   */
  private Inputs resolvePackages() throws IOException {
    String key = DebianPackages.aptListsFingerprint();
    Path memo = cacheRoot.resolve("apt-resolution.properties");
    Properties p = new Properties();
    if (Files.isRegularFile(memo)) {
      try (InputStream in = Files.newInputStream(memo)) {
        p.load(in);
      }
      if (key.equals(p.getProperty("lists")) && p.getProperty("busybox") != null) {
        return new Inputs(
            p.getProperty("kernelPackage"),
            p.getProperty("kernelVersion"),
            p.getProperty("busybox"));
      }
    }
    String kernelPkg = DebianPackages.kernelPackage();
    Inputs r =
        new Inputs(
            kernelPkg,
            DebianPackages.packageVersion(kernelPkg),
            DebianPackages.packageVersion("busybox-static"));
    p.setProperty("lists", key);
    p.setProperty("kernelPackage", r.kernelPackage());
    p.setProperty("kernelVersion", r.kernelVersion());
    p.setProperty("busybox", r.busyboxVersion());
    Path tmp = Files.createTempFile(cacheRoot, ".apt-resolution", ".tmp");
    try (OutputStream out = Files.newOutputStream(tmp)) {
      p.store(out, "package versions resolved by apt-cache, valid while apt's lists are unchanged");
    }
    Files.move(tmp, memo, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    return r;
  }

  private static Path jdkTool(String name) throws ImageBuildException {
    Path tool = Path.of(System.getProperty("java.home"), "bin", name);
    if (!Files.isExecutable(tool)) {
      throw new ImageBuildException(
          "no " + name + " at " + tool + ": run with a full JDK, not a JRE");
    }
    return tool;
  }

  /**
   * The agent jar as the named module {@link #AGENT_MODULE} (requiring java.base only, exporting
   * nothing), for jlink: its entries and a {@code module-info.class} compiled here.
   */
  private static Path agentModuleJar(Path work, byte[] agentJar) throws IOException {
    Path src = Files.createDirectories(work.resolve("agent-module/src"));
    Path classes = Files.createDirectories(work.resolve("agent-module/classes"));
    Files.writeString(src.resolve("module-info.java"), "module " + AGENT_MODULE + " {}\n");
    HostCommands.run(
        work,
        jdkTool("javac").toString(),
        "--release",
        "17",
        "-d",
        classes.toString(),
        src.resolve("module-info.java").toString());
    Path jar = work.resolve("agent-module/agent.jar");
    try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(agentJar));
        ZipOutputStream out = new ZipOutputStream(Files.newOutputStream(jar))) {
      out.putNextEntry(new ZipEntry("module-info.class"));
      out.write(Files.readAllBytes(classes.resolve("module-info.class")));
      out.closeEntry();
      for (ZipEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
        if (!e.getName().equals("module-info.class")) {
          out.putNextEntry(new ZipEntry(e.getName()));
          in.transferTo(out);
          out.closeEntry();
        }
      }
    }
    return jar;
  }

  /**
   * The class list for the CDS archive: the JDK's own, the recorded {@link #AGENT_CLASSLIST}, and
   * every class of the agent jar (so that a class the recording missed is archived too). The
   * recording's lambda lines ({@code @lambda-proxy}, {@code @lambda-form-invoker}) name JDK
   * internals of the JDK it was recorded on: with another JDK only its class names are used.
   */
  static byte[] classList(byte[] jdkClassList, byte[] agentJar) throws IOException {
    StringBuilder list = new StringBuilder(new String(jdkClassList, StandardCharsets.UTF_8));
    if (list.length() > 0 && list.charAt(list.length() - 1) != '\n') {
      list.append('\n');
    }
    String recorded = new String(resource(AGENT_CLASSLIST), StandardCharsets.UTF_8);
    boolean sameJdk =
        recorded
            .lines()
            .findFirst()
            .orElse("")
            .contains(" on JDK " + Runtime.version().feature() + ":");
    recorded
        .lines()
        .filter(l -> sameJdk || !l.startsWith("@"))
        .forEach(l -> list.append(l).append('\n'));
    try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(agentJar))) {
      for (ZipEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
        String name = e.getName();
        if (name.endsWith(".class") && !name.endsWith("module-info.class")) {
          list.append(name, 0, name.length() - ".class".length()).append('\n');
        }
      }
    }
    return list.toString().getBytes(StandardCharsets.UTF_8);
  }

  /**
   * The guest agent jar (agent-vm-guest's {@code agent} artifact: the agent and the protocol,
   * nothing else), which the build of this module embeds.
   */
  static byte[] agentJar() throws IOException {
    try {
      return resource("agent.jar");
    } catch (ImageBuildException e) {
      throw new ImageBuildException(
          "the guest agent jar is missing from agent-vm-image: build the module with 'mvn package'"
              + " (it embeds agent-vm-guest's agent jar)",
          e);
    }
  }

  private static byte[] resource(String name) throws IOException {
    try (InputStream in = MicroImageBuilder.class.getResourceAsStream(name)) {
      if (in == null) {
        throw new ImageBuildException("missing resource " + name);
      }
      return in.readAllBytes();
    }
  }

  /**
   * Builds (or finds) the image and prints where it is; arguments are Debian packages for a flavour
   * (e.g. {@code python3 git}), whose package disk is printed too.
   */
  public static void main(String[] args) throws IOException {
    MicroImage image = create().packages(List.of(args)).build();
    System.out.println(image.directory());
    image.packageDiskIfAny().ifPresent(System.out::println);
  }
}
