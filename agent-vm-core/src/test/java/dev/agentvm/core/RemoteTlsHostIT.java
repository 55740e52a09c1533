package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A remote libvirt host over {@code qemu+tls}, set up as docs/scale-out.md tells an operator to (a
 * CA, the server's certificate naming its address, a client certificate), on a second real daemon
 * that listens for TLS only ({@link RemoteLibvirtHost#start(int, boolean)}).
 */
class RemoteTlsHostIT {
  private static RemoteLibvirtHost host;

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(5, true);
  }

  @AfterAll
  static void stopHost() {
    if (host != null) {
      try (LibvirtConnection c = LibvirtConnection.open(host.uri())) {
        TestVms.reapTestDomains(c);
      } finally {
        host.close();
      }
    }
  }

  @Test
  void aVmRunsOverTlsWithTheClientsCertificate() throws Exception {
    assertTrue(host.uri().startsWith("qemu+tls://"), host.uri());
    try (LibvirtConnection conn = LibvirtConnection.open(host.uri());
        VM vm = conn.define(VMTemplate.builder(TestVms.name("tls")).boot(TestVms.boot()).build())) {
      assertFalse(conn.backend().isLocal());
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      ExecResult r = agent.exec(ExecRequest.command("echo", "over tls"));
      assertEquals("over tls\n", r.stdoutText());
    }
  }

  @Test
  void aClientTheHostCannotVerifyOrThatCannotVerifyTheHostIsRefusedNamingTheUri(
      @TempDir Path elsewhere) throws Exception {
    // no certificates at all
    String bare = host.uri().replaceAll("\\?pkipath=.*$", "?pkipath=" + elsewhere);
    ConnectionException none =
        assertThrows(ConnectionException.class, () -> LibvirtConnection.open(bare).close());
    assertTrue(none.getMessage().contains(bare), none.getMessage());
    // the client's own certificates but another CA: the host's certificate is not trusted
    Files.copy(host.clientPki().resolve("clientcert.pem"), elsewhere.resolve("clientcert.pem"));
    Files.copy(host.clientPki().resolve("clientkey.pem"), elsewhere.resolve("clientkey.pem"));
    Files.copy(host.clientPki().resolve("clientcert.pem"), elsewhere.resolve("cacert.pem"));
    ConnectionException untrusted =
        assertThrows(ConnectionException.class, () -> LibvirtConnection.open(bare).close());
    assertTrue(untrusted.getMessage().contains(bare), untrusted.getMessage());
    // a client certificate from another CA: the host refuses the client
    Path rogue = elsewhere.resolve("rogue");
    host.roguePki(rogue);
    String rogueUri = host.uri().replaceAll("\\?pkipath=.*$", "?pkipath=" + rogue);
    ConnectionException refused =
        assertThrows(ConnectionException.class, () -> LibvirtConnection.open(rogueUri).close());
    assertTrue(refused.getMessage().contains(rogueUri), refused.getMessage());
    System.out.println("rogue client: " + refused.getMessage());
    System.out.println("no certificates: " + none.getMessage());
    System.out.println("another CA: " + untrusted.getMessage());
    // and no plain TCP on a TLS-only host
    String tcp = host.uri().replace("qemu+tls://", "qemu+tcp://").replaceAll("\\?.*$", "");
    ConnectionException plain =
        assertThrows(ConnectionException.class, () -> LibvirtConnection.open(tcp).close());
    assertTrue(plain.getMessage().contains(tcp), plain.getMessage());
  }
}
