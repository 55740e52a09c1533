package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * QEMU confined whatever qemu.conf says: the definition libvirt keeps has no USB controller, a
 * memory hard limit and a CPU cap; the QEMU process runs as QEMU's own user with its seccomp
 * sandbox, in a memory cgroup with that limit; and a guest that burns every CPU and writes its disk
 * flat out gets no more than its profile allows.
 */
class QemuConfinementIT extends RealLibvirtTest {

  @Test
  void libvirtReportsHowQemuIsConfined() {
    QemuConfinement q = conn.confinement();
    System.out.println("QemuConfinementIT: " + q + " warnings " + q.warnings());
    assertTrue(q.securityDrivers().contains("dac"), q.toString());
    assertFalse(q.qemuUser().isEmpty(), "DAC names QEMU's user: " + q);
  }

  @Test
  void aGuestGetsNoMoreCpuDiskOrMemoryThanItsProfile() throws Exception {
    Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "agentvm-test-confine-");
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path disk = dir.resolve("data.raw");
    try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
      f.setLength(64L << 20);
    }
    long rate = 512L << 10; // 512 KiB/s
    VMTemplate t =
        VMTemplate.builder(TestVms.name("confine"))
            .resources(new ResourceProfile(1, 512).withDiskLimits(rate, 0))
            .boot(TestVms.boot())
            .disk(new DiskAttachment(disk, DiskAttachment.Format.RAW, "vdb", false, ""))
            .build();
    try (VM vm = conn.define(t)) {
      vm.start();
      try (AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90))) {
        String xml = conn.backend().lookup(t.name()).orElseThrow().xml();
        assertTrue(xml.contains("<controller type='usb' index='0' model='none'"), xml);
        assertEquals(1, xml.split("<controller type='usb'", -1).length - 1, xml);
        long hardKiB = t.resources().memoryHardLimitMiB(VirtType.QEMU) * 1024;
        // this sandboxed host's libvirtd lacks CAP_SYS_RESOURCE: the limit is left out, and said
        assertEquals(
            conn.confinement().memoryHardLimit(),
            xml.contains("<hard_limit unit='KiB'>" + hardKiB + "</hard_limit>"),
            xml);
        assertTrue(xml.contains("<global_quota>100000</global_quota>"), xml);
        assertTrue(xml.contains("<total_bytes_sec>" + rate + "</total_bytes_sec>"), xml);
        // libvirt took the request for its two-query CPU check (all below holds with it)
        assertTrue(xml.contains("<qemu:del capability='cpu-unavailable-features'/>"), xml);

        Path proc = QemuConfinement.qemuProcess(t.name()).orElseThrow();
        assertEquals(java.util.Optional.of(true), QemuConfinement.seccompSandbox(t.name()));
        String uid =
            Files.readAllLines(proc.resolve("status")).stream()
                .filter(l -> l.startsWith("Uid:"))
                .findFirst()
                .orElseThrow();
        assertNotEquals(
            "0", uid.substring(4).strip().split("\\s+", -1)[0], "QEMU runs as root: " + uid);
        long limit = cgroupMemoryLimit(proc);
        System.out.printf(
            "QemuConfinementIT: QEMU %s, memory cgroup limit %d MiB%n", uid, limit >> 20);
        if (limit > 0 && conn.confinement().memoryHardLimit()) {
          assertTrue(limit <= (hardKiB << 10), "cgroup limit " + limit + " above " + hardKiB);
        }

        // the guest burns its CPU in three loops: QEMU as a whole stays within one CPU
        agent.exec(
            ExecRequest.script(
                    "for i in 1 2 3; do (end=$(($(date +%s)+30)); while [ $(date +%s) -lt $end ];"
                        + " do :; done) </dev/null >/dev/null 2>&1 & echo $! >>/tmp/burn; done",
                    "sh")
                .withTimeout(Duration.ofSeconds(30)));
        Thread.sleep(1500);
        long cpu0 = cpuTicks(proc);
        long wall0 = System.nanoTime();
        Thread.sleep(5000);
        double cpus =
            (cpuTicks(proc) - cpu0) / 100.0 / ((System.nanoTime() - wall0) / 1e9); // USER_HZ 100
        System.out.printf(
            "QemuConfinementIT: a guest burning 3 loops on 1 vCPU: %.2f CPUs%n", cpus);
        assertTrue(cpus <= 1.10, "QEMU used " + cpus + " CPUs, capped at 1");
        assertEquals(
            0, agent.exec(ExecRequest.script("kill $(cat /tmp/burn)", "sh")).exitCode(), "loops");

        // the guest writes 4 MiB flat out to a disk throttled to 512 KiB/s: it takes about 8 s
        // (2 MiB once took 0.1 s in a full run: too little to show the throttle every time)
        long start = System.nanoTime();
        ExecResult dd =
            agent.exec(
                ExecRequest.script(
                        // the guest names its only disk vda, whatever libvirt's target says
                        "d=/dev/$(ls /sys/block | grep '^vd' | head -1); [ -b $d ] || exit 9;"
                            + " dd if=/dev/zero of=$d bs=64k count=64 2>&1 && sync",
                        "sh")
                    .withTimeout(Duration.ofMinutes(2)));
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf(
            "QemuConfinementIT: 4 MiB written in %.1f s at a limit of 512 KiB/s (%s)%n",
            seconds, dd.stdoutText().trim().replace('\n', ' '));
        assertEquals(0, dd.exitCode(), dd.stdoutText());
        assertTrue(seconds >= 5.0, "the disk was not throttled: " + seconds + " s");
      }
    } finally {
      Files.deleteIfExists(disk);
      Files.deleteIfExists(dir);
    }
    TestVms.assertNothingLeft(conn, t);
  }

  private static long cpuTicks(Path proc) throws Exception {
    String stat = Files.readString(proc.resolve("stat"), StandardCharsets.ISO_8859_1);
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ", -1);
    return Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime
  }

  /** memory.limit_in_bytes of the process's cgroup (v1), or -1 when there is none to read. */
  private static long cgroupMemoryLimit(Path proc) throws Exception {
    List<String> groups = Files.readAllLines(proc.resolve("cgroup"));
    for (String g : groups) {
      String[] p = g.split(":", 3);
      if (p.length == 3 && List.of(p[1].split(",", -1)).contains("memory")) {
        Path limit = Path.of("/sys/fs/cgroup/memory" + p[2], "memory.limit_in_bytes");
        return Files.isReadable(limit) ? Long.parseLong(Files.readString(limit).trim()) : -1;
      }
    }
    return -1;
  }
}
