package dev.agentvm.guest.image;

import dev.agentvm.guest.agent.GuestAgent;
import dev.agentvm.protocol.Frame;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;

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
 * <p>Needs {@code apt-get}, {@code dpkg-deb}, {@code depmod}, {@code ldd} and {@code xz} on the
 * host, and apt package lists ({@code apt-get update}); {@code scripts/setup-host.sh} provides
 * them.
 */
public final class MicroImageBuilder {
  /** Bump when the image layout changes, so that cached images of the old layout are not reused. */
  static final String FORMAT = "8";

  /**
   * glibc's C.UTF-8 locale, from the host's libc-bin (the same glibc as the libraries copied from
   * the host). The guest JVM takes sun.jnu.encoding (argv, environment, file names) and
   * file.encoding from the C locale; without one they are ASCII and non-ASCII text turns into '?'.
   */
  static final Path HOST_UTF8_LOCALE = Path.of("/usr/lib/locale/C.utf8");

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
  private Consumer<String> progress = s -> System.err.println("[agent-vm image] " + s);

  private MicroImageBuilder() {}

  public static MicroImageBuilder create() {
    return new MicroImageBuilder();
  }

  /**
   * The default cache root: {@code $AGENTVM_CACHE_DIR}, else {@code /var/cache/agent-vm} for root
   * (libvirt's QEMU user cannot read files under {@code /root}), else {@code
   * $XDG_CACHE_HOME/agent-vm} or {@code ~/.cache/agent-vm}.
   */
  public static Path defaultCacheRoot() {
    String env = System.getenv("AGENTVM_CACHE_DIR");
    if (env != null && !env.isBlank()) {
      return Path.of(env);
    }
    if ("root".equals(System.getProperty("user.name"))) {
      return Path.of("/var/cache/agent-vm");
    }
    String xdg = System.getenv("XDG_CACHE_HOME");
    return (xdg != null && !xdg.isBlank()
            ? Path.of(xdg)
            : Path.of(System.getProperty("user.home"), ".cache"))
        .resolve("agent-vm");
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

  /** Where progress lines go (default: standard error). */
  public MicroImageBuilder progress(Consumer<String> sink) {
    this.progress = sink;
    return this;
  }

  /**
   * Returns the cached image for the current inputs, building it first if needed.
   *
   * @throws ImageBuildException naming the step that failed
   */
  public MicroImage build() throws IOException {
    Path images = cacheRoot.resolve("images");
    mkdirs(images);
    String[] pkgs = resolvePackages();
    String kernelPkg = pkgs[0];
    String kernelVer = pkgs[1];
    String busyboxVer = pkgs[2];
    byte[] agentJar = agentJar();
    byte[] init = resource("init.sh");
    byte[] dhcpScript = resource("udhcpc.sh");
    String key =
        sha256(
                String.join(
                        "\n",
                        FORMAT,
                        kernelPkg,
                        kernelVer,
                        busyboxVer,
                        Runtime.version().toString(),
                        System.getProperty("java.home"),
                        sha256(agentJar),
                        sha256(init),
                        sha256(dhcpScript),
                        compression.name(),
                        BUS_MODULES.toString() + DEVICE_MODULES)
                    .getBytes(StandardCharsets.UTF_8))
            .substring(0, 16);
    Path dir = images.resolve("micro-" + key);
    MicroImage base = load(dir);
    if (base == null) {
      // the file lock serialises processes; within one JVM a second lock() would throw, so
      // threads queue on this monitor first
      synchronized (BUILD_LOCK) {
        base = buildLocked(images, dir, kernelPkg, kernelVer, busyboxVer, agentJar, init);
      }
    }
    if (packages.isEmpty()) {
      return base;
    }
    mkdirs(cacheRoot.resolve("debs"));
    Path busyboxDeb = download(cacheRoot.resolve("debs"), "busybox-static", busyboxVer);
    Path disk =
        new PackageDiskBuilder(cacheRoot, progress, this)
            .build(packages, busyboxDeb)
            .resolve("usr.ext4");
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

  private static final Object BUILD_LOCK = new Object();

  private MicroImage buildLocked(
      Path images,
      Path dir,
      String kernelPkg,
      String kernelVer,
      String busyboxVer,
      byte[] agentJar,
      byte[] init)
      throws IOException {
    MicroImage cached;
    try (FileChannel lockFile =
            FileChannel.open(
                images.resolve(".build.lock"),
                StandardOpenOption.CREATE,
                StandardOpenOption.WRITE);
        FileLock ignored = lockFile.lock()) {
      cached = load(dir); // another builder may have finished while we waited
      if (cached != null) {
        return cached;
      }
      removeStaleTemps(images);
      long t0 = System.nanoTime();
      Path tmp = Files.createTempDirectory(images, ".tmp-micro-");
      try {
        buildInto(tmp, kernelPkg, kernelVer, busyboxVer, agentJar, init);
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
      } catch (ImageBuildException e) {
        deleteTree(tmp);
        throw e;
      } catch (IOException | RuntimeException e) {
        deleteTree(tmp);
        throw new ImageBuildException("building micro image failed: " + e, e);
      }
      pruneOldImages(images, dir);
      MicroImage image = load(dir);
      progress.accept(
          String.format(
              "built %s: %.1f MB in %.1f s",
              dir, image.sizeBytes() / 1e6, (System.nanoTime() - t0) / 1e9));
      return image;
    }
  }

  private void buildInto(
      Path tmp, String kernelPkg, String kernelVer, String busyboxVer, byte[] agentJar, byte[] init)
      throws IOException {
    Path work = tmp.resolve("work");
    mkdirs(work);
    Path debs = cacheRoot.resolve("debs");
    mkdirs(debs);

    progress.accept("kernel " + kernelPkg + " " + kernelVer);
    Path kernelRoot = work.resolve("kernel");
    extract(download(debs, kernelPkg, kernelVer), kernelRoot);
    Path modulesBase = findModulesBase(kernelRoot);
    String release;
    try (Stream<Path> s = Files.list(modulesBase)) {
      release =
          s.map(p -> p.getFileName().toString())
              .findFirst()
              .orElseThrow(() -> new ImageBuildException("no modules directory in " + kernelPkg));
    }
    Path vmlinuz = kernelRoot.resolve("boot/vmlinuz-" + release);
    if (!Files.isRegularFile(vmlinuz)) {
      throw new ImageBuildException("no boot/vmlinuz-" + release + " in " + kernelPkg);
    }
    run(work, "depmod", "-b", kernelRoot.toString(), release);
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
    progress.accept(
        "kernel modules: "
            + order.size()
            + " ("
            + String.join(" ", order.stream().map(KernelModules::nameOf).toList())
            + ")");

    progress.accept("busybox-static " + busyboxVer);
    Path bbRoot = work.resolve("busybox");
    extract(download(debs, "busybox-static", busyboxVer), bbRoot);
    Path busybox = bbRoot.resolve("bin/busybox");
    if (!Files.isRegularFile(busybox)) {
      throw new ImageBuildException("busybox-static has no bin/busybox");
    }

    progress.accept("jlink java.base from " + System.getProperty("java.home"));
    Path jre = work.resolve("jre");
    Path jlink = Path.of(System.getProperty("java.home"), "bin", "jlink");
    if (!Files.isExecutable(jlink)) {
      throw new ImageBuildException("no jlink at " + jlink + ": run with a full JDK, not a JRE");
    }
    run(
        work,
        jlink.toString(),
        "--add-modules",
        "java.base",
        "--strip-debug",
        "--no-header-files",
        "--no-man-pages",
        "--output",
        jre.toString());
    // a CDS archive of the JDK classes cuts guest JVM start under TCG
    run(work, jre.resolve("bin/java").toString(), "-Xshare:dump", "-XX:+UseSerialGC");

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
    Set<String> own =
        new TreeSet<>(binaries.stream().map(p -> p.getFileName().toString()).toList());
    for (Path p : binaries) {
      for (String lib : sharedLibraries(p, own)) {
        if (!Path.of(lib).startsWith(jre)) { // the runtime's own libraries are already in place
          libs.add(lib);
        }
      }
    }
    // debug symbols only cost unpack time at every boot
    for (Path p : binaries) {
      if (p.toString().endsWith(".so")) {
        run(work, "strip", "--strip-unneeded", p.toString());
      }
    }

    Path initramfs = tmp.resolve("initramfs.img");
    try (CpioWriter cpio = new CpioWriter(compressed(initramfs))) {
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
      for (String m : order) {
        String dest = "lib/modules/" + plainModuleName(m);
        parents(cpio, made, dest);
        cpio.file(dest, 0644, stripSignature(moduleBytes(modDir.resolve(m), work)));
      }
      cpio.directory("etc/agentvm/modules.d", 0755);
      for (Map.Entry<String, List<String>> e : lists.entrySet()) {
        StringBuilder list = new StringBuilder();
        e.getValue()
            .forEach(
                m ->
                    list.append(KernelModules.nameOf(m))
                        .append(' ')
                        .append(plainModuleName(m))
                        .append('\n'));
        cpio.file(
            "etc/agentvm/modules.d/" + e.getKey(),
            0644,
            list.toString().getBytes(StandardCharsets.UTF_8));
      }
      for (String lib : libs) {
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
      addTree(cpio, made, jre, "opt/agentvm/jre");
      cpio.file("opt/agentvm/agent.jar", 0644, agentJar);
    }

    Path bare = tmp.resolve("bare-initramfs.img");
    try (CpioWriter cpio = new CpioWriter(compressed(bare))) {
      for (String d : List.of("bin", "dev", "proc")) {
        cpio.directory(d, 0755);
      }
      cpio.charDevice("dev/console", 0600, 5, 1);
      cpio.file("bin/busybox", 0755, busybox);
      cpio.file(
          "init",
          0755,
          ("#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n"
                  + "read up idle < /proc/uptime\necho \"agentvm-init: start uptime=$up\"\n"
                  + "/bin/busybox poweroff -f\n")
              .getBytes(StandardCharsets.UTF_8));
    }

    Path kernelOut = tmp.resolve("kernel");
    if (supportsPvh(kernelRoot, release)) {
      // Under TCG the bzImage spends seconds decompressing itself before the kernel starts; QEMU
      // boots the uncompressed ELF directly through its PVH entry point instead.
      Files.write(kernelOut, extractVmlinux(vmlinuz, work));
      progress.accept("kernel: extracted uncompressed vmlinux for PVH direct boot");
    } else {
      Files.copy(vmlinuz, kernelOut);
    }
    Files.copy(vmlinuz, tmp.resolve("bzImage")); // the stock kernel, for comparison and fallback
    deleteTree(work);
    Properties manifest = new Properties();
    manifest.setProperty("kernelRelease", release);
    manifest.setProperty("kernelPackage", kernelPkg + "=" + kernelVer);
    manifest.setProperty("busybox", busyboxVer);
    manifest.setProperty("java", Runtime.version().toString());
    manifest.setProperty("compression", compression.name());
    manifest.setProperty("modules", String.join(" ", order));
    manifest.setProperty("builtAt", Instant.now().toString());
    try (OutputStream o = Files.newOutputStream(tmp.resolve("manifest.properties"))) {
      manifest.store(o, "agent-vm micro image");
    }
    try (Stream<Path> s = Files.list(tmp)) {
      for (Path p : s.toList()) {
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rw-r--r--"));
      }
    }
  }

  private OutputStream compressed(Path file) throws IOException {
    OutputStream raw = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16);
    return compression == Compression.GZIP ? new GZIPOutputStream(raw, 1 << 16) : raw;
  }

  private static MicroImage load(Path dir) throws IOException {
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

  private static final byte[] SIG_MARKER =
      "~Module signature appended~\n".getBytes(StandardCharsets.US_ASCII);

  /**
   * Removes the signature the distribution appended to a kernel module. The kernel checks a present
   * signature on every load even when it does not enforce them, which under TCG costs ~0.2 s per
   * module; without one it loads the module and notes the kernel as tainted once.
   */
  static byte[] stripSignature(byte[] ko) {
    int n = ko.length;
    int m = SIG_MARKER.length;
    if (n < m + 12 || !java.util.Arrays.equals(ko, n - m, n, SIG_MARKER, 0, m)) {
      return ko;
    }
    // struct module_signature { u8 algo, hash, id_type, signer_len, key_id_len, pad[3]; be32
    // sig_len }
    int info = n - m - 12;
    int signerLen = ko[info + 3] & 0xFF;
    int keyIdLen = ko[info + 4] & 0xFF;
    long sigLen =
        (ko[info + 8] & 0xFFL) << 24
            | (ko[info + 9] & 0xFF) << 16
            | (ko[info + 10] & 0xFF) << 8
            | (ko[info + 11] & 0xFF);
    long keep = info - sigLen - signerLen - keyIdLen;
    if (keep <= 0) {
      return ko;
    }
    return java.util.Arrays.copyOf(ko, (int) keep);
  }

  private static String plainModuleName(String path) {
    return path.replaceAll("\\.(xz|zst|gz)$", "");
  }

  private static boolean supportsPvh(Path kernelRoot, String release) throws IOException {
    Path config = kernelRoot.resolve("boot/config-" + release);
    return Files.isRegularFile(config) && Files.readAllLines(config).contains("CONFIG_PVH=y");
  }

  /** Finds the compressed kernel inside a bzImage and decompresses it to the ELF vmlinux. */
  static byte[] extractVmlinux(Path bzImage, Path work) throws IOException {
    byte[] b = Files.readAllBytes(bzImage);
    String[][] formats = {{"xz", "fd377a585a00"}, {"zstd", "28b52ffd"}, {"gzip", "1f8b08"}};
    for (String[] f : formats) {
      byte[] magic = HexFormat.of().parseHex(f[1]);
      for (int at = indexOf(b, magic, 0); at >= 0; at = indexOf(b, magic, at + 1)) {
        Path slice = work.resolve("kernel-payload");
        Files.write(slice, java.util.Arrays.copyOfRange(b, at, b.length));
        byte[] out;
        try {
          out =
              f[0].equals("xz")
                  ? runForBytes(work, "xz", "-dc", "--single-stream", slice.toString())
                  : runForBytes(
                      work, "sh", "-c", f[0] + " -dc < '" + slice + "' 2>/dev/null; true");
        } catch (ImageBuildException e) {
          continue; // a false magic match: try the next one
        }
        if (out.length > 4 && out[0] == 0x7f && out[1] == 'E' && out[2] == 'L' && out[3] == 'F') {
          return out;
        }
      }
    }
    throw new ImageBuildException("no compressed ELF kernel found inside " + bzImage);
  }

  private static int indexOf(byte[] hay, byte[] needle, int from) {
    outer:
    for (int i = from; i <= hay.length - needle.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  private static byte[] moduleBytes(Path module, Path work) throws IOException {
    String n = module.getFileName().toString();
    if (n.endsWith(".ko")) {
      return Files.readAllBytes(module);
    }
    String tool =
        n.endsWith(".xz") ? "xz" : n.endsWith(".zst") ? "zstd" : n.endsWith(".gz") ? "gzip" : null;
    if (tool == null) {
      throw new ImageBuildException("unknown module format: " + module);
    }
    return runForBytes(work, tool, "-dc", module.toString());
  }

  private static Path findModulesBase(Path root) throws ImageBuildException {
    for (String c : List.of("lib/modules", "usr/lib/modules")) {
      if (Files.isDirectory(root.resolve(c))) {
        return root.resolve(c);
      }
    }
    throw new ImageBuildException("kernel package has no lib/modules");
  }

  private static final Pattern LDD_LINE = Pattern.compile("(?:=>\\s*)?(/\\S+)\\s+\\(0x");

  /** The absolute paths of the shared libraries (and loader) a binary needs, from {@code ldd}. */
  private static List<String> sharedLibraries(Path binary, Set<String> provided)
      throws IOException {
    String out =
        new String(
            runForBytes(binary.getParent(), "ldd", binary.toString()), StandardCharsets.UTF_8);
    List<String> libs = new ArrayList<>();
    for (String line : out.split("\n")) {
      if (line.contains("not found") && !provided.contains(line.trim().split("\\s+")[0])) {
        throw new ImageBuildException(binary + " needs a library the host lacks: " + line.trim());
      }
      Matcher m = LDD_LINE.matcher(line);
      if (m.find()) {
        libs.add(m.group(1));
      }
    }
    return libs;
  }

  /** A hash of apt's package lists (names, sizes, times): answers derived from them stay valid. */
  static String aptListsFingerprint() throws IOException {
    StringBuilder fp = new StringBuilder();
    Path lists = Path.of("/var/lib/apt/lists");
    if (Files.isDirectory(lists)) {
      try (Stream<Path> s = Files.list(lists)) {
        for (Path p :
            s.filter(p -> p.getFileName().toString().contains("_Packages")).sorted().toList()) {
          fp.append(p.getFileName())
              .append(' ')
              .append(Files.size(p))
              .append(' ')
              .append(Files.getLastModifiedTime(p).toMillis())
              .append('\n');
        }
      }
    }
    return sha256(fp.toString().getBytes(StandardCharsets.UTF_8));
  }

  /**
   * The kernel package, its version and the busybox-static version. apt-cache takes over a second a
   * call here, so the answer is remembered against a fingerprint of apt's package lists.
   */
  private String[] resolvePackages() throws IOException {
    String key = aptListsFingerprint();
    Path memo = cacheRoot.resolve("apt-resolution.properties");
    Properties p = new Properties();
    if (Files.isRegularFile(memo)) {
      try (InputStream in = Files.newInputStream(memo)) {
        p.load(in);
      }
      if (key.equals(p.getProperty("lists")) && p.getProperty("busybox") != null) {
        return new String[] {
          p.getProperty("kernelPackage"), p.getProperty("kernelVersion"), p.getProperty("busybox")
        };
      }
    }
    String kernelPkg = kernelPackage();
    String[] r = {kernelPkg, packageVersion(kernelPkg), packageVersion("busybox-static")};
    p.setProperty("lists", key);
    p.setProperty("kernelPackage", r[0]);
    p.setProperty("kernelVersion", r[1]);
    p.setProperty("busybox", r[2]);
    Path tmp = Files.createTempFile(cacheRoot, ".apt-resolution", ".tmp");
    try (OutputStream out = Files.newOutputStream(tmp)) {
      p.store(out, "package versions resolved by apt-cache, valid while apt's lists are unchanged");
    }
    Files.move(tmp, memo, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    return r;
  }

  private static String kernelPackage() throws IOException {
    String show = aptShow("linux-image-amd64");
    Matcher m =
        Pattern.compile("(?m)^Depends:.*?\\b(linux-image-[0-9][^\\s,(]*-amd64)\\b").matcher(show);
    if (!m.find()) {
      throw new ImageBuildException(
          "cannot find the kernel package linux-image-amd64 depends on:\n" + show);
    }
    return m.group(1);
  }

  private static String packageVersion(String pkg) throws IOException {
    Matcher m = Pattern.compile("(?m)^Version:\\s*(\\S+)").matcher(aptShow(pkg));
    if (!m.find()) {
      throw new ImageBuildException("no version for package " + pkg);
    }
    return m.group(1);
  }

  static String aptShow(String pkg) throws IOException {
    try {
      return new String(
          runForBytes(Path.of("/"), "apt-cache", "show", "--no-all-versions", pkg),
          StandardCharsets.UTF_8);
    } catch (ImageBuildException e) {
      throw new ImageBuildException(
          "apt-cache knows no package "
              + pkg
              + ": the package lists are missing or stale; run 'apt-get update' (scripts/setup-host.sh does)",
          e);
    }
  }

  /** Downloads a package into the deb cache once; later builds reuse the file. */
  Path download(Path debs, String pkg, String version) throws IOException {
    String safeVersion = version.replace(':', '%');
    Path target = debs.resolve(pkg + "_" + safeVersion + ".deb");
    if (Files.isRegularFile(target)) {
      return target;
    }
    Path tmp = Files.createTempDirectory(debs, ".dl-");
    try {
      progress.accept("apt-get download " + pkg + "=" + version);
      run(tmp, "apt-get", "download", "-q", pkg + "=" + version);
      Path got;
      try (Stream<Path> s = Files.list(tmp)) {
        got =
            s.filter(p -> p.toString().endsWith(".deb"))
                .findFirst()
                .orElseThrow(
                    () -> new ImageBuildException("apt-get download " + pkg + " produced no .deb"));
      }
      try {
        Files.move(got, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (FileAlreadyExistsException raced) {
        // another builder downloaded the same file: keep theirs
      }
      return target;
    } finally {
      deleteTree(tmp);
    }
  }

  static void extract(Path deb, Path into) throws IOException {
    mkdirs(into);
    run(into, "dpkg-deb", "-x", deb.toString(), into.toString());
  }

  /** The agent jar: the guest agent and protocol classes only, with fixed timestamps. */
  static byte[] agentJar() throws IOException {
    Map<String, byte[]> entries = new TreeMap<>();
    collectClasses(GuestAgent.class, "dev/agentvm/guest/agent/", entries);
    collectClasses(Frame.class, "dev/agentvm/protocol/", entries);
    Manifest mf = new Manifest();
    mf.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
    mf.getMainAttributes().put(Attributes.Name.MAIN_CLASS, GuestAgent.class.getName());
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    FileTime fixed = FileTime.from(Instant.parse("1980-01-01T00:00:00Z").plus(Duration.ofDays(1)));
    try (JarOutputStream jar = new JarOutputStream(bytes)) {
      JarEntry m = new JarEntry(JarFile.MANIFEST_NAME);
      m.setLastModifiedTime(fixed);
      jar.putNextEntry(m);
      mf.write(jar);
      for (Map.Entry<String, byte[]> e : entries.entrySet()) {
        JarEntry je = new JarEntry(e.getKey());
        je.setLastModifiedTime(fixed);
        jar.putNextEntry(je);
        jar.write(e.getValue());
      }
    }
    return bytes.toByteArray();
  }

  private static void collectClasses(Class<?> anchor, String prefix, Map<String, byte[]> into)
      throws IOException {
    Path src;
    try {
      src = Path.of(anchor.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (URISyntaxException e) {
      throw new IOException(e);
    }
    if (Files.isDirectory(src)) {
      Path base = src.resolve(prefix);
      try (Stream<Path> s = Files.walk(base)) {
        for (Path p : s.filter(Files::isRegularFile).toList()) {
          into.put(
              prefix + base.relativize(p).toString().replace('\\', '/'), Files.readAllBytes(p));
        }
      }
    } else {
      try (JarFile jar = new JarFile(src.toFile())) {
        for (JarEntry e : java.util.Collections.list(jar.entries())) {
          if (!e.isDirectory() && e.getName().startsWith(prefix)) {
            try (InputStream in = jar.getInputStream(e)) {
              into.put(e.getName(), in.readAllBytes());
            }
          }
        }
      }
    }
    if (into.keySet().stream().noneMatch(k -> k.startsWith(prefix))) {
      throw new ImageBuildException("no classes under " + prefix + " in " + src);
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

  static void run(Path dir, String... cmd) throws IOException {
    runForBytes(dir, cmd);
  }

  static byte[] runForBytes(Path dir, String... cmd) throws IOException {
    Path err = Files.createTempFile("agentvm-cmd-", ".err");
    try {
      Process p =
          new ProcessBuilder(cmd).directory(dir.toFile()).redirectError(err.toFile()).start();
      p.getOutputStream().close();
      byte[] out = p.getInputStream().readAllBytes();
      if (!p.waitFor(10, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new ImageBuildException(String.join(" ", cmd) + " did not finish in 10 minutes");
      }
      if (p.exitValue() != 0) {
        throw new ImageBuildException(
            String.join(" ", cmd)
                + " failed with exit code "
                + p.exitValue()
                + ": "
                + Files.readString(err).trim());
      }
      return out;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ImageBuildException("interrupted while running " + cmd[0], e);
    } catch (java.io.IOException e) {
      if (e instanceof ImageBuildException) {
        throw e;
      }
      throw new ImageBuildException(
          "cannot run "
              + cmd[0]
              + " (is it installed? scripts/setup-host.sh installs it): "
              + e.getMessage(),
          e);
    } finally {
      Files.deleteIfExists(err);
    }
  }

  /** Images kept besides the newest; older ones (from earlier inputs) are deleted. */
  static final int KEEP_OLD_IMAGES = 2;

  private void pruneOldImages(Path images, Path current) throws IOException {
    pruneOld(images, "micro-", current, KEEP_OLD_IMAGES, progress);
  }

  /** Deletes directories named {@code prefix*} beside {@code current}, keeping the newest few. */
  static void pruneOld(
      Path images, String prefix, Path current, int keep, Consumer<String> progress)
      throws IOException {
    List<Path> old;
    try (Stream<Path> s = Files.list(images)) {
      old =
          s.filter(p -> p.getFileName().toString().startsWith(prefix) && !p.equals(current))
              .sorted(
                  Comparator.comparing(
                          (Path p) -> {
                            try {
                              return Files.getLastModifiedTime(p);
                            } catch (IOException e) {
                              return FileTime.fromMillis(0);
                            }
                          })
                      .reversed())
              .toList();
    }
    for (Path p : old.subList(Math.min(keep, old.size()), old.size())) {
      progress.accept("removing old image " + p);
      deleteTree(p);
    }
  }

  static void removeStaleTemps(Path images) throws IOException {
    try (Stream<Path> s = Files.list(images)) {
      for (Path p : s.filter(p -> p.getFileName().toString().startsWith(".tmp-")).toList()) {
        deleteTree(p); // we hold the build lock: no live build owns these
      }
    }
  }

  private static void mkdirs(Path dir) throws IOException {
    Files.createDirectories(dir);
  }

  static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  static String sha256(byte[] b) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
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
