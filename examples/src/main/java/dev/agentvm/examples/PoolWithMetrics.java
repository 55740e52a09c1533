package dev.agentvm.examples;

import com.sun.net.httpserver.HttpServer;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.CloneVmFactory;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.JsonLinesAuditLog;
import dev.agentvm.execution.PoolConfig;
import dev.agentvm.execution.VMPool;
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
 * A pool with Prometheus metrics served on localhost ({@code /metrics}) and an audit log on
 * standard error; runs a few executions, prints the agent-vm lines of a scrape, and keeps serving
 * for the given seconds (0: exit at once). The pool reports into the registry under its name
 * ({@code pool="metrics"}); the executor reports where its pool does. Every meter is listed in
 * docs/observability.md.
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
        CloneVmFactory factory =
            CloneVmFactory.capture(conn, Images.microTemplate("metrics"), Duration.ofMinutes(2));
        VMPool pool =
            VMPool.start(
                factory,
                PoolConfig.DEFAULT
                    .withSize(2, 3)
                    .withNamePrefix("agentvm-metrics-")
                    .withName("metrics"), // the pool="metrics" tag of every meter
                registry); // or later: pool.bindTo(registry), as Spring Boot does with MeterBinders
        JsonLinesAuditLog audit = JsonLinesAuditLog.to(System.err);
        // no registry here: an executor reports where its pool does
        AgentExecutor executor = AgentExecutor.builder(pool).auditLog(audit).build()) {
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
