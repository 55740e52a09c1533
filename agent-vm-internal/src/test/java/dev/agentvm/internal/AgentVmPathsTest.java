package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class AgentVmPathsTest {
  @Test
  void oneHostUnderAnySpellingOfItsUriIsOneIdentity() {
    String id = AgentVmPaths.hostIdentity("qemu+tls://h1/system");
    assertEquals("qemu+tls://h1/system", id);
    assertEquals(id, AgentVmPaths.hostIdentity("QEMU+TLS://H1/system?pkipath=/etc/pki/x"));
    assertEquals(id, AgentVmPaths.hostIdentity("qemu+tls://admin@h1/system#f"));
    assertNotEquals(id, AgentVmPaths.hostIdentity("qemu+tls://h1:16515/system"));
    assertNotEquals(id, AgentVmPaths.hostIdentity("qemu+tls://h2/system"));
    assertNotEquals(id, AgentVmPaths.hostIdentity("qemu+tls://h1/session"));
    assertEquals("not a uri ^", AgentVmPaths.hostIdentity("not a uri ^"));
  }

  @Test
  void aHostsRecordsGoUnderAHashOfItsUri() {
    Path base = Path.of("/state/networks");
    Path one = AgentVmPaths.forHost(base, "qemu+tcp://h/system");
    assertEquals(base.resolve(".hosts"), one.getParent());
    assertEquals(16, one.getFileName().toString().length());
    assertEquals(one, AgentVmPaths.forHost(base, "qemu+tcp://h/system"));
    assertNotEquals(one, AgentVmPaths.forHost(base, "qemu+tcp://g/system"));
  }
}
