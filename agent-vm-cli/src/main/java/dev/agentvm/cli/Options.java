package dev.agentvm.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.agentvm.core.LibvirtConnection;
import java.io.PrintWriter;
import java.time.Duration;
import picocli.CommandLine.Option;

/** The libvirt URI every command that talks to libvirt takes. */
final class Options {
  private static final ObjectMapper JSON =
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  @Option(
      names = "--uri",
      description = "libvirt URI (default: $AGENTVM_LIBVIRT_URI or qemu:///system)")
  String uri = LibvirtConnection.defaultUri();

  /** Opens the connection, failing fast: an operator's command should not wait for a daemon. */
  LibvirtConnection connect() {
    return LibvirtConnection.open(uri, Duration.ofSeconds(2));
  }

  /**
   * Whether the URI names this machine (no host part): only then do owners' process ids mean
   * anything here.
   */
  boolean local() {
    return uri.matches("[a-z0-9+]+:///.*");
  }

  static void printJson(PrintWriter out, Object value) {
    try {
      out.println(JSON.writeValueAsString(value));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    out.flush();
  }
}
