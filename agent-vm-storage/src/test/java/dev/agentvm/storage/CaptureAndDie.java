package dev.agentvm.storage;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VMTemplate;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Run in a child JVM by RemoteMemoryImageIT: captures a memory image on the host at {@code args[0]}
 * into the image directory {@code args[1]}, says READY and dies without closing it.
 */
public final class CaptureAndDie {
  public static void main(String[] args) {
    LibvirtConnection conn = LibvirtConnection.open(args[0]);
    VMTemplate t = VMTemplate.builder(TestVms.name("rmi-dies")).boot(TestVms.boot()).build();
    MemoryImage image = MemoryImage.capture(conn, t, Path.of(args[1]), Duration.ofMinutes(2));
    System.out.println("READY " + image.file());
    System.out.flush();
    Runtime.getRuntime().halt(0); // no close, no shutdown hook: as if killed
  }
}
