package dev.agentvm.internal;

import java.nio.file.Path;

/**
 * Where agent-vm keeps per-host state and its caches.
 *
 * <p>State: {@link Setting#STATE_DIR}, else {@code /var/lib/agent-vm} for root (libvirt's QEMU user
 * must reach the files, so nothing under {@code /root}), else {@code $XDG_STATE_HOME/agent-vm} or
 * {@code ~/.local/state/agent-vm}. Caches: {@link Setting#CACHE_DIR}, else {@code
 * /var/cache/agent-vm} for root, else {@code $XDG_CACHE_HOME/agent-vm} or {@code
 * ~/.cache/agent-vm}. Each VM gets {@code <state>/run/<name>/}, removed when the VM is closed.
 */
public final class AgentVmPaths {
  private AgentVmPaths() {}

  /** The state root. */
  public static Path stateRoot() {
    return root(Setting.STATE_DIR, "/var/lib/agent-vm", "XDG_STATE_HOME", ".local/state");
  }

  /** The cache root. */
  public static Path cacheRoot() {
    return root(Setting.CACHE_DIR, "/var/cache/agent-vm", "XDG_CACHE_HOME", ".cache");
  }

  /** The runtime directory of one VM. */
  public static Path runDir(String vmName) {
    return stateRoot().resolve("run").resolve(vmName);
  }

  /**
   * Where records of another libvirt host go under {@code base}: {@code base/.hosts/<the first 16
   * hex digits of the SHA-256 of its URI>}, so that two hosts' objects of the same name never share
   * a record.
   */
  public static Path forHost(Path base, String uri) {
    String hash = Hashing.sha256Hex(uri.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    return base.resolve(".hosts").resolve(hash.substring(0, 16));
  }

  /**
   * The libvirt host a URI names, for records kept per host: scheme, host and port in lower case
   * and the path, without user, query or fragment ({@code qemu+tls://h/system?pkipath=/x} and
   * {@code qemu+tls://H/system} are one host). A URI that does not parse is its own identity.
   */
  public static String hostIdentity(String uri) {
    java.net.URI u;
    try {
      u = new java.net.URI(uri);
    } catch (java.net.URISyntaxException e) {
      return uri;
    }
    if (u.getScheme() == null || (u.getRawAuthority() == null && u.getRawPath() == null)) {
      return uri;
    }
    String host = u.getHost() == null ? "" : u.getHost().toLowerCase(java.util.Locale.ROOT);
    String port = u.getPort() < 0 ? "" : ":" + u.getPort();
    String path = u.getRawPath() == null ? "" : u.getRawPath();
    return u.getScheme().toLowerCase(java.util.Locale.ROOT) + "://" + host + port + path;
  }

  private static Path root(Setting setting, String forRoot, String xdgVariable, String underHome) {
    return setting
        .value()
        .map(Path::of)
        .orElseGet(
            () -> {
              if ("root".equals(System.getProperty("user.name"))) {
                return Path.of(forRoot);
              }
              String xdg = System.getenv(xdgVariable);
              return (xdg != null && !xdg.isBlank()
                      ? Path.of(xdg)
                      : Path.of(System.getProperty("user.home")).resolve(underHome))
                  .resolve("agent-vm");
            });
  }
}
