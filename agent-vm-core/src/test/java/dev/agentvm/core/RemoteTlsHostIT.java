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
  void clientsWithoutCertificatesWithAnUntrustedHostOrUnknownToTheHostAreRefusedAtOnce(
      @TempDir Path tmp) throws Exception {
    // no certificates at all
    Path empty = Files.createDirectory(tmp.resolve("empty"));
    ConnectionException none = refused(empty);
    // a certificate from another CA, which the host refuses (the client trusts both CAs)
    Path rogue = tmp.resolve("rogue");
    host.roguePki(rogue);
    ConnectionException unknown = refused(rogue);
    // trusting only that other CA: the client refuses the host's certificate
    Path distrust = Files.createDirectory(tmp.resolve("distrust"));
    for (String f : new String[] {"clientcert.pem", "clientkey.pem"}) {
      Files.copy(rogue.resolve(f), distrust.resolve(f));
    }
    Files.copy(rogue.resolve("rogue-ca.pem"), distrust.resolve("cacert.pem"));
    ConnectionException untrusted = refused(distrust);
    System.out.println("no certificates: " + none.getMessage());
    System.out.println("client unknown to the host: " + unknown.getMessage());
    System.out.println("host not trusted: " + untrusted.getMessage());
    // and no plain TCP on a TLS-only host
    String tcp = host.uri().replace("qemu+tls://", "qemu+tcp://").replaceAll("\\?.*$", "");
    ConnectionException plain =
        assertThrows(ConnectionException.class, () -> LibvirtConnection.open(tcp).close());
    assertTrue(plain.getMessage().contains(tcp), plain.getMessage());
  }

  /** Opening with the certificates in {@code pki} fails at once, naming the URI. */
  private static ConnectionException refused(Path pki) {
    String uri = host.uri().replaceAll("\\?pkipath=.*$", "?pkipath=" + pki);
    long t0 = System.nanoTime();
    ConnectionException e =
        assertThrows(ConnectionException.class, () -> LibvirtConnection.open(uri).close());
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertTrue(e.getMessage().contains(uri), e.getMessage());
    assertFalse(e.getMessage().contains("attempts"), "not retried: " + e.getMessage());
    System.out.println("refused in " + ms + " ms");
    return e;
  }
}
