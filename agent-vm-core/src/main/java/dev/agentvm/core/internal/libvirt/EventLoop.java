package dev.agentvm.core.internal.libvirt;

import org.libvirt.Connect;
import org.libvirt.Library;
import org.libvirt.LibvirtException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * libvirt's default event loop on one daemon thread per JVM, and an error callback so libvirt logs
 * through slf4j instead of printing to stderr. Must run before the first connection is opened, or
 * that connection never delivers events.
 */
final class EventLoop {
  private static final Logger LOG = LoggerFactory.getLogger(EventLoop.class);
  private static boolean started;

  private EventLoop() {}

  static synchronized void ensureStarted() throws LibvirtException {
    if (started) {
      return;
    }
    Connect.setErrorCallback(
        (userData, error) -> {
          // libvirt reports every error here as well as to the caller; the caller's exception is
          // what counts
          if (LOG.isDebugEnabled()) {
            LOG.debug("libvirt: {}", error == null ? "?" : error.message);
          }
        });
    Library.initEventLoop();
    Thread t =
        new Thread(
            () -> {
              try {
                Library.runEventLoop();
              } catch (LibvirtException e) {
                LOG.error("libvirt event loop stopped", e);
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            },
            "agentvm-libvirt-events");
    t.setDaemon(true);
    t.start();
    started = true;
  }
}
