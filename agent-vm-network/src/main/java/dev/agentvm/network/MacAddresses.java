package dev.agentvm.network;

import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * Random locally administered unicast MAC addresses: first octet {@code 0x02} (locally administered
 * bit set, multicast bit clear), second {@code 0xa6} (agent-vm's), four random octets. 2^32 of
 * them: with a thousand VMs on one network the chance of any clash is about 1e-4, and libvirt
 * refuses a second reservation of one MAC anyway.
 */
public final class MacAddresses {
  private static final SecureRandom RANDOM = new SecureRandom();

  /** The prefix every agent-vm MAC starts with. */
  public static final String PREFIX = "02:a6:";

  private MacAddresses() {}

  public static String random() {
    byte[] b = new byte[4];
    RANDOM.nextBytes(b);
    return PREFIX + HexFormat.ofDelimiter(":").formatHex(b);
  }

  /** Whether a MAC is locally administered and unicast. */
  public static boolean isLocalUnicast(String mac) {
    int first = Integer.parseInt(mac.substring(0, 2), 16);
    return (first & 0x02) != 0 && (first & 0x01) == 0;
  }
}
