package dev.agentvm.guest.agent;

import dev.agentvm.protocol.StatusReport;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;

/** Reads the guest's health numbers from /proc. */
final class Status {
  private Status() {}

  static StatusReport read(int runningExecs) {
    long total = -1;
    long avail = -1;
    double load = -1;
    int procs = 0;
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        if (line.startsWith("MemTotal:")) {
          total = kib(line);
        } else if (line.startsWith("MemAvailable:")) {
          avail = kib(line);
        }
      }
      load = Double.parseDouble(firstField(Files.readString(Path.of("/proc/loadavg"))));
      try (DirectoryStream<Path> d = Files.newDirectoryStream(Path.of("/proc"), "[0-9]*")) {
        Iterator<Path> it = d.iterator();
        while (it.hasNext()) {
          it.next();
          procs++;
        }
      }
    } catch (IOException | RuntimeException e) {
      // report what could be read
    }
    return new StatusReport(GuestAgent.uptimeMillis(), total, avail, load, procs, runningExecs);
  }

  /** The text before the first space (all of it if there is none). */
  static String firstField(String s) {
    int space = s.indexOf(' ');
    return space < 0 ? s : s.substring(0, space);
  }

  private static long kib(String line) {
    return Long.parseLong(line.replaceAll("[^0-9]", ""));
  }
}
