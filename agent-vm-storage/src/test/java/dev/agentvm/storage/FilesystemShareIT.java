package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A virtio-9p workspace: inject, run, extract, on a real VM. */
class FilesystemShareIT extends RealLibvirtTest {
  @TempDir Path tmp;

  private static ExecResult sh(AgentClient a, String script) throws Exception {
    return a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(60)));
  }

  @Test
  void injectRunExtractWithLargeFilesReadOnlyInputAndLinksNeverFollowed() throws Exception {
    String name = TestVms.name("ws");
    byte[] big = new byte[12 << 20]; // over 10 MB, as the issue asks
    new Random(42).nextBytes(big);
    Path workspaces = Files.createDirectories(tmp.resolve("workspaces"));
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.setPosixFilePermissions(workspaces, PosixFilePermissions.fromString("rwxr-xr-x"));
    try (FilesystemShare ws = FilesystemShare.create(workspaces, name)) {
      ws.addInput("data/big.bin", big);
      ws.addInput("hello.txt", "hello\n".getBytes(StandardCharsets.UTF_8));
      assertThrows(IllegalArgumentException.class, () -> ws.addInput("../escape", new byte[1]));
      assertThrows(IllegalArgumentException.class, () -> ws.addInput("/etc/passwd", new byte[1]));
      assertThrows(IllegalArgumentException.class, () -> ws.addInput("a\0b", new byte[1]));
      VMTemplate.Builder b = VMTemplate.builder(name).boot(TestVms.boot());
      ws.shares().forEach(b::share);
      VMTemplate t = b.build();
      try (VM vm = conn.define(t)) {
        vm.start();
        AgentClient a = vm.awaitAgent(Duration.ofSeconds(90));
        ws.mount(a, Duration.ofSeconds(30));
        ExecResult r =
            sh(
                a,
                "cd /workspace; sha256sum input/data/big.bin | cut -d' ' -f1;"
                    + " if touch input/new 2>/dev/null; then echo input-writable; else echo input-ro; fi;"
                    + " mkdir -p output/sub && cat input/hello.txt > output/result.txt &&"
                    + " head -c 12582912 /dev/urandom > output/sub/big.out &&"
                    + " sha256sum output/sub/big.out | cut -d' ' -f1 &&"
                    + " ln -s /etc/passwd output/passwd-link && ln -s ../../.. output/up &&"
                    + " mkfifo output/fifo && echo scratch > work/tmp.txt && sync");
        assertEquals(0, r.exitCode(), r.stderrText());
        String[] lines = r.stdoutText().split("\n", -1);
        assertEquals(Sha256.of(big), lines[0], "the guest read the input intact");
        assertEquals("input-ro", lines[1], "input is read-only to the guest");
        String guestSha = lines[2];

        // the guest's files on the host: the QEMU user's, readable by others (fmode 0644)
        PosixFileAttributes attrs =
            Files.readAttributes(ws.output().resolve("result.txt"), PosixFileAttributes.class);
        assertEquals("rw-r--r--", PosixFilePermissions.toString(attrs.permissions()));
        assertEquals(FilesystemShare.DEFAULT_QEMU_USER, attrs.owner().getName());

        // a limit: nothing is extracted, nothing partial left
        Path limited = tmp.resolve("limited");
        OutputLimitException tooBig =
            assertThrows(
                OutputLimitException.class,
                () -> ws.extractOutput(limited, new OutputLimits(100, 1 << 20, 1 << 20)));
        assertTrue(tooBig.getMessage().contains("big.out"), tooBig.getMessage());
        assertFalse(Files.exists(limited));
        try (Stream<Path> s = Files.list(tmp)) {
          assertEquals(
              List.of(), s.filter(p -> p.getFileName().toString().contains("partial")).toList());
        }
        assertThrows(
            OutputLimitException.class,
            () -> ws.extractOutput(limited, new OutputLimits(1, 1L << 30, 1L << 30)));

        Path dest = tmp.resolve("out");
        ExtractedOutput out = ws.extractOutput(dest, OutputLimits.DEFAULT);
        assertEquals(
            List.of("result.txt", "sub/big.out"),
            out.files().stream().map(ExtractedOutput.File::path).toList());
        assertEquals(guestSha, out.files().get(1).sha256(), "12 MB output intact");
        assertEquals("hello\n", Files.readString(dest.resolve("result.txt")));
        assertEquals(3, out.skipped().size(), "links and the fifo: " + out.skipped());
        assertTrue(
            out.skipped().stream().anyMatch(s -> s.startsWith("passwd-link: symbolic link")));
        assertFalse(Files.exists(dest.resolve("passwd-link")));
        assertFalse(Files.exists(dest.resolve("up")));
        assertNotEquals(0, out.totalBytes());
        assertThrows(StorageException.class, () -> ws.extractOutput(dest, OutputLimits.DEFAULT));
      }
      TestVms.assertNothingLeft(conn, t);
    }
    try (Stream<Path> s = Files.list(workspaces)) {
      assertEquals(List.of(), s.toList(), "the workspace is gone");
    }
  }
}
