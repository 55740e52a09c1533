package org.slf4j;

import org.slf4j.helpers.BasicMDCAdapter;

/**
 * Gives tests a working MDC: without a logging backend (or with slf4j-simple) slf4j uses a no-op
 * one, and what the code puts there cannot be checked. {@link MDC}'s setter is package-private,
 * hence this class in slf4j's package (test code only). The basic adapter is inheritable: a thread
 * starts with a copy of its creator's MDC, as with Log4j 2 configured so, the case agent-vm's
 * threads must guard against.
 */
public final class MdcForTests {
  private MdcForTests() {}

  public static synchronized void install() {
    LoggerFactory.getILoggerFactory(); // initialised first, so it does not replace the adapter
    if (!(MDC.getMDCAdapter() instanceof BasicMDCAdapter)) {
      MDC.setMDCAdapter(new BasicMDCAdapter());
    }
  }
}
