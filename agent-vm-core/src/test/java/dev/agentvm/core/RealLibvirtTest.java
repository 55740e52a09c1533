package dev.agentvm.core;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of the integration tests against the real libvirt daemon: one connection per class, reaps
 * test domains a crashed earlier run left, and fails any test that leaves one behind.
 */
abstract class RealLibvirtTest {
  static LibvirtConnection conn;

  @BeforeAll
  static void connect() {
    conn = LibvirtConnection.open();
    TestVms.reapTestDomains(conn);
  }

  @AfterEach
  void noTestDomainsLeft() {
    TestVms.assertNoTestDomains(conn);
  }

  @AfterAll
  static void closeConnection() {
    if (conn != null) {
      TestVms.reapTestDomains(conn);
      conn.close();
    }
  }
}
