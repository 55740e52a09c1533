package dev.agentvm.core;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of the integration tests against the real libvirt daemon: one connection per class, reaps
 * test domains a crashed earlier run left, and fails any test that leaves one behind.
 */
public abstract class RealLibvirtTest {
  protected static LibvirtConnection conn;

  @BeforeAll
  public static void connect() {
    conn = LibvirtConnection.open();
    TestVms.reapTestDomains(conn);
  }

  @AfterEach
  public void noTestDomainsLeft() {
    TestVms.assertNoTestDomains(conn);
  }

  @AfterAll
  public static void closeConnection() {
    if (conn != null) {
      TestVms.reapTestDomains(conn);
      conn.close();
    }
  }
}
