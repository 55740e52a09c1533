package dev.agentvm.protocol;

import java.util.List;

/**
 * The guest agent's answer to {@link HelloRequest}.
 *
 * @param version the protocol version the agent chose from the host's range
 * @param agentVersion the guest agent's software version
 * @param capabilities names of optional features the agent offers
 * @param kernelRelease the guest kernel's release string ({@code uname -r})
 * @param initUptimeMillis guest uptime when its init started (kernel boot time), or -1 if unknown
 * @param agentStartUptimeMillis guest uptime when the agent process started, or -1 if unknown
 * @param uptimeMillis guest uptime when this answer was made
 */
public record HelloResponse(
    int version,
    String agentVersion,
    List<String> capabilities,
    String kernelRelease,
    long initUptimeMillis,
    long agentStartUptimeMillis,
    long uptimeMillis) {
  /** Upper bound on capability names, so a hostile peer cannot make us build a huge list. */
  public static final int MAX_CAPABILITIES = 256;

  public HelloResponse {
    capabilities = List.copyOf(capabilities);
    if (capabilities.size() > MAX_CAPABILITIES) {
      throw new IllegalArgumentException("at most " + MAX_CAPABILITIES + " capabilities");
    }
  }

  public byte[] encode() {
    PayloadWriter w =
        new PayloadWriter().u16(version).string(agentVersion).u16(capabilities.size());
    capabilities.forEach(w::string);
    return w.string(kernelRelease)
        .i64(initUptimeMillis)
        .i64(agentStartUptimeMillis)
        .i64(uptimeMillis)
        .toByteArray();
  }

  public static HelloResponse decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int version = r.u16();
    String agent = r.string();
    int n = r.u16();
    if (n > MAX_CAPABILITIES) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD, n + " capabilities, at most " + MAX_CAPABILITIES);
    }
    String[] caps = new String[n];
    for (int i = 0; i < n; i++) {
      caps[i] = r.string();
    }
    HelloResponse h =
        new HelloResponse(version, agent, List.of(caps), r.string(), r.i64(), r.i64(), r.i64());
    r.end();
    return h;
  }
}
