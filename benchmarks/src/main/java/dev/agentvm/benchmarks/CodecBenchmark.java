package dev.agentvm.benchmarks;

import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameCodec;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.MessageType;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Frame encode + decode with both CRC32s, on one core. Prints MB/s of payload.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.CodecBenchmark
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class CodecBenchmark {
  @Param({"65536", "1024"})
  int payloadSize;

  // set by JMH's @Setup before any benchmark method runs
  @SuppressWarnings("NullAway.Init")
  private Frame frame;

  @SuppressWarnings("NullAway.Init")
  private byte[] encoded;

  @Setup
  public void setup() {
    byte[] p = new byte[payloadSize];
    new Random(1).nextBytes(p);
    frame = Frame.response(MessageType.STDOUT, 7, p);
    encoded = FrameCodec.encode(frame);
  }

  @Benchmark
  public byte[] encode() {
    return FrameCodec.encode(frame);
  }

  @Benchmark
  public Frame decode() throws IOException {
    return new FrameReader(new ByteArrayInputStream(encoded)).read();
  }

  @Benchmark
  public Frame encodeThenDecode() throws IOException {
    return new FrameReader(new ByteArrayInputStream(FrameCodec.encode(frame))).read();
  }

  public static void main(String[] args) throws Exception {
    var results =
        new Runner(new OptionsBuilder().include(CodecBenchmark.class.getSimpleName()).build())
            .run();
    System.out.println();
    for (var r : results) {
      int size = Integer.parseInt(r.getParams().getParam("payloadSize"));
      double opsPerSec = r.getPrimaryResult().getScore();
      System.out.printf(
          "%-18s payload %6d B: %10.0f ops/s = %8.1f MB/s of payload%n",
          r.getPrimaryResult().getLabel(), size, opsPerSec, opsPerSec * size / 1e6);
    }
  }
}
