package dev.agentvm.examples;

import com.sun.net.httpserver.HttpServer;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.JsonLinesAuditLog;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * An executor with sandboxes kept ready, Prometheus metrics served on localhost ({@code /metrics})
 * and an audit log on standard error; runs a few executions, prints the agent-vm lines of a scrape,
 * and keeps serving for the given seconds (0: exit at once). The executor reports under its name
 * ({@code executor="metrics"}), the sandboxes their phase timers and the ready gauge. Every meter
 * is listed in docs/observability.md.
 *
 * <pre>./scripts/run-example.sh PoolWithMetrics [seconds to serve] [port]</pre>
 */
public final class PoolWithMetrics {
  // JsonLinesAuditLog.close() only flushes System.out or System.err, it never closes them
  @SuppressWarnings("ClosingStandardOutputStreams")
  public static void main(String[] args) throws Exception {
    int serveSeconds = args.length > 0 ? Integer.parseInt(args[0]) : 0;
    int port = args.length > 1 ? Integer.parseInt(args[1]) : 9464;
    PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    HttpServer http =
        HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 0);
    http.createContext(
        "/metrics",
        ex -> {
          byte[] body = registry.scrape().getBytes(StandardCharsets.UTF_8);
          ex.getResponseHeaders().add("Content-Type", "text/plain; version=0.0.4");
          ex.sendResponseHeaders(200, body.length);
          ex.getResponseBody().write(body);
          ex.close();
        });
    http.start();
    System.out.printf("metrics on http://127.0.0.1:%d/metrics%n", http.getAddress().getPort());
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn);
        JsonLinesAuditLog audit = JsonLinesAuditLog.to(System.err);
        AgentExecutor executor =
            AgentExecutor.builder(sandboxes)
                .sandbox(SandboxSpec.defaults().withNamePrefix("agentvm-metrics-"))
                .keepReady(2) // two sandboxes running and ready: agentvm.sandbox.ready
                .name("metrics") // the executor="metrics" tag of the executor's meters
                .meterRegistry(registry) // or later: executor.bindTo(registry), as Spring does
                .auditLog(audit)
                .build()) {
      sandboxes.bindTo(registry); // sandbox create/pause/... timers and the ready gauge
      for (int i = 0; i < 3; i++) {
        executor.execute(ExecutionRequest.script("echo run " + i).build());
      }
      executor.execute(ExecutionRequest.script("sleep 30").timeout(Duration.ofSeconds(1)).build());
      String scrape =
          HttpClient.newHttpClient()
              .send(
                  HttpRequest.newBuilder(
                          URI.create(
                              "http://127.0.0.1:" + http.getAddress().getPort() + "/metrics"))
                      .build(),
                  HttpResponse.BodyHandlers.ofString())
              .body();
      scrape
          .lines()
          .filter(l -> l.startsWith("agentvm_") && !l.contains("_bucket"))
          .forEach(System.out::println);
      if (serveSeconds > 0) {
        System.out.printf("serving for %d s%n", serveSeconds);
        Thread.sleep(serveSeconds * 1000L);
      }
    } finally {
      http.stop(0);
    }
  }
}
