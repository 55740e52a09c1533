package dev.agentvm.core;

import java.time.Duration;

/** Run in a child JVM by ReaperIT: boots a VM, says READY, then waits to be killed. */
public final class OrphanMaker {
  public static void main(String[] args) throws Exception {
    // the URI, if given, else the default
    LibvirtConnection conn =
        args.length > 1 ? LibvirtConnection.open(args[1]) : LibvirtConnection.open();
    VM vm = conn.define(VMTemplate.builder(args[0]).boot(TestVms.boot()).build());
    vm.start();
    vm.awaitAgent(Duration.ofMinutes(2));
    System.out.println("READY");
    System.out.flush();
    Thread.sleep(Long.MAX_VALUE);
  }
}
