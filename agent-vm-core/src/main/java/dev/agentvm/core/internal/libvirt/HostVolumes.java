package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.AgentVmException;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Setting;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;
import org.libvirt.Connect;
import org.libvirt.LibvirtException;
import org.libvirt.StoragePool;
import org.libvirt.StorageVol;
import org.libvirt.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The files of VMs on a libvirt host that does not share this machine's file system: one directory
 * storage pool ({@value #POOL}) on the host holds the boot images and read-only disks, uploaded
 * through libvirt streams once per content (named by SHA-256, so a second VM, or a second client,
 * finds them there), and each VM's console log. Nothing here assumes the client can see a host
 * path.
 *
 * <p>An image counts only once its ready marker (a volume named after it, {@value #READY_SUFFIX})
 * exists, made after the last byte arrived: a half-sent image, from a client that died or a
 * transfer that failed, is never used. A client that finds another's upload under way waits while
 * its bytes keep coming, and takes over an upload that made no progress for {@link #STALLED_UPLOAD}
 * (or {@code agentvm.remote.uploadStallSeconds}).
 */
final class HostVolumes implements dev.agentvm.core.HostStorage {
  private static final Logger LOG = LoggerFactory.getLogger(HostVolumes.class);

  /** The storage pool agent-vm keeps on every remote host. */
  static final String POOL = "agent-vm";

  /** Its directory on the host, where agent-vm defines it (an existing pool keeps its own). */
  static final String DEFAULT_POOL_PATH = "/var/lib/libvirt/agent-vm";

  /** Prefix of staged images (content-addressed, shared by every VM and client of a host). */
  static final String IMAGE_PREFIX = "img-";

  /** Prefix of the pool files sandboxes write (their overlays and memory images). */
  static final String SANDBOX_PREFIX = "sbx.";

  /**
   * Whether a VM may have the pool file {@code name} as a writable qcow2 disk: a qcow2 overlay made
   * by {@link #createOverlay} (a sandbox's included), whose name ends in {@code .qcow2}. Never a
   * staged image, which every VM and client of the host shares, nor a memory image (which {@link
   * LibvirtDomain#saveMemory} never names so) or a log.
   */
  static boolean writableInPlace(String name) {
    return name.endsWith(QCOW2_SUFFIX) && !name.startsWith(IMAGE_PREFIX);
  }

  /** The suffix of the pool files a VM may write ({@link #writableInPlace}). */
  static final String QCOW2_SUFFIX = ".qcow2";

  /** The marker that an image arrived whole. */
  static final String READY_SUFFIX = ".ready";

  static final String CONSOLE_SUFFIX = ".console.log";

  /** virtlogd keeps this many rotated console logs by default ({@code max_backups}). */
  private static final int ROTATED_LOGS = 3;

  /** How long another client's upload may make no progress before it counts as abandoned. */
  static final Duration STALLED_UPLOAD = Duration.ofSeconds(15);

  /** The stall threshold: {@link Setting#REMOTE_UPLOAD_STALL} or {@link #STALLED_UPLOAD}. */
  static Duration stalledUpload(Optional<String> setting) {
    if (setting.isEmpty()) {
      return STALLED_UPLOAD;
    }
    String v = setting.get();
    long seconds;
    try {
      seconds = Long.parseLong(v);
    } catch (NumberFormatException e) {
      seconds = 0;
    }
    if (seconds < 1 || seconds > 86_400) {
      throw new IllegalArgumentException(
          Setting.REMOTE_UPLOAD_STALL.property()
              + " must be a whole number of seconds from 1 to 86400, was '"
              + LogText.clean(v)
              + "'");
    }
    return Duration.ofSeconds(seconds);
  }

  private static final int CHUNK = 1 << 20;

  private final LibvirtSession session;
  private final Map<String, Object> locks = new ConcurrentHashMap<>();
  private final Map<Path, Digest> digests = new ConcurrentHashMap<>();

  /** Contents (SHA-256) this client staged, or found staged, on the host. */
  private final java.util.Set<String> stagedHere = ConcurrentHashMap.newKeySet();

  private final AtomicLong uploads = new AtomicLong();
  private final AtomicLong uploadedBytes = new AtomicLong();
  private final Object poolLock = new Object();
  private volatile @Nullable String poolPath;

  private record Digest(long size, FileTime modified, String sha256) {}

  HostVolumes(LibvirtSession session) {
    this.session = session;
  }

  /**
   * Whether a libvirt URI reaches a daemon on this machine, which sees this machine's files: no
   * host part and a local transport ({@code qemu:///system}, {@code qemu+unix:///system}). Anything
   * else ({@code qemu+ssh://h/system}, {@code qemu+tcp://...}, even to {@code localhost}) is
   * treated as another host.
   */
  static boolean isLocal(String uri) {
    java.net.URI u;
    try {
      u = new java.net.URI(uri);
    } catch (java.net.URISyntaxException e) {
      return false;
    }
    String scheme = u.getScheme() == null ? "" : u.getScheme();
    int plus = scheme.indexOf('+');
    String transport = plus < 0 ? "" : scheme.substring(plus + 1);
    boolean noHost =
        u.getHost() == null && (u.getAuthority() == null || u.getAuthority().isEmpty());
    return noHost && (transport.isEmpty() || transport.equals("unix"));
  }

  /** Uploads so far (a staged image found on the host costs none). */
  long uploads() {
    return uploads.get();
  }

  long uploadedBytes() {
    return uploadedBytes.get();
  }

  /**
   * Domain XML for the host: boot images and read-only disks replaced by their staged volumes, the
   * console log in the pool (its volume made now, so it can be read and removed without refreshing
   * the pool), the agent socket left for libvirt to place.
   *
   * @throws HypervisorException if the VM needs what a remote host cannot have yet (a writable
   *     disk, a qcow2 disk, or a share of this machine's directories), or an upload failed
   */
  String placeOnHost(String xml) {
    String dir = poolPath();
    String placed =
        DomainXmlWriter.forRemoteHost(
            xml,
            local -> stageFile(Path.of(local)),
            n -> dir + "/" + n + CONSOLE_SUFFIX,
            session.uri(),
            f -> poolName(f).isPresent(),
            f -> poolName(f).filter(HostVolumes::writableInPlace).isPresent());
    DomainXmlReader.consoleLogFile(placed)
        .ifPresent(log -> createEmpty(log.substring(log.lastIndexOf('/') + 1), "0600"));
    return placed;
  }

  /**
   * The path on the host of {@code local}'s content: the staged volume, uploaded now if the host
   * does not have it whole.
   */
  String stageFile(Path local) {
    String sha;
    long size;
    long virtualSize;
    try {
      size = Files.size(local);
      sha = sha256(local);
      virtualSize = qcow2VirtualSize(local);
    } catch (IOException e) {
      throw new HypervisorException("cannot read " + local + " to send it to " + where(), e);
    }
    String vol = IMAGE_PREFIX + sha.substring(0, 40) + "-" + safeName(local);
    Duration stalled = stalledUpload(Setting.REMOTE_UPLOAD_STALL.value());
    synchronized (locks.computeIfAbsent(vol, k -> new Object())) {
      long lastAllocation = -1;
      long progressAt = System.nanoTime();
      while (true) {
        Optional<VolumeInfo> image = info(vol);
        boolean ready = info(vol + READY_SUFFIX).isPresent();
        if (image.isPresent() && ready) {
          // libvirt reports a qcow2 file's virtual size once it looked at the pool again
          long capacity = image.get().capacity();
          if (capacity != size && capacity != virtualSize) {
            throw new HypervisorException(
                "volume "
                    + vol
                    + " at "
                    + where()
                    + " has "
                    + image.get().capacity()
                    + " bytes, not "
                    + size
                    + "; delete it there to send it again",
                null);
          }
          stagedHere.add(sha);
          return image.get().path();
        }
        if (image.isEmpty()) {
          if (ready) {
            deleteQuietly(vol + READY_SUFFIX); // a marker whose image someone removed
          }
          Optional<String> sent = upload(local, size, vol);
          if (sent.isPresent()) {
            stagedHere.add(sha);
            return sent.get();
          }
          sleep(200); // another client began the same upload first
          continue;
        }
        // another client is sending it, or died doing so: wait while its bytes keep coming
        if (image.get().allocation() != lastAllocation) {
          lastAllocation = image.get().allocation();
          progressAt = System.nanoTime();
        } else if (System.nanoTime() - progressAt > stalled.toNanos()) {
          LOG.warn(
              "{} at {}: an upload made no progress for {}; sending it again",
              vol,
              where(),
              stalled);
          deleteQuietly(vol);
          lastAllocation = -1;
          continue;
        }
        sleep(500);
      }
    }
  }

  /**
   * Creates volume {@code vol} and sends {@code local} into it, then its ready marker; empty if the
   * volume already existed (another client's upload). A failed upload deletes its volume.
   */
  private Optional<String> upload(Path local, long size, String vol) {
    long t0 = System.nanoTime();
    try (StreamConnection c = new StreamConnection(session.uri())) {
      StorageVol v;
      try {
        v = c.pool.storageVolCreateXML(DomainXmlWriter.rawVolume(vol, size, "0644"), 0);
      } catch (LibvirtException e) {
        if (c.exists(vol)) {
          return Optional.empty();
        }
        throw e;
      }
      boolean whole = false;
      try {
        Stream s = c.connect.streamNew(0);
        try {
          v.upload(s, 0, size, 0);
          send(local, size, s);
          s.finish();
        } catch (IOException | LibvirtException | RuntimeException e) {
          abort(s);
          throw e;
        } finally {
          s.free();
        }
        // all our bytes still there: a client that took our stalled upload over (deleted and made
        // the volume again) is not vouched for by our marker before its bytes are all in
        if (allocation(v) < size) {
          LOG.warn(
              "{} at {} was taken over while it was sent; leaving it to the other client",
              vol,
              where());
          whole = true; // not ours to delete any more
          return Optional.empty();
        }
        c.pool
            .storageVolCreateXML(DomainXmlWriter.rawVolume(vol + READY_SUFFIX, 0, "0644"), 0)
            .free();
        whole = true;
        uploads.incrementAndGet();
        uploadedBytes.addAndGet(size);
        LOG.info(
            "sent {} ({} MB) to {} in {} ms",
            local.getFileName(),
            size / 1_000_000,
            where(),
            (System.nanoTime() - t0) / 1_000_000);
        return Optional.of(v.getPath());
      } finally {
        if (!whole) {
          try {
            v.delete(0);
          } catch (LibvirtException e) {
            LOG.warn("cannot delete the failed upload {} at {}: {}", vol, where(), e.getMessage());
          }
        }
        v.free();
      }
    } catch (IOException e) {
      throw new HypervisorException("sending " + local + " to " + where() + " failed: " + e, e);
    } catch (LibvirtException e) {
      throw LibvirtErrors.translate(session.uri(), "sending " + local + " to the host", e);
    }
  }

  /** The virtual size a qcow2 file's header gives; -1 for any other file. */
  static long qcow2VirtualSize(Path local) throws IOException {
    try (FileChannel ch = FileChannel.open(local, StandardOpenOption.READ)) {
      ByteBuffer h = ByteBuffer.allocate(32); // big-endian, as qcow2 is
      while (h.hasRemaining()) {
        if (ch.read(h) < 0) {
          return -1;
        }
      }
      return h.getInt(0) == 0x514649fb ? h.getLong(24) : -1; // "QFI\xfb"
    }
  }

  /** Bytes allocated to the volume now; -1 if it is gone. */
  private static long allocation(StorageVol v) {
    try {
      return v.getInfo().allocation;
    } catch (LibvirtException e) {
      return -1;
    }
  }

  private static void send(Path local, long size, Stream s) throws IOException, LibvirtException {
    ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
    long sent = 0;
    try (FileChannel in = FileChannel.open(local, StandardOpenOption.READ)) {
      while (sent < size) {
        buf.clear();
        if (size - sent < CHUNK) {
          buf.limit((int) (size - sent));
        }
        int n = in.read(buf);
        if (n < 0) {
          throw new IOException(local + " became shorter while it was sent");
        }
        buf.flip();
        while (buf.hasRemaining()) {
          s.write(buf);
        }
        sent += n;
      }
    }
  }

  /**
   * At most the last {@code maxBytes} of a file in the pool (a console log), or empty if the host
   * has no such file.
   */
  Optional<byte[]> tail(String hostPath, int maxBytes) {
    String dir = poolPath() + "/";
    if (!hostPath.startsWith(dir) || hostPath.indexOf('/', dir.length()) >= 0) {
      return Optional.empty(); // not one of ours
    }
    String volName = hostPath.substring(dir.length());
    try (StreamConnection c = new StreamConnection(session.uri())) {
      StorageVol vol;
      try {
        vol = c.pool.storageVolLookupByName(volName);
      } catch (LibvirtException e) {
        return Optional.empty();
      }
      try {
        long size = vol.getInfo().capacity; // reads the file's size now
        long from = Math.max(0, size - maxBytes);
        int len = (int) (size - from);
        byte[] out = new byte[len];
        if (len == 0) {
          return Optional.of(out);
        }
        Stream s = c.connect.streamNew(0);
        try {
          vol.download(s, from, len, 0);
          int got = receiveInto(s, out);
          if (got == len) {
            s.finish();
          } else {
            abort(s);
          }
          return Optional.of(got == len ? out : java.util.Arrays.copyOf(out, got));
        } catch (LibvirtException | RuntimeException e) {
          abort(s);
          throw e;
        } finally {
          s.free();
        }
      } finally {
        vol.free();
      }
    } catch (LibvirtException e) {
      LOG.debug("cannot read {} at {}: {}", hostPath, where(), e.getMessage());
      return Optional.empty();
    }
  }

  private static final java.util.regex.Pattern NAME =
      java.util.regex.Pattern.compile("[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}");

  private static String checkName(String name) {
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "pool file names are 1-200 of [A-Za-z0-9._-], not starting with '.': "
              + LogText.clean(name));
    }
    return name;
  }

  @Override
  public Path path(String name) {
    return Path.of(poolPath(), checkName(name));
  }

  @Override
  public Path stage(Path local) {
    return Path.of(stageFile(local));
  }

  @Override
  public boolean knowsStaged(Path file) {
    Path local = file.toAbsolutePath(); // as the domain XML names it, and stage() keys it
    Digest d = digests.get(local);
    if (d == null || !stagedHere.contains(d.sha256())) {
      return false;
    }
    try {
      return Files.size(local) == d.size() && Files.getLastModifiedTime(local).equals(d.modified());
    } catch (IOException e) {
      return false;
    }
  }

  /** The pool file's name if {@code hostPath} is a file directly in the pool. */
  Optional<String> poolName(String hostPath) {
    String dir = poolPath() + "/";
    if (!hostPath.startsWith(dir)) {
      return Optional.empty();
    }
    String n = hostPath.substring(dir.length());
    return NAME.matcher(n).matches() ? Optional.of(n) : Optional.empty();
  }

  @Override
  public Path createOverlay(String name, Path backing, long capacityBytes) {
    checkName(name);
    if (capacityBytes < 1) {
      throw new IllegalArgumentException("capacity must be positive, was " + capacityBytes);
    }
    if (poolName(backing.toString()).isEmpty()) {
      throw new IllegalArgumentException(
          "the backing file " + backing + " is not in the pool " + POOL + " at " + where());
    }
    String xml = DomainXmlWriter.qcow2Overlay(name, capacityBytes, backing.toString());
    String made =
        withPool(
            "create overlay " + name,
            p -> {
              StorageVol v = p.storageVolCreateXML(xml, 0);
              try {
                return v.getPath();
              } finally {
                v.free();
              }
            });
    return Path.of(made);
  }

  @Override
  public void delete(String name) {
    checkName(name);
    if (!deleteOrFail(name)) {
      refresh(); // files libvirt made outside the pool (memory images) are unknown until it looks
      deleteOrFail(name);
    }
  }

  @Override
  public java.util.List<String> names(String prefix) {
    refresh();
    return withPool(
        "list volumes",
        p -> {
          java.util.List<String> out = new java.util.ArrayList<>();
          for (String n : p.listVolumes()) {
            if (n.startsWith(prefix)) {
              out.add(n);
            }
          }
          return out;
        });
  }

  /** How long a refresh waits for volumes under construction (libvirt refuses one meanwhile). */
  private static final Duration REFRESH_WAIT = Duration.ofSeconds(60);

  /**
   * Has libvirt look at the pool's directory again. libvirt refuses while any volume of the pool is
   * being made ("asynchronous jobs running": an upload, an overlay's qemu-img, this or another
   * client's): tried again until {@link #REFRESH_WAIT} passed.
   */
  private void refresh() {
    poolPath();
    long end = System.nanoTime() + REFRESH_WAIT.toNanos();
    long pause = 50;
    while (true) {
      try {
        withPool(
            "refresh pool " + POOL,
            p -> {
              p.refresh(0);
              return Boolean.TRUE;
            });
        return;
      } catch (HypervisorException e) {
        if (!String.valueOf(e.getMessage()).contains("asynchronous jobs running")
            || System.nanoTime() > end) {
          throw e;
        }
      }
      sleep(pause);
      pause = Math.min(1000, pause * 2);
    }
  }

  /** Deletes a volume the pool knows; false if it knows none of that name. */
  private boolean deleteOrFail(String volName) {
    return withPool(
        "delete volume " + volName,
        p -> {
          StorageVol v;
          try {
            v = p.storageVolLookupByName(volName);
          } catch (LibvirtException e) {
            if (e.getError() != null
                && e.getError().getCode() == org.libvirt.Error.ErrorNumber.VIR_ERR_NO_STORAGE_VOL) {
              return Boolean.FALSE;
            }
            throw e;
          }
          try {
            v.delete(0);
          } finally {
            v.free();
          }
          return Boolean.TRUE;
        });
  }

  /**
   * Writes {@code xml} into the memory image at {@code hostPath} (a file of the pool) in place of
   * its definition: its header and XML area downloaded, rewritten ({@link SaveImageHeader}) and
   * uploaded over the same bytes; the migration stream after them is not touched.
   */
  void rewriteSavedXml(String hostPath, String xml) {
    String volName =
        poolName(hostPath)
            .orElseThrow(
                () ->
                    new dev.agentvm.core.SnapshotException(
                        hostPath
                            + " is not a memory image in the pool "
                            + POOL
                            + " at "
                            + where()));
    if (info(volName).isEmpty()) {
      refresh(); // a memory image libvirt saved is unknown to the pool until it looks
    }
    try (StreamConnection c = new StreamConnection(session.uri())) {
      StorageVol vol = c.pool.storageVolLookupByName(volName);
      try {
        byte[] head = download(c, vol, 0, SaveImageHeader.HEADER);
        int dataLen = SaveImageHeader.dataLength(head, hostPath);
        byte[] all = download(c, vol, 0, SaveImageHeader.HEADER + dataLen);
        byte[] out = SaveImageHeader.rewritten(all, xml, hostPath);
        Stream s = c.connect.streamNew(0);
        try {
          // a volume upload writes over the given range and truncates nothing (libvirt's
          // virStorageBackendVolUploadLocal opens the file without O_TRUNC)
          vol.upload(s, 0, out.length, 0);
          ByteBuffer b = ByteBuffer.wrap(out);
          while (b.hasRemaining()) {
            s.write(b);
          }
          s.finish();
        } catch (IOException | LibvirtException | RuntimeException e) {
          abort(s);
          throw e;
        } finally {
          s.free();
        }
      } finally {
        vol.free();
      }
    } catch (IOException e) {
      throw new HypervisorException("rewriting the definition in " + hostPath + ": " + e, e);
    } catch (LibvirtException e) {
      throw LibvirtErrors.translate(session.uri(), "rewriting the definition in " + hostPath, e);
    }
  }

  /** Fills {@code out} from a download stream; fewer bytes when the stream ends first. */
  private static int receiveInto(Stream s, byte[] out) throws LibvirtException {
    int got = 0;
    byte[] chunk = new byte[Math.max(1, Math.min(CHUNK, out.length))];
    while (got < out.length) {
      int n = s.receive(chunk);
      if (n <= 0) {
        break;
      }
      int take = Math.min(n, out.length - got);
      System.arraycopy(chunk, 0, out, got, take);
      got += take;
    }
    return got;
  }

  /** Exactly {@code len} bytes of {@code vol} from {@code from}. */
  private static byte[] download(StreamConnection c, StorageVol vol, long from, int len)
      throws LibvirtException {
    byte[] out = new byte[len];
    Stream s = c.connect.streamNew(0);
    try {
      vol.download(s, from, len, 0);
      int got = receiveInto(s, out);
      if (got != len) {
        throw new dev.agentvm.core.SnapshotException(
            vol.getName() + " ended after " + got + " of " + len + " bytes");
      }
      s.finish();
      return out;
    } catch (LibvirtException | RuntimeException e) {
      abort(s);
      throw e;
    } finally {
      s.free();
    }
  }

  /** Removes what a VM left in the pool: its console log and the logs virtlogd rotated. */
  void deleteVmFiles(String domainName) {
    String log = domainName + CONSOLE_SUFFIX;
    deleteQuietly(log);
    try {
      // rotated logs are files virtlogd made, unknown to the pool until it looks again
      withPool(
          "refresh pool " + POOL,
          p -> {
            p.refresh(0);
            return Boolean.TRUE;
          });
      for (int i = 0; i < ROTATED_LOGS + 2; i++) {
        deleteQuietly(log + "." + i);
      }
    } catch (AgentVmException e) {
      LOG.debug(
          "cannot look for rotated logs of {} at {}: {}", domainName, where(), e.getMessage());
    }
  }

  /** Like {@link #deleteOrFail}, a failure logged rather than thrown. */
  private void deleteQuietly(String volName) {
    try {
      deleteOrFail(volName);
    } catch (AgentVmException e) {
      LOG.warn("cannot remove {} at {}: {}", volName, where(), e.getMessage());
    }
  }

  private void createEmpty(String volName, String mode) {
    withPool(
        "create volume " + volName,
        p -> {
          try {
            p.storageVolCreateXML(DomainXmlWriter.rawVolume(volName, 0, mode), 0).free();
          } catch (LibvirtException e) {
            if (!exists(p, volName)) {
              throw e;
            }
          }
          return Boolean.TRUE;
        });
  }

  /** A call with the pool looked up on the session's connection, freed after. */
  @FunctionalInterface
  private interface PoolCall<T> {
    T call(StoragePool pool) throws LibvirtException;
  }

  private <T> T withPool(String operation, PoolCall<T> body) {
    return session.call(
        operation,
        () -> {
          StoragePool p = session.connect().storagePoolLookupByName(POOL);
          try {
            return body.call(p);
          } finally {
            p.free();
          }
        });
  }

  private record VolumeInfo(String path, long capacity, long allocation) {}

  private Optional<VolumeInfo> info(String volName) {
    poolPath();
    return withPool(
        "look up volume " + volName,
        p -> {
          StorageVol v;
          try {
            v = p.storageVolLookupByName(volName);
          } catch (LibvirtException e) {
            if (e.getError() != null
                && e.getError().getCode() == org.libvirt.Error.ErrorNumber.VIR_ERR_NO_STORAGE_VOL) {
              return Optional.<VolumeInfo>empty();
            }
            throw e; // any other failure is not "absent": nothing is deleted or sent on it
          }
          try {
            org.libvirt.StorageVolInfo i = v.getInfo();
            return Optional.of(new VolumeInfo(v.getPath(), i.capacity, i.allocation));
          } finally {
            v.free();
          }
        });
  }

  private static boolean exists(StoragePool p, String volName) {
    try {
      p.storageVolLookupByName(volName).free();
      return true;
    } catch (LibvirtException e) {
      return false;
    }
  }

  /** The pool's directory on the host; the pool defined and started first if it is not. */
  private String poolPath() {
    String known = poolPath;
    if (known != null) {
      return known;
    }
    synchronized (poolLock) {
      if (poolPath != null) {
        return poolPath;
      }
      String path =
          session.call(
              "prepare pool " + POOL,
              () -> {
                Connect c = session.connect();
                StoragePool p;
                try {
                  p = c.storagePoolLookupByName(POOL);
                } catch (LibvirtException e) {
                  p = definePool(c);
                }
                try {
                  if (p.isActive() == 0) {
                    try {
                      p.create(0);
                    } catch (LibvirtException e) {
                      if (p.isActive() == 0) { // not another client starting it meanwhile
                        throw e;
                      }
                    }
                  }
                  return DomainXmlReader.poolPath(p.getXMLDesc(0));
                } finally {
                  p.free();
                }
              });
      poolPath = path;
      return path;
    }
  }

  private static StoragePool definePool(Connect c) throws LibvirtException {
    StoragePool p;
    try {
      p = c.storagePoolDefineXML(DomainXmlWriter.dirPool(POOL, DEFAULT_POOL_PATH), 0);
    } catch (LibvirtException e) {
      try {
        return c.storagePoolLookupByName(POOL); // another client defined it meanwhile
      } catch (LibvirtException notThere) {
        throw e;
      }
    }
    try {
      p.build(0);
    } catch (LibvirtException e) {
      LOG.debug("building pool {}: {}", POOL, e.getMessage()); // the directory may exist
    }
    p.setAutostart(1);
    LOG.info("made storage pool {} at {} on {}", POOL, DEFAULT_POOL_PATH, c.getHostName());
    return p;
  }

  private String sha256(Path local) throws IOException {
    long size = Files.size(local);
    FileTime modified = Files.getLastModifiedTime(local);
    Digest known = digests.get(local);
    if (known != null && known.size() == size && known.modified().equals(modified)) {
      return known.sha256();
    }
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    byte[] buf = new byte[CHUNK];
    try (InputStream in = Files.newInputStream(local)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
    }
    String hex = HexFormat.of().formatHex(md.digest());
    digests.put(local, new Digest(size, modified, hex));
    return hex;
  }

  /** The file name, reduced to characters a volume name may have. */
  static String safeName(Path local) {
    Path fileName = local.getFileName();
    String n = fileName == null ? "file" : fileName.toString().replaceAll("[^A-Za-z0-9._-]", "_");
    return n.length() > 48 ? n.substring(n.length() - 48) : n;
  }

  private String where() {
    return "libvirt at " + session.uri();
  }

  private static void abort(Stream s) {
    try {
      s.abort();
    } catch (LibvirtException | RuntimeException e) {
      LOG.debug("aborting a stream: {}", e.getMessage());
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new HypervisorException("interrupted while waiting for an upload", e);
    }
  }

  /**
   * A connection of its own for a stream, so a transfer never holds up other calls, with the pool
   * looked up on it; closing frees both (a libvirt object left unfreed keeps its connection open).
   */
  private static final class StreamConnection implements AutoCloseable {
    final Connect connect;
    final StoragePool pool;

    StreamConnection(String uri) throws LibvirtException {
      RemoteReach.check(uri);
      this.connect = RemoteReach.connect(uri, () -> new Connect(uri));
      try {
        connect.setKeepAlive(
            LibvirtSession.KEEPALIVE_INTERVAL_SECONDS, LibvirtSession.KEEPALIVE_MISSES);
        this.pool = connect.storagePoolLookupByName(POOL);
      } catch (LibvirtException | RuntimeException e) {
        connect.close();
        throw e;
      }
    }

    boolean exists(String volName) {
      return HostVolumes.exists(pool, volName);
    }

    @Override
    public void close() {
      try {
        pool.free();
      } catch (LibvirtException e) {
        LOG.debug("freeing a pool: {}", e.getMessage());
      }
      try {
        connect.close();
      } catch (LibvirtException e) {
        LOG.debug("closing a stream connection: {}", e.getMessage());
      }
    }
  }
}
